//! The in-memory swarm behind the fake engine: nodes, configs, services and their tasks, and
//! what an update does to them. No I/O; `api.rs` turns requests into calls here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{
    CONCURRENT_LABEL, CORE, CORE_CONFIG, Faults, MONITOR_NANOS, PROXY, PROXY_CONFIG_PATH,
    UCP_CONSTRAINTS, UNLOADABLE, conf,
};

const INSTANCE_ID: &str = "fake7q3m8x0t2kzv7c4w1n9b5d";

// ---------------------------------------------------------------------------------------
// The swarm model

/// A node.
#[derive(Debug, Clone)]
pub struct Node {
    /// ID.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// Status `ready`.
    pub ready: bool,
    /// Availability `active`.
    pub active: bool,
    /// Address.
    pub addr: String,
    /// `node.labels.*`.
    pub labels: BTreeMap<String, String>,
    version: u64,
}

/// A config object.
#[derive(Debug, Clone)]
pub struct Config {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Content (the API carries it base64-encoded).
    pub data: String,
    created_at: String,
    version: u64,
}

/// A service.
#[derive(Debug, Clone)]
pub struct Service {
    /// ID.
    pub id: String,
    /// `Version.Index`.
    pub version: u64,
    /// `Spec`.
    pub spec: Value,
    /// `PreviousSpec`.
    pub previous_spec: Option<Value>,
    /// `UpdateStatus`, absent until an update re-creates tasks.
    pub update_status: Option<Value>,
    pub(super) spec_version: u64,
    previous_spec_version: Option<u64>,
    created_at: String,
    updated_at: String,
}

impl Service {
    /// `Spec.Name`.
    pub fn name(&self) -> &str {
        self.spec["Name"].as_str().unwrap_or_default()
    }
}

/// A task.
#[derive(Debug, Clone)]
pub struct Task {
    /// ID.
    pub id: String,
    /// Its service.
    pub service_id: String,
    /// Replica slot, from 1.
    pub slot: u64,
    /// The node it was placed on; `None` while pending.
    pub node_id: Option<String>,
    /// `DesiredState`.
    pub desired_state: String,
    /// `Status.State`.
    pub state: String,
    /// `Status.Message`.
    pub message: String,
    /// `Status.Err`.
    pub err: Option<String>,
    /// `Status.PortStatus.Ports`.
    pub ports: Vec<Value>,
    template: Value,
    endpoint: Value,
    pub(super) spec_version: u64,
    /// Survived a constraints-only update; Swarm then ignores its endpoint (`tests/lab/NOTES.md`).
    survived_constraints_update: bool,
    created_at: String,
    updated_at: String,
    version: u64,
}

impl Task {
    /// Meant to run (not shut down, not failed).
    fn live(&self) -> bool {
        self.desired_state == "running"
    }
}

/// What an update did to the tasks.
#[derive(Debug, Default)]
struct Convergence {
    /// Slots whose task was replaced (dirty slots in Swarm's updater).
    replaced: usize,
    /// A new task that failed.
    failed: Option<String>,
    /// New tasks that could not be placed.
    pending: usize,
}

/// The in-memory swarm. Fields are public so tests can arrange and inspect state.
#[derive(Debug)]
pub struct Swarm {
    /// Nodes, manager first.
    pub nodes: Vec<Node>,
    /// Config objects, in creation order.
    pub configs: Vec<Config>,
    /// Services.
    pub services: Vec<Service>,
    /// Networks, as `(ID, name)`.
    pub networks: Vec<(String, String)>,
    /// Every task ever created (no history limit).
    pub tasks: Vec<Task>,
    /// `/info`'s `Swarm.ControlAvailable`: false makes this engine a worker.
    pub control_available: bool,
    /// `/version`'s `ApiVersion`.
    pub api_version: String,
    /// Faults to inject.
    pub faults: Faults,
    /// Image references the engine holds (`/images/{name}/json`).
    pub images: Vec<String>,
    /// Image references the registry has (`/distribution/{name}/json`); `None` for a
    /// registry the engine cannot reach (an air-gapped swarm).
    pub registry: Option<Vec<String>>,
    /// The raft-like index every change draws its `Version.Index` from.
    index: u64,
    /// Logical clock, one tick per event, so timestamps are deterministic and ordered.
    clock: u64,
    /// Source of deterministic IDs.
    ids: u64,
    /// Host ports Swarm picked for host-mode ports without `PublishedPort`.
    next_ephemeral_port: u64,
    pub(super) inspections: BTreeMap<String, usize>,
    pub(super) updates_seen: BTreeSet<String>,
    /// Update requests received per service name.
    pub(super) update_requests: BTreeMap<String, usize>,
    pub(super) creates_seen: usize,
    /// A service whose spec changed without a rollout yet, and for how many more inspects.
    unmarked: Option<(String, usize)>,
    /// Whether the core swaps the nginx config it renders onto the proxy when it loads a
    /// config (see [`Swarm::with_core_writing_the_proxy`]).
    core_writes_proxy: bool,
}

