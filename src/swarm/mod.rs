//! The swarm behind a small interface: the only module that talks to Docker.
//!
//! [`SwarmApi`] is what the commands need and nothing more, so a recording fake can stand
//! in for the engine in fast tests. Services travel as the engine's raw JSON
//! ([`Service::spec`]): bollard's typed models drop fields they do not know, and a
//! read-modify-write through them would silently lose parts of a production spec.

pub mod converge;
pub mod docker;
pub mod endpoint;
pub mod events;
pub mod spec;
pub mod ssh;
pub mod transport;

use std::collections::BTreeMap;
use std::pin::Pin;

use futures_util::Stream;

use serde::Serialize;
use serde_json::Value;

use crate::error::Diagnostic;

/// The oldest Engine API version (major, minor) interlockctl works with: swarm configs
/// came with 1.30.
pub const OLDEST_API: (u32, u32) = (1, 30);

/// The Engine API versions this build supports, for `--version`: from [`OLDEST_API`] to
/// the newest version whose objects its Docker client library models. (Requests carry no
/// version, so an engine answers at its own; fields a build does not model are sent back
/// as the engine returned them.)
pub fn supported_api_versions() -> String {
    let (major, minor) = OLDEST_API;
    format!("{major}.{minor} to {}", bollard::API_DEFAULT_VERSION)
}

/// The engine's identity and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Highest API version the engine speaks, e.g. `1.41`.
    pub api_version: String,
    /// Whether this engine is a swarm manager (can run service and config calls).
    pub is_manager: bool,
}

/// A service as the engine returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Service ID.
    pub id: String,
    /// Service name.
    pub name: String,
    /// `Version.Index`, sent back on update for optimistic concurrency.
    pub version: u64,
    /// `Spec`, untouched.
    pub spec: Value,
    /// `PreviousSpec`, Swarm's rollback target.
    pub previous_spec: Option<Value>,
    /// `UpdateStatus.State` (`updating`, `paused`, `completed`, `rollback_*`), if any.
    pub update_state: Option<String>,
    /// `UpdateStatus.Message`.
    pub update_message: Option<String>,
    /// `UpdateStatus.StartedAt`, in the engine's clock.
    pub update_started_at: Option<String>,
    /// `UpdateStatus.CompletedAt`, in the engine's clock.
    pub update_completed_at: Option<String>,
    /// `CreatedAt`, in the engine's clock.
    pub created_at: Option<String>,
    /// `UpdatedAt`: the last change of the spec (or of the update status), engine's clock.
    pub updated_at: Option<String>,
    /// `Endpoint.Ports`: what the swarm actually publishes (ingress).
    pub endpoint_ports: Vec<Port>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Port {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Port inside the container.
    pub target: u16,
    /// Port on the host or the routing mesh; `None` = chosen by Swarm.
    pub published: Option<u16>,
    /// `ingress` or `host`.
    pub mode: String,
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.published {
            Some(published) => write!(
                f,
                "{published}:{}/{} ({})",
                self.target, self.protocol, self.mode
            ),
            None => write!(f, "{}/{} ({})", self.target, self.protocol, self.mode),
        }
    }
}

/// A swarm config object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigObject {
    /// Config ID.
    pub id: String,
    /// Config name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time as the engine reports it.
    pub created_at: String,
}

/// A network the engine knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Network ID (what a service spec references).
    pub id: String,
    /// Network name.
    pub name: String,
}

/// A swarm node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node ID.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// Status is `ready`.
    pub ready: bool,
    /// Availability is `active`.
    pub active: bool,
    /// The node's address.
    pub addr: String,
    /// Node labels (`node.labels.*`).
    pub labels: BTreeMap<String, String>,
    /// Engine labels (`engine.labels.*`).
    pub engine_labels: BTreeMap<String, String>,
    /// `node.platform.os`.
    pub os: String,
    /// `node.platform.arch`.
    pub arch: String,
}

impl Node {
    /// The node's value for a constraint's left-hand side, as Swarm's scheduler sees it.
    pub fn attribute(&self, lhs: &str) -> Option<String> {
        if let Some(key) = lhs.strip_prefix("node.labels.") {
            return self.labels.get(key).cloned();
        }
        if let Some(key) = lhs.strip_prefix("engine.labels.") {
            return self.engine_labels.get(key).cloned();
        }
        match lhs {
            "node.id" => Some(self.id.clone()),
            "node.hostname" => Some(self.hostname.clone()),
            "node.role" => Some(self.role.clone()),
            "node.platform.os" => Some(self.os.clone()),
            "node.platform.arch" => Some(self.arch.clone()),
            _ => None,
        }
    }

    /// Whether the scheduler may place new tasks here.
    pub fn schedulable(&self) -> bool {
        self.ready && self.active
    }
}

/// A task of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Task ID.
    pub id: String,
    /// The service it belongs to.
    pub service_id: String,
    /// The node it was assigned to.
    pub node_id: Option<String>,
    /// `CreatedAt`, RFC 3339 in the engine's clock.
    pub created_at: String,
    /// `DesiredState`.
    pub desired_state: String,
    /// `Status.State`.
    pub state: String,
    /// `Status.Message`.
    pub message: String,
    /// `Status.Err`.
    pub error: Option<String>,
    /// `Status.PortStatus.Ports`: the host-mode ports this task really binds.
    pub ports: Vec<Port>,
    /// `Spec.ContainerSpec.Image`: the image this task runs.
    pub image: String,
}

impl Task {
    /// Running and meant to be running.
    pub fn is_running(&self) -> bool {
        self.state == "running" && self.desired_state == "running"
    }
}

