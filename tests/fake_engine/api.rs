//! Requests to answers: the Engine API routes interlockctl calls, on top of [`Swarm`], with
//! the engine's status codes and error messages.

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::Trigger;
use super::swarm::{Service, Swarm, config_json, node_json, service_json, task_json};

const OUT_OF_SEQUENCE: &str = "rpc error: code = Unknown desc = update out of sequence";
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to \
     view or modify cluster state. Please run this command on a manager node or promote the \
     current node to a manager.";

/// bollard prefixes paths with `/v1.xx`; raw calls do not.
pub(super) fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    match rest.find('/') {
        Some(slash)
            if rest[..slash]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.') =>
        {
            &rest[slash..]
        }
        _ => path,
    }
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded value of `key` in a raw (still percent-encoded) query.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| percent_decode(k) == key)
        .map(|(_, v)| percent_decode(v))
}

/// The values of one filter in `filters={"key":["v"]}` (or the old `{"key":{"v":true}}`).
fn filter_values(query: &str, key: &str) -> Vec<String> {
    let Some(filters) = query_param(query, "filters") else {
        return Vec::new();
    };
    let Ok(filters) = serde_json::from_str::<Value>(&filters) else {
        return Vec::new();
    };
    match filters.get(key) {
        Some(Value::Array(values)) => values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::Object(values)) => values.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Value) {
    (status, json!({ "message": message.into() }))
}