impl Swarm {
    /// The lab-shaped swarm: manager `mgr`, workers `w1`, `w2` (`role=dtr`) and `w3`;
    /// `conf-1`, the core, the extension and the proxy, all converged.
    pub fn lab() -> Self {
        let mut swarm = Swarm {
            nodes: Vec::new(),
            configs: Vec::new(),
            services: Vec::new(),
            tasks: Vec::new(),
            networks: vec![
                ("ingressnetworkid".to_owned(), "ingress".to_owned()),
                (
                    "ucpinterlocknetworkid".to_owned(),
                    "ucp-interlock".to_owned(),
                ),
            ],
            control_available: true,
            api_version: "1.41".into(),
            faults: Faults::default(),
            images: ["docker", "mirantis"]
                .iter()
                .zip(["3.0.14", "3.8.0"])
                .flat_map(|(org, version)| {
                    [
                        "ucp-interlock",
                        "ucp-interlock-extension",
                        "ucp-interlock-proxy",
                    ]
                    .map(|name| format!("{org}/{name}:{version}"))
                })
                .collect(),
            registry: Some(Vec::new()),
            index: 10,
            clock: 0,
            ids: 0,
            next_ephemeral_port: 30000,
            inspections: BTreeMap::new(),
            updates_seen: BTreeSet::new(),
            update_requests: BTreeMap::new(),
            creates_seen: 0,
            unmarked: None,
            core_writes_proxy: false,
        };
        for (n, (hostname, role, dtr)) in [
            ("mgr", "manager", false),
            ("w1", "worker", true),
            ("w2", "worker", true),
            ("w3", "worker", false),
        ]
        .into_iter()
        .enumerate()
        {
            let mut labels = BTreeMap::from([(
                "com.docker.ucp.orchestrator.swarm".to_owned(),
                "true".to_owned(),
            )]);
            if dtr {
                labels.insert("role".into(), "dtr".into());
            }
            let node = Node {
                id: swarm.new_id(),
                hostname: hostname.into(),
                role: role.into(),
                ready: true,
                active: true,
                addr: format!("10.0.0.{}", 10 + n),
                labels,
                version: swarm.next_index(),
            };
            swarm.nodes.push(node);
        }
        swarm.add_config(
            "com.docker.ucp.config-1",
            "# an unrelated UCP config\n",
            &[],
        );
        let conf1 = swarm.add_config(
            &conf(1),
            CORE_CONFIG,
            &[
                ("com.docker.ucp.InstanceID", INSTANCE_ID),
                ("com.docker.ucp.access.label", "/"),
            ],
        );
        swarm.create_service(core_spec(&conf1));
        swarm.create_service(extension_spec());
        swarm.create_service(proxy_spec());
        swarm
    }

    // -- arranging and inspecting state (for tests) ---------------------------------

    /// Creates a config as `docker config create` would; returns its ID.
    pub fn add_config(&mut self, name: &str, data: &str, labels: &[(&str, &str)]) -> String {
        let config = Config {
            id: self.new_id(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            data: data.into(),
            created_at: self.now(),
            version: self.next_index(),
        };
        let id = config.id.clone();
        self.configs.push(config);
        id
    }

    /// Creates a swarm-scoped network as `docker network create` would; returns its ID.
    pub fn add_network(&mut self, name: &str) -> String {
        let id = self.new_id();
        self.networks.push((id.clone(), name.to_owned()));
        id
    }

    /// Creates a service from `spec` as `docker service create` would, and converges it;
    /// returns its ID.
    pub fn add_service(&mut self, spec: Value) -> String {
        self.create_service(spec)
    }

    /// A service by name or ID.
    pub fn service(&self, name_or_id: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.id == name_or_id || s.name() == name_or_id)
    }

    /// A service by name or ID, to change it.
    pub fn service_mut(&mut self, name_or_id: &str) -> Option<&mut Service> {
        self.services
            .iter_mut()
            .find(|s| s.id == name_or_id || s.name() == name_or_id)
    }

    /// A config by name.
    pub fn config(&self, name: &str) -> Option<&Config> {
        self.configs.iter().find(|c| c.name == name)
    }