/// Errors from the engine, each with the fix to suggest.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The engine could not be reached.
    #[error("cannot reach the Docker engine at {endpoint}: {message}")]
    Unreachable {
        /// The address tried.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The engine is not a swarm manager.
    #[error("the Docker engine at {0} is not a swarm manager")]
    NotManager(String),
    /// The engine's API predates swarm configs ([`OLDEST_API`]).
    #[error(
        "the Docker engine speaks API {0}, but swarm configs need {major}.{minor} or later",
        major = OLDEST_API.0,
        minor = OLDEST_API.1
    )]
    ApiTooOld(String),
    /// Someone else updated the service between our read and our write.
    #[error(
        "service {0} was updated by someone else while we were updating it (update out of sequence)"
    )]
    OutOfSequence(String),
    /// A config with this name exists already.
    #[error("a config named {0} exists already")]
    NameConflict(String),
    /// Any other API error.
    #[error("{operation}: engine answered {status}: {message}")]
    Api {
        /// What we asked.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The engine's answer could not be understood.
    #[error("{operation}: unexpected answer from the engine: {message}")]
    Protocol {
        /// What we asked.
        operation: String,
        /// What was wrong.
        message: String,
    },
}

impl Diagnostic for SwarmError {
    fn code(&self) -> &'static str {
        match self {
            SwarmError::Unreachable { .. } => "engine_unreachable",
            SwarmError::NotManager(_) => "not_a_manager",
            SwarmError::ApiTooOld(_) => "api_too_old",
            SwarmError::OutOfSequence(_) => "changed_underneath",
            SwarmError::NameConflict(_) => "config_name_conflict",
            SwarmError::Api { .. } => "api_error",
            SwarmError::Protocol { .. } => "protocol_error",
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SwarmError::Unreachable { endpoint, .. } if endpoint.starts_with("ssh://") => Some(format!(
                "`docker -H {endpoint} version` goes the same way (ssh, then `docker system dial-stdio`); make that work first"
            )),
            SwarmError::Unreachable { .. } => Some(
                "is Docker running? check `DOCKER_HOST`, `DOCKER_CONTEXT` or pass `--host`; with a UCP client bundle, `source env.sh` first".into(),
            ),
            SwarmError::NotManager(_) => Some(
                "point `--host` (or the UCP client bundle) at a manager node; workers cannot change services".into(),
            ),
            SwarmError::ApiTooOld(_) => Some("upgrade the engine to Docker 17.06 or later".into()),
            SwarmError::OutOfSequence(_) => Some("run the command again; it picks up the new state".into()),
            SwarmError::NameConflict(_) | SwarmError::Api { .. } | SwarmError::Protocol { .. } => None,
        }
    }
}

/// Wakes whenever a watched service changes (its spec or its update state); ends when the
/// engine stops sending.
pub type Changes = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// What the commands need from a swarm.
// The futures are awaited in place and never spawned, so they need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait SwarmApi {
    /// The engine's API version and whether it is a swarm manager.
    async fn engine(&self) -> Result<Engine, SwarmError>;
    /// Every service of the swarm.
    async fn services(&self) -> Result<Vec<Service>, SwarmError>;
    /// Every task of the swarm that is meant to be running.
    async fn running_tasks(&self) -> Result<Vec<Task>, SwarmError>;
    /// A service by name or ID; `None` if it does not exist.
    async fn service(&self, name: &str) -> Result<Option<Service>, SwarmError>;
    /// Replaces a service's spec; `version` is the `Version.Index` it was read at.
    async fn update_service(&self, id: &str, version: u64, spec: &Value) -> Result<(), SwarmError>;
    /// Changes of one service from now on (the engine's event stream).
    async fn watch_service(&self, id: &str) -> Result<Changes, SwarmError>;
    /// Service creates and updates from now on, or replayed from `since` (`seconds.nanos`,
    /// the engine's clock); returns once the engine has subscribed the caller.
    async fn service_events(
        &self,
        since: Option<&str>,
    ) -> Result<events::ServiceEvents, SwarmError>;
    /// Removes a service (and so its tasks).
    async fn remove_service(&self, id: &str) -> Result<(), SwarmError>;
    /// Configs whose names start with `prefix`.
    async fn configs(&self, prefix: &str) -> Result<Vec<ConfigObject>, SwarmError>;
    /// A config's content, by ID or name.
    async fn config_data(&self, id: &str) -> Result<String, SwarmError>;
    /// Creates a config; returns its ID. A taken name is [`SwarmError::NameConflict`].
    async fn create_config(
        &self,
        name: &str,
        data: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, SwarmError>;
    /// Deletes a config (the engine refuses while a service spec references it).
    async fn delete_config(&self, id: &str) -> Result<(), SwarmError>;
    /// All nodes.
    async fn nodes(&self) -> Result<Vec<Node>, SwarmError>;
    /// All networks (to name the IDs a service spec references).
    async fn networks(&self) -> Result<Vec<Network>, SwarmError>;
    /// The tasks of a service that run its current spec (`_up-to-date`).
    async fn tasks(&self, service_id: &str) -> Result<Vec<Task>, SwarmError>;
    /// All tasks Swarm still keeps for a service, including replaced and failed ones.
    async fn task_history(&self, service_id: &str) -> Result<Vec<Task>, SwarmError>;
    /// Whether `image` exists: in the engine's own image store, else in its registry as the
    /// engine's distribution endpoint sees it (the docker CLI's lookup).
    async fn image_availability(&self, image: &str) -> Result<ImageAvailability, SwarmError>;
}

/// What the engine can tell of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageAvailability {
    /// The engine holds it.
    Local,
    /// Its registry has it.
    InRegistry,
    /// Its registry says it does not exist (the registry's message).
    Missing(String),
    /// The registry could not be asked (an air-gapped swarm): the engine's message.
    Unknown(String),
}