pub(super) fn route(
    swarm: &mut Swarm,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let swarm_call = !matches!(segments.as_slice(), ["version"] | ["info"] | ["_ping"]);
    if swarm_call && !swarm.control_available {
        return error(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER);
    }
    match (method, segments.as_slice()) {
        (&Method::GET, ["_ping"]) => (StatusCode::OK, json!("OK")),
        (&Method::GET, ["version"]) => (
            StatusCode::OK,
            json!({
                "Version": "20.10.24-fake", "ApiVersion": swarm.api_version, "MinAPIVersion": "1.12",
                "Os": "linux", "Arch": "amd64", "KernelVersion": "6.1.0"
            }),
        ),
        (&Method::GET, ["info"]) => (StatusCode::OK, info_json(swarm)),
        (&Method::GET, ["nodes"]) => (
            StatusCode::OK,
            Value::Array(swarm.nodes.iter().map(node_json).collect()),
        ),
        (&Method::GET, ["services"]) => (
            StatusCode::OK,
            Value::Array(swarm.services.iter().map(service_json).collect()),
        ),
        (&Method::GET, ["services", name]) => inspect_service(swarm, name),
        (&Method::DELETE, ["services", name]) => match swarm.remove_service(name) {
            true => (StatusCode::OK, Value::Null),
            false => error(StatusCode::NOT_FOUND, format!("service {name} not found")),
        },
        (&Method::GET, ["networks"]) => (
            StatusCode::OK,
            Value::Array(
                swarm
                    .networks
                    .iter()
                    .map(|(id, name)| {
                        json!({ "Id": id, "Name": name, "Scope": "swarm", "Driver": "overlay" })
                    })
                    .collect(),
            ),
        ),
        (&Method::POST, ["services", name, "update"]) => update_service(swarm, name, query, body),
        (&Method::GET, ["configs"]) => {
            let prefixes = filter_values(query, "name");
            let configs = swarm
                .configs
                .iter()
                .filter(|c| prefixes.is_empty() || prefixes.iter().any(|p| c.name.starts_with(p)))
                .map(config_json)
                .collect();
            (StatusCode::OK, Value::Array(configs))
        }
        (&Method::POST, ["configs", "create"]) => create_config(swarm, body),
        (&Method::GET, ["configs", id]) => {
            match swarm.configs.iter().find(|c| c.id == *id || c.name == *id) {
                Some(config) => (StatusCode::OK, config_json(config)),
                None => error(StatusCode::NOT_FOUND, format!("config {id} not found")),
            }
        }
        (&Method::GET, ["tasks"]) => (StatusCode::OK, list_tasks(swarm, query)),
        (&Method::GET, ["events"]) => (StatusCode::OK, Value::Null),
        (&Method::GET, ["images", name @ .., "json"]) => {
            let name = name.join("/");
            if swarm.images.contains(&name) {
                (StatusCode::OK, json!({ "Id": "sha256:fake", "RepoTags": [name] }))
            } else {
                error(StatusCode::NOT_FOUND, format!("No such image: {name}"))
            }
        }
        (&Method::GET, ["distribution", name @ .., "json"]) => {
            let name = name.join("/");
            match &swarm.registry {
                None => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host",
                ),
                Some(images) if images.contains(&name) => (
                    StatusCode::OK,
                    json!({ "Descriptor": { "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:fake", "size": 1 } }),
                ),
                Some(_) => error(
                    StatusCode::NOT_FOUND,
                    format!("manifest unknown: manifest unknown: {name}"),
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
}

fn info_json(swarm: &Swarm) -> Value {
    let manager = &swarm.nodes[0];
    json!({
        "ID": "FAKE:ENGINE",
        "Name": manager.hostname,
        "ServerVersion": "20.10.24-fake",
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "OSType": "linux",
        "Architecture": "x86_64",
        "Swarm": {
            "NodeID": manager.id,
            "NodeAddr": manager.addr,
            "LocalNodeState": "active",
            "ControlAvailable": swarm.control_available,
            "Error": "",
            "Nodes": swarm.nodes.len(),
            "Managers": 1
        }
    })
}

/// [`super::ImagePutBack`]: the old image back once the service ran another long enough.
fn put_back_image(swarm: &mut Swarm, service_name: &str) {
    let running = swarm
        .service(service_name)
        .map(|s| s.spec["TaskTemplate"]["ContainerSpec"]["Image"].clone());
    let Some(fault) = swarm.faults.image_put_back.as_mut() else {
        return;
    };
    if fault.service != service_name || running == Some(json!(fault.image)) {
        return;
    }
    let since = *fault.since.get_or_insert_with(std::time::Instant::now);
    if since.elapsed() < fault.after {
        return;
    }
    let image = fault.image.clone();
    swarm.faults.image_put_back = None;
    swarm.update_service(service_name, |spec| {
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!(image);
    });
}

fn inspect_service(swarm: &mut Swarm, name: &str) -> (StatusCode, Value) {
    let Some(service) = swarm.service(name) else {
        return error(StatusCode::NOT_FOUND, format!("service {name} not found"));
    };
    let service_name = service.name().to_owned();
    let seen = swarm.inspections.entry(service_name.clone()).or_default();
    *seen += 1;
    let seen = *seen;
    if let Some((foreign, until)) = swarm.faults.foreign_rollout.clone()
        && foreign == service_name
    {
        let state = if seen < until {
            "updating"
        } else {
            "completed"
        };
        let service = swarm.service_mut(&service_name).expect("just found");
        service.update_status = Some(json!({
            "State": state,
            "StartedAt": "2026-01-01T00:00:00Z",
            "CompletedAt": "2026-01-01T00:00:05Z",
            "Message": format!("update {state}")
        }));
        if seen >= until {
            swarm.faults.foreign_rollout = None;
            swarm.update_service(&service_name, |spec| {
                let replicas = &mut spec["Mode"]["Replicated"]["Replicas"];
                *replicas = json!(replicas.as_u64().unwrap_or(0) + 1);
            });
        }
    }
    swarm.roll_out_unmarked_change(&service_name);
    put_back_image(swarm, &service_name);
    let service = swarm.service(&service_name).expect("just found");
    let answer = (StatusCode::OK, service_json(service));
    if let Some(race) = swarm.faults.concurrent_update.clone()
        && race.service == service_name
        && race.trigger == Trigger::AfterInspect(seen)
    {
        swarm.faults.concurrent_update = None;
        swarm.concurrent_update(&service_name);
    }
    answer
}

fn update_service(swarm: &mut Swarm, name: &str, query: &str, body: &[u8]) -> (StatusCode, Value) {
    let Some(service) = swarm.service(name) else {
        return error(StatusCode::NOT_FOUND, format!("service {name} not found"));
    };
    let (id, service_name) = (service.id.clone(), service.name().to_owned());
    let requests = swarm
        .update_requests
        .entry(service_name.clone())
        .or_default();
    *requests += 1;
    let requests = *requests;
    if swarm
        .faults
        .updates_refused_from
        .iter()
        .any(|(refused, from)| *refused == service_name && requests >= *from)
    {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rpc error: code = Unavailable desc = the swarm does not accept changes",
        );
    }
    if swarm.updates_seen.insert(service_name.clone())
        && let Some(race) = swarm.faults.concurrent_update.clone()
        && race.service == service_name
        && race.trigger == Trigger::BeforeFirstUpdate
    {
        swarm.faults.concurrent_update = None;
        swarm.concurrent_update(&service_name);
    }
    let current = swarm.service(&id).expect("still there").version;
    let Some(version) = query_param(query, "version").and_then(|v| v.parse::<u64>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "invalid service version");
    };
    if version != current {
        return error(StatusCode::INTERNAL_SERVER_ERROR, OUT_OF_SEQUENCE);
    }
    if query_param(query, "rollback").as_deref() == Some("previous") {
        return match swarm.manual_rollback(&id) {
            Ok(()) => (StatusCode::OK, json!({ "Warnings": null })),
            Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, message),
        };
    }
    let Ok(spec) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON in the service spec");
    };
    if spec["Name"] != json!(service_name) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rpc error: code = Unimplemented desc = renaming services is not supported",
        );
    }
    let configs = spec
        .pointer("/TaskTemplate/ContainerSpec/Configs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for reference in configs {
        let id = reference["ConfigID"].as_str().unwrap_or_default();
        let known = swarm
            .configs
            .iter()
            .any(|c| c.id == id && json!(c.name) == reference["ConfigName"]);
        if !known {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "rpc error: code = InvalidArgument desc = config not found: {}",
                    reference["ConfigName"]
                ),
            );
        }
    }
    swarm.replace_spec(&id, spec);
    if let Some(unmarked) = swarm
        .faults
        .unmarked_rollout
        .take_if(|u| u.after_update_of == service_name)
    {
        swarm.change_unmarked(&unmarked.service, unmarked.held);
    }
    (StatusCode::OK, json!({ "Warnings": null }))
}