    /// Names of the configs whose names start with `prefix`, sorted.
    pub fn config_names(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .configs
            .iter()
            .filter(|c| c.name.starts_with(prefix))
            .map(|c| c.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The name of the config `service` mounts at `/config.toml`.
    pub fn mounted_config(&self, service: &str) -> Option<String> {
        let spec = &self.service(service)?.spec;
        config_mount(spec).map(|mount| mount["ConfigName"].as_str().unwrap_or("").to_owned())
    }

    /// The running tasks of a service as `(hostname, sorted host ports "published:target")`,
    /// sorted by hostname.
    pub fn running_tasks(&self, service: &str) -> Vec<(String, Vec<String>)> {
        let Some(service) = self.service(service) else {
            return Vec::new();
        };
        let mut tasks: Vec<(String, Vec<String>)> = self
            .tasks
            .iter()
            .filter(|t| t.service_id == service.id && t.live() && t.state == "running")
            .map(|t| {
                let host = self.hostname(t.node_id.as_deref());
                let mut ports: Vec<String> = t
                    .ports
                    .iter()
                    .map(|p| format!("{}:{}", p["PublishedPort"], p["TargetPort"]))
                    .collect();
                ports.sort();
                ports.dedup();
                (host, ports)
            })
            .collect();
        tasks.sort();
        tasks
    }

    /// The service as `GET /services/{id}` returns it.
    pub fn inspect(&self, name_or_id: &str) -> Option<Value> {
        self.service(name_or_id).map(service_json)
    }

    fn hostname(&self, node_id: Option<&str>) -> String {
        node_id
            .and_then(|id| self.nodes.iter().find(|n| n.id == id))
            .map_or_else(|| "-".to_owned(), |n| n.hostname.clone())
    }

    // -- clocks and IDs ---------------------------------------------------------------

    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn now(&mut self) -> String {
        self.clock += 1;
        // 2026-01-01T00:00:00Z plus one second per event.
        let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600 + self.clock);
        humantime::format_rfc3339_nanos(at).to_string()
    }

    /// A 25-character lowercase ID like the engine's, deterministic per swarm.
    fn new_id(&mut self) -> String {
        self.ids += 1;
        let mut state = self.ids;
        let mut id = String::new();
        while id.len() < 25 {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            for _ in 0..5 {
                id.push(char::from_digit((z % 36) as u32, 36).expect("base 36"));
                z /= 36;
            }
        }
        id
    }

    // -- services and tasks -----------------------------------------------------------

    fn create_service(&mut self, spec: Value) -> String {
        let now = self.now();
        let index = self.next_index();
        let service = Service {
            id: self.new_id(),
            version: index,
            spec,
            previous_spec: None,
            update_status: None,
            spec_version: index,
            previous_spec_version: None,
            created_at: now.clone(),
            updated_at: now,
        };
        let id = service.id.clone();
        self.services.push(service);
        self.converge(&id);
        id
    }

    fn position(&self, id: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.id == id)
            .expect("service exists")
    }

    /// Makes the tasks match the service's spec at once, as Swarm's orchestrator,
    /// scheduler and updater would eventually.
    fn converge(&mut self, service_id: &str) -> Convergence {
        let service = &self.services[self.position(service_id)];
        let spec = service.spec.clone();
        let spec_version = service.spec_version;
        let template = spec["TaskTemplate"].clone();
        let endpoint = spec.get("EndpointSpec").cloned().unwrap_or(json!({}));
        let replicas = spec
            .pointer("/Mode/Replicated/Replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let constraints = constraints_of(&template);
        let mut outcome = Convergence::default();
        let mut filled = BTreeSet::new();

        for i in 0..self.tasks.len() {
            let task = &self.tasks[i];
            if task.service_id != service_id || !task.live() {
                continue;
            }
            let node_fits = task
                .node_id
                .as_deref()
                .and_then(|id| self.nodes.iter().find(|n| n.id == id))
                .is_some_and(|node| satisfies(node, &constraints));
            let same_endpoint = task.endpoint == endpoint;
            let keep = if task.slot > replicas || filled.contains(&task.slot) {
                None
            } else if task.template == template
                && (same_endpoint || task.survived_constraints_update)
            {
                // Unchanged; or Swarm's quirk: a survivor ignores a ports-only change.
                Some(task.survived_constraints_update)
            } else if without_constraints(&task.template) == without_constraints(&template)
                && same_endpoint
                && node_fits
            {
                Some(true)
            } else {
                None
            };
            let changed = keep.is_none() || task.template != template;
            let (now, index) = (self.now(), self.next_index());
            let task = &mut self.tasks[i];
            if changed {
                task.updated_at = now;
                task.version = index;
            }
            match keep {
                Some(survivor) => {
                    task.template = template.clone();
                    task.spec_version = spec_version;
                    task.survived_constraints_update = survivor;
                    filled.insert(task.slot);
                }
                None => {
                    if task.slot <= replicas {
                        outcome.replaced += 1;
                    }
                    task.desired_state = "shutdown".into();
                    if task.state == "running" {
                        task.state = "shutdown".into();
                        task.message = "shutdown".into();
                    } else {
                        task.state = "shutdown".into();
                        task.message = "removed".into();
                        task.err = None;
                    }
                }
            }
        }

        for slot in (1..=replicas).filter(|slot| !filled.contains(slot)) {
            let task = self.new_task(service_id, slot, &template, &endpoint, spec_version);
            if task.state == "failed" {
                outcome.failed.get_or_insert(task.id.clone());
            }
            if task.state == "pending" {
                outcome.pending += 1;
            }
            self.tasks.push(task);
        }
        outcome
    }

    /// A new task for `slot`, placed (or pending, or failed as the core on a bad config).
    fn new_task(
        &mut self,
        service_id: &str,
        slot: u64,
        template: &Value,
        endpoint: &Value,
        spec_version: u64,
    ) -> Task {
        let name = self.services[self.position(service_id)].name().to_owned();
        let host_ports: Vec<Value> = endpoint["Ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .filter(|p| p["PublishMode"] == "host")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let constraints = constraints_of(template);
        let load = |node: &Node| {
            self.tasks
                .iter()
                .filter(|t| {
                    t.service_id == service_id && t.live() && t.node_id.as_ref() == Some(&node.id)
                })
                .count()
        };
        let port_taken = |node: &Node| {
            host_ports.iter().any(|wanted| {
                wanted.get("PublishedPort").is_some()
                    && self.tasks.iter().any(|t| {
                        t.live()
                            && t.node_id.as_ref() == Some(&node.id)
                            && t.ports.iter().any(|p| {
                                p["PublishedPort"] == wanted["PublishedPort"]
                                    && p["Protocol"] == wanted["Protocol"]
                            })
                    })
            })
        };
        let never = self.faults.never_scheduled.contains(&name);
        let node = self
            .nodes
            .iter()
            .filter(|n| n.ready && n.active && satisfies(n, &constraints) && !port_taken(n))
            .min_by_key(|n| load(n))
            .filter(|_| !never)
            .map(|n| n.id.clone());
        let fails = config_mount(&json!({ "TaskTemplate": template }))
            .and_then(|mount| mount["ConfigID"].as_str().map(str::to_owned))
            .and_then(|id| self.configs.iter().find(|c| c.id == id))
            .is_some_and(|c| c.data.contains(UNLOADABLE))
            || self.faults.failing_tasks.iter().any(|(service, text)| {
                *service == name && template.to_string().contains(text.as_str())
            });
        let (desired, state, message, err) = match &node {
            None => (
                "running",
                "pending",
                "pending task scheduling",
                Some(format!(
                    "no suitable node (scheduling constraints not satisfied on {} nodes)",
                    self.nodes.len()
                )),
            ),
            Some(_) if fails => (
                "shutdown",
                "failed",
                "started",
                Some("task: non-zero exit (1)".to_owned()),
            ),
            Some(_) => ("running", "running", "started", None),
        };
        let mut ports = Vec::new();
        if state == "running" && !self.faults.host_ports_never_bound.contains(&name) {
            for port in &host_ports {
                let mut bound = port.clone();
                if bound.get("PublishedPort").is_none() {
                    self.next_ephemeral_port += 1;
                    bound["PublishedPort"] = json!(self.next_ephemeral_port);
                }
                // The engine reports a host port once per address family.
                ports.push(bound.clone());
                ports.push(bound);
            }
        }
        let now = self.now();
        Task {
            id: self.new_id(),
            service_id: service_id.to_owned(),
            slot,
            node_id: node,
            desired_state: desired.into(),
            state: state.into(),
            message: message.into(),
            err,
            ports,
            template: template.clone(),
            endpoint: endpoint.clone(),
            spec_version,
            survived_constraints_update: false,
            created_at: now.clone(),
            updated_at: now,
            version: self.next_index(),
        }
    }

    /// Removes a service and its tasks as `docker service rm` would; false if unknown.
    pub fn remove_service(&mut self, name_or_id: &str) -> bool {
        let Some(id) = self.service(name_or_id).map(|s| s.id.clone()) else {
            return false;
        };
        self.services.retain(|s| s.id != id);
        self.tasks.retain(|t| t.service_id != id);
        true
    }

    /// Updates a service as `docker service update` would (no version check).
    pub fn update_service(&mut self, name: &str, edit: impl FnOnce(&mut Value)) {
        let Some(id) = self.service(name).map(|s| s.id.clone()) else {
            return;
        };
        let mut spec = self.services[self.position(&id)].spec.clone();
        edit(&mut spec);
        self.replace_spec(&id, spec);
    }

    /// Someone else's update: a label on the spec, nothing the tool plans to change.
    /// How many update requests the service got so far, refused ones included.
    pub fn updates_of(&self, service: &str) -> usize {
        self.update_requests.get(service).copied().unwrap_or(0)
    }

    /// How often the service was inspected so far.
    pub fn inspections_of(&self, service: &str) -> usize {
        self.inspections.get(service).copied().unwrap_or(0)
    }

    /// Someone else's change of `service`'s tasks (a new environment variable) that Swarm
    /// leaves unrolled and unmarked for the next `held` inspects of it.
    pub(super) fn change_unmarked(&mut self, service: &str, held: usize) {
        let now = self.now();
        let index = self.next_index();
        let position = self.position(
            &self
                .service(service)
                .expect("the unmarked rollout's service exists")
                .id
                .clone(),
        );
        let changed = &mut self.services[position];
        changed.spec["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["WRITER=someone-else"]);
        changed.previous_spec = None;
        changed.spec_version = index;
        changed.version = index;
        changed.updated_at = now;
        self.unmarked = Some((changed.name().to_owned(), held));
    }

    /// Counts an inspect of `service` against a change left unrolled; rolls it out (and
    /// completes it) on the last one.
    pub(super) fn roll_out_unmarked_change(&mut self, service: &str) {
        let Some((name, held)) = self.unmarked.as_mut() else {
            return;
        };
        if name != service {
            return;
        }
        *held = held.saturating_sub(1);
        if *held > 0 {
            return;
        }
        let id = self.service(service).expect("exists").id.clone();
        self.unmarked = None;
        let started = self.now();
        self.converge(&id);
        let completed = self.now();
        let position = self.position(&id);
        self.services[position].update_status = Some(json!({
            "State": "completed",
            "StartedAt": started,
            "CompletedAt": completed,
            "Message": "update completed"
        }));
    }

    pub(super) fn concurrent_update(&mut self, service: &str) {
        self.update_service(service, |spec| {
            spec["Labels"][CONCURRENT_LABEL] = json!("someone-else");
        });
    }

    /// `POST /services/{id}/update` without `rollback`, after the version check.
    pub(super) fn replace_spec(&mut self, id: &str, spec: Value) {
        let now = self.now();
        let index = self.next_index();
        let position = self.position(id);
        let service = &mut self.services[position];
        service.previous_spec = Some(std::mem::replace(&mut service.spec, spec));
        service.previous_spec_version = Some(service.spec_version);
        service.spec_version = index;
        service.version = index;
        service.updated_at = now.clone();
        // swarmkit resets the status; its updater sets one only if tasks must be replaced.
        service.update_status = None;
        let outcome = self.converge(id);
        if outcome.replaced == 0 {
            return;
        }
        if let Some(task) = outcome.failed {
            self.update_failed(id, &now, &task);
            return;
        }
        let (state, message) = if outcome.pending > 0 {
            ("updating", "update in progress")
        } else {
            ("completed", "update completed")
        };
        let completed = self.now();
        let position = self.position(id);
        let service = &mut self.services[position];
        service.update_status = Some(if state == "completed" {
            json!({ "State": state, "StartedAt": now, "CompletedAt": completed, "Message": message })
        } else {
            json!({ "State": state, "StartedAt": now, "Message": message })
        });
        if service.name() == CORE && !self.faults.core_creates_no_proxy {
            self.create_missing_proxies(id);
        }
        if self.services[position].name() == CORE {
            self.swap_proxy_config(id);
        }
    }

    /// Makes the core a writer of the proxy, as the real core and the lab's stand-in are
    /// (with the proxy's tasks replaced two at a time, as on the lab's fixture): the proxy mounts the nginx config the core rendered from conf-1 (as after the core's
    /// first swap), and every core update whose new task loads its config swaps a new
    /// rendering onto the proxy, unless [`Faults::core_renders_nothing_new`].
    pub fn with_core_writing_the_proxy(mut self) -> Self {
        self.core_writes_proxy = true;
        // Both proxy tasks replaced at once, as on the lab's fixture.
        let proxy = self.service_mut(PROXY).expect("the proxy exists");
        proxy.spec["UpdateConfig"]["Parallelism"] = json!(2);
        let core_id = self.service(CORE).expect("the core exists").id.clone();
        self.swap_proxy_config(&core_id);
        self
    }

    /// The config the proxy mounts at [`PROXY_CONFIG_PATH`], if any.
    pub fn proxy_config(&self) -> Option<String> {
        let proxy = self.service(PROXY)?;
        mount_at(&proxy.spec, PROXY_CONFIG_PATH)
            .and_then(|mount| mount["ConfigName"].as_str().map(str::to_owned))
    }

    /// What a core that writes the proxy does when it loaded its config: renders the proxy's
    /// nginx config (here: a line naming the core's config) and, when that differs from the
    /// one the proxy mounts, creates it as a config and swaps it onto the proxy.
    fn swap_proxy_config(&mut self, core_id: &str) {
        if !self.core_writes_proxy {
            return;
        }
        let Some(core_config) = config_mount(&self.services[self.position(core_id)].spec)
            .and_then(|mount| mount["ConfigName"].as_str().map(str::to_owned))
        else {
            return;
        };
        let rendered = format!("# nginx.conf rendered by the fake core from {core_config}\n");
        let mounted = self
            .proxy_config()
            .and_then(|name| self.config(&name).map(|config| config.data.clone()));
        if self.faults.core_renders_nothing_new && mounted.is_some()
            || mounted.as_deref() == Some(rendered.as_str())
        {
            return;
        }
        let name = format!("com.docker.interlock.proxy.{}", self.configs.len() + 1);
        let id = self.add_config(&name, &rendered, &[("com.docker.interlock.proxy", "true")]);
        self.update_service(PROXY, |spec| {
            let configs = spec["TaskTemplate"]["ContainerSpec"]
                .as_object_mut()
                .expect("a container spec")
                .entry("Configs")
                .or_insert_with(|| json!([]));
            let configs = configs.as_array_mut().expect("a list of configs");
            configs.retain(|c| c.pointer("/File/Name") != Some(&json!(PROXY_CONFIG_PATH)));
            configs.push(json!({
                "File": { "Name": PROXY_CONFIG_PATH, "UID": "0", "GID": "0", "Mode": 292 },
                "ConfigID": id,
                "ConfigName": name
            }));
        });
    }

    /// What the Interlock core does when it loads its config: creates the proxy service of
    /// every extension that has none, from the extension's settings (defaults as Interlock's).
    fn create_missing_proxies(&mut self, core_id: &str) {
        let spec = &self.services[self.position(core_id)].spec;
        let Some(text) = config_mount(spec)
            .and_then(|mount| mount["ConfigID"].as_str())
            .and_then(|id| self.configs.iter().find(|c| c.id == id))
            .map(|config| config.data.clone())
        else {
            return;
        };
        let Ok(config) = text.parse::<toml_edit::DocumentMut>() else {
            return;
        };
        let Some(extensions) = config.get("Extensions").and_then(|e| e.as_table_like()) else {
            return;
        };
        let replicas = self.faults.created_proxy_replicas;
        let missing: Vec<Value> = extensions
            .iter()
            .filter_map(|(_, extension)| extension.as_table_like().map(created_proxy_spec))
            .map(|mut spec| {
                if let Some(replicas) = replicas {
                    spec["Mode"]["Replicated"]["Replicas"] = json!(replicas);
                }
                spec
            })
            .filter(|spec| {
                self.service(spec["Name"].as_str().unwrap_or_default())
                    .is_none()
            })
            .collect();
        for spec in missing {
            self.create_service(spec);
        }
    }

    /// A new task failed during an update: Swarm's `FailureAction`.
    fn update_failed(&mut self, id: &str, started: &str, task: &str) {
        let position = self.position(id);
        let action = self.services[position].spec["UpdateConfig"]["FailureAction"]
            .as_str()
            .unwrap_or("pause")
            .to_owned();
        if action != "rollback" {
            // `continue` is not emulated: every failure pauses.
            let message =
                format!("update paused due to failure or early termination of task {task}");
            self.services[position].update_status =
                Some(json!({ "State": "paused", "StartedAt": started, "Message": message }));
            return;
        }
        let index = self.next_index();
        let service = &mut self.services[position];
        let previous = service
            .previous_spec
            .take()
            .expect("an update has a previous spec");
        service.spec = previous;
        service.spec_version = service.previous_spec_version.take().unwrap_or(index);
        service.version = index;
        let rollback = self.converge(id);
        let completed = self.now();
        let service = &mut self.services[position];
        // The rollback's own tasks fail too: Swarm pauses it (`RollbackConfig.FailureAction`,
        // pause by default).
        service.update_status = Some(match rollback.failed {
            Some(task) => json!({
                "State": "rollback_paused",
                "StartedAt": started,
                "Message": format!("rollback paused due to failure or early termination of task {task}")
            }),
            None => json!({
                "State": "rollback_completed",
                "StartedAt": started,
                "CompletedAt": completed,
                "Message": "rollback completed"
            }),
        });
    }

    /// `POST /services/{id}/update?rollback=previous`, after the version check.
    pub(super) fn manual_rollback(&mut self, id: &str) -> Result<(), String> {
        let now = self.now();
        let index = self.next_index();
        let position = self.position(id);
        let service = &mut self.services[position];
        let Some(previous) = service.previous_spec.take() else {
            return Err(format!(
                "rpc error: code = FailedPrecondition desc = service {id} does not have a previous spec"
            ));
        };
        service.previous_spec = Some(std::mem::replace(&mut service.spec, previous));
        let previous_version = service.previous_spec_version.replace(service.spec_version);
        service.spec_version = previous_version.unwrap_or(index);
        service.version = index;
        service.updated_at = now.clone();
        self.converge(id);
        let completed = self.now();
        let position = self.position(id);
        let service = &mut self.services[position];
        service.update_status = Some(json!({
            "State": "rollback_completed",
            "StartedAt": now,
            "CompletedAt": completed,
            "Message": "rollback completed"
        }));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Fixture specs, shaped like the lab's services (`docker service inspect` on the lab)

fn update_config() -> Value {
    // FailureAction as the engine reports it when nobody set one: Swarm's default, pause.
    json!({
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": MONITOR_NANOS,
        "MaxFailureRatio": 0,
        "Order": "stop-first"
    })
}

fn core_spec(conf1_id: &str) -> Value {
    json!({
        "Name": CORE,
        "Labels": { "com.docker.ucp.InstanceID": INSTANCE_ID },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "docker/ucp-interlock:3.0.14",
                "Labels": { "com.docker.ucp.InstanceID": INSTANCE_ID },
                "Args": ["run", "-c", "/config.toml"],
                "Env": ["LLOG_LEVEL=info"],
                "Mounts": [{ "Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock" }],
                "StopGracePeriod": 1_000_000_000_u64,
                "DNSConfig": {},
                "Configs": [{
                    "File": { "Name": "/config.toml", "UID": "0", "GID": "0", "Mode": 292 },
                    "ConfigID": conf1_id,
                    "ConfigName": conf(1)
                }],
                "Isolation": "default"
            },
            "Resources": { "Limits": {}, "Reservations": {} },
            "RestartPolicy": { "Condition": "any", "Delay": 5_000_000_000_u64, "MaxAttempts": 0 },
            "Placement": { "Constraints": ["node.role==manager"] },
            "ForceUpdate": 0,
            "Runtime": "container"
        },
        "Mode": { "Replicated": { "Replicas": 1 } },
        "UpdateConfig": update_config(),
        "RollbackConfig": {
            "Parallelism": 1, "FailureAction": "pause", "Monitor": MONITOR_NANOS,
            "MaxFailureRatio": 0, "Order": "stop-first"
        },
        "EndpointSpec": { "Mode": "vip" }
    })
}

fn extension_spec() -> Value {
    json!({
        "Name": "ucp-interlock-extension",
        "Labels": { "com.docker.ucp.InstanceID": INSTANCE_ID },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "docker/ucp-interlock-extension:3.0.14",
                "Args": ["run"],
                "Isolation": "default"
            },
            "Resources": { "Limits": {}, "Reservations": {} },
            "Placement": { "Constraints": UCP_CONSTRAINTS },
            "ForceUpdate": 0,
            "Runtime": "container"
        },
        "Mode": { "Replicated": { "Replicas": 1 } },
        "UpdateConfig": update_config(),
        "EndpointSpec": { "Mode": "vip" }
    })
}

fn proxy_spec() -> Value {
    json!({
        "Name": PROXY,
        "Labels": {
            "com.docker.ucp.InstanceID": INSTANCE_ID,
            "type": "com.docker.interlock.core.proxy"
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "docker/ucp-interlock-proxy:3.0.14",
                "Labels": { "com.docker.ucp.InstanceID": INSTANCE_ID },
                "Hostname": "{{.Node.Hostname}}",
                "StopSignal": "SIGQUIT",
                "StopGracePeriod": 5_000_000_000_u64,
                "DNSConfig": {},
                "Isolation": "default"
            },
            "Resources": { "Limits": {}, "Reservations": {} },
            "RestartPolicy": { "Condition": "any", "Delay": 5_000_000_000_u64, "MaxAttempts": 0 },
            "Placement": { "Constraints": UCP_CONSTRAINTS },
            "ForceUpdate": 0,
            "Runtime": "container"
        },
        "Mode": { "Replicated": { "Replicas": 2 } },
        "UpdateConfig": update_config(),
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [
                { "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 80, "PublishMode": "ingress" },
                { "Protocol": "tcp", "TargetPort": 443, "PublishedPort": 8443, "PublishMode": "ingress" }
            ]
        }
    })
}