fn create_config(swarm: &mut Swarm, body: &[u8]) -> (StatusCode, Value) {
    swarm.creates_seen += 1;
    if swarm.creates_seen == 1
        && let Some((name, data)) = swarm.faults.config_taken_before_create.take()
    {
        swarm.add_config(&name, &data, &[]);
    }
    let Ok(spec) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON in the config spec");
    };
    let name = spec["Name"].as_str().unwrap_or_default().to_owned();
    if swarm.config(&name).is_some() {
        return error(
            StatusCode::CONFLICT,
            format!("rpc error: code = AlreadyExists desc = config {name} already exists"),
        );
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(spec["Data"].as_str().unwrap_or_default())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(data) = data else {
        return error(StatusCode::BAD_REQUEST, "config data is not base64 UTF-8");
    };
    let labels: Vec<(String, String)> = spec["Labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let id = swarm.add_config(&name, &data, &labels);
    (StatusCode::CREATED, json!({ "ID": id }))
}

fn list_tasks(swarm: &Swarm, query: &str) -> Value {
    let services = filter_values(query, "service");
    let up_to_date = filter_values(query, "_up-to-date")
        .iter()
        .any(|v| v == "true" || v == "1");
    let desired = filter_values(query, "desired-state");
    let wanted: Vec<&Service> = swarm
        .services
        .iter()
        .filter(|s| services.is_empty() || services.iter().any(|n| *n == s.id || n == s.name()))
        .collect();
    let tasks = swarm
        .tasks
        .iter()
        .filter(|t| {
            wanted
                .iter()
                .any(|s| s.id == t.service_id && (!up_to_date || s.spec_version == t.spec_version))
        })
        .filter(|t| desired.is_empty() || desired.contains(&t.desired_state))
        .map(task_json)
        .collect();
    Value::Array(tasks)
}