/// The proxy spec the core creates for an extension of its config.
fn created_proxy_spec(extension: &dyn toml_edit::TableLike) -> Value {
    let text = |key: &str, default: &str| {
        extension
            .get(key)
            .and_then(|item| item.as_str())
            .unwrap_or(default)
            .to_owned()
    };
    let number = |key: &str, default: i64| {
        extension
            .get(key)
            .and_then(|item| item.as_integer())
            .unwrap_or(default)
    };
    let constraints: Vec<String> = extension
        .get("ProxyConstraints")
        .and_then(|item| item.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_else(|| UCP_CONSTRAINTS.map(str::to_owned).to_vec());
    let mode = text("PublishMode", "ingress");
    let mut spec = proxy_spec();
    spec["Name"] = json!(text("ProxyServiceName", PROXY));
    spec["Mode"]["Replicated"]["Replicas"] = json!(number("ProxyReplicas", 2));
    spec["TaskTemplate"]["Placement"]["Constraints"] = json!(constraints);
    spec["EndpointSpec"]["Ports"] = json!([
        { "Protocol": "tcp", "TargetPort": number("TargetPort", 80), "PublishedPort": number("PublishedPort", 80), "PublishMode": mode },
        { "Protocol": "tcp", "TargetPort": number("TargetSSLPort", 443), "PublishedPort": number("PublishedSSLPort", 8443), "PublishMode": mode }
    ]);
    spec
}

// ---------------------------------------------------------------------------------------
// Small helpers on specs and nodes

fn config_mount(spec: &Value) -> Option<&Value> {
    mount_at(spec, "/config.toml")
}

fn mount_at<'a>(spec: &'a Value, path: &str) -> Option<&'a Value> {
    spec.pointer("/TaskTemplate/ContainerSpec/Configs")?
        .as_array()?
        .iter()
        .find(|c| c.pointer("/File/Name").and_then(Value::as_str) == Some(path))
}

fn constraints_of(template: &Value) -> Vec<String> {
    template
        .pointer("/Placement/Constraints")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn without_constraints(template: &Value) -> Value {
    let mut copy = template.clone();
    if let Some(placement) = copy.get_mut("Placement").and_then(Value::as_object_mut) {
        placement.remove("Constraints");
    }
    copy
}

/// Swarm's constraint syntax: `lhs==rhs` or `lhs!=rhs`, spaces allowed; an unknown key never
/// matches `==`.
fn satisfies(node: &Node, constraints: &[String]) -> bool {
    constraints.iter().all(|constraint| {
        let (lhs, rhs, equal) = match constraint.split_once("!=") {
            Some((lhs, rhs)) => (lhs, rhs, false),
            None => match constraint.split_once("==") {
                Some((lhs, rhs)) => (lhs, rhs, true),
                None => return false,
            },
        };
        let (lhs, rhs) = (lhs.trim(), rhs.trim());
        let value = match lhs {
            "node.id" => Some(node.id.clone()),
            "node.hostname" => Some(node.hostname.clone()),
            "node.role" => Some(node.role.clone()),
            "node.platform.os" => Some("linux".to_owned()),
            "node.platform.arch" => Some("x86_64".to_owned()),
            _ => lhs
                .strip_prefix("node.labels.")
                .and_then(|key| node.labels.get(key).cloned()),
        };
        (value.as_deref() == Some(rhs)) == equal
    })
}

// ---------------------------------------------------------------------------------------
// JSON as the engine returns it

pub(super) fn service_json(service: &Service) -> Value {
    let ports = service.spec.pointer("/EndpointSpec/Ports").cloned();
    let mut endpoint =
        json!({ "Spec": service.spec.get("EndpointSpec").cloned().unwrap_or(json!({})) });
    if let Some(ports) = ports {
        endpoint["Ports"] = ports;
    }
    let mut value = json!({
        "ID": service.id,
        "Version": { "Index": service.version },
        "CreatedAt": service.created_at,
        "UpdatedAt": service.updated_at,
        "Spec": service.spec,
    });
    if let Some(previous) = &service.previous_spec {
        value["PreviousSpec"] = previous.clone();
    }
    value["Endpoint"] = endpoint;
    if let Some(status) = &service.update_status {
        value["UpdateStatus"] = status.clone();
    }
    value
}

pub(super) fn config_json(config: &Config) -> Value {
    json!({
        "ID": config.id,
        "Version": { "Index": config.version },
        "CreatedAt": config.created_at,
        "UpdatedAt": config.created_at,
        "Spec": {
            "Name": config.name,
            "Labels": config.labels,
            "Data": base64::engine::general_purpose::STANDARD.encode(&config.data)
        }
    })
}

pub(super) fn node_json(node: &Node) -> Value {
    let mut value = json!({
        "ID": node.id,
        "Version": { "Index": node.version },
        "CreatedAt": "2026-01-01T00:00:00Z",
        "UpdatedAt": "2026-01-01T00:00:00Z",
        "Spec": {
            "Labels": node.labels,
            "Role": node.role,
            "Availability": if node.active { "active" } else { "drain" }
        },
        "Description": {
            "Hostname": node.hostname,
            "Platform": { "Architecture": "x86_64", "OS": "linux" },
            "Resources": { "NanoCPUs": 2_000_000_000_u64, "MemoryBytes": 4_294_967_296_u64 },
            "Engine": { "EngineVersion": "20.10.24", "Labels": {} }
        },
        "Status": { "State": if node.ready { "ready" } else { "down" }, "Addr": node.addr }
    });
    if node.role == "manager" {
        value["ManagerStatus"] = json!({
            "Leader": true,
            "Reachability": "reachable",
            "Addr": format!("{}:2377", node.addr)
        });
    }
    value
}

pub(super) fn task_json(task: &Task) -> Value {
    let mut status = json!({
        "Timestamp": task.updated_at,
        "State": task.state,
        "Message": task.message,
        "PortStatus": {}
    });
    if let Some(err) = &task.err {
        status["Err"] = json!(err);
    }
    if !task.ports.is_empty() {
        status["PortStatus"] = json!({ "Ports": task.ports });
    }
    if task.node_id.is_some() && task.state != "pending" {
        status["ContainerStatus"] = json!({
            "ContainerID": format!("{:0>64}", task.id),
            "PID": if task.state == "running" { 4242 } else { 0 },
            "ExitCode": if task.state == "failed" { 1 } else { 0 }
        });
    }
    let mut value = json!({
        "ID": task.id,
        "Version": { "Index": task.version },
        "CreatedAt": task.created_at,
        "UpdatedAt": task.updated_at,
        "Labels": {},
        "Spec": task.template,
        "ServiceID": task.service_id,
        "Slot": task.slot,
        "Status": status,
        "DesiredState": task.desired_state
    });
    if let Some(node) = &task.node_id {
        value["NodeID"] = json!(node);
    }
    value
}
