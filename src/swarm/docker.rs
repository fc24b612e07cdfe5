//! [`SwarmApi`] on a real Docker engine: bollard for typed reads of nodes, tasks and
//! configs; raw JSON through the same transport for service inspect and update, so that
//! fields bollard does not model survive the round-trip.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ConfigSpec;
use bollard::query_parameters::{EventsOptions, ListConfigsOptions, ListTasksOptions};
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::swarm::endpoint::Endpoint;
use crate::swarm::events::{ServiceEvent, ServiceEvents};
use crate::swarm::transport::{Tracer, Transport};
use crate::swarm::{
    Changes, ConfigObject, Engine, ImageAvailability, Network, Node, Port, Service, SwarmApi,
    SwarmError, Task, spec,
};

/// A connection to one Docker engine.
pub struct DockerSwarm {
    transport: Arc<Transport>,
    docker: Docker,
    address: String,
    tracer: Option<Tracer>,
}

impl DockerSwarm {
    /// Prepares a connection (no request is sent yet). `address` names it in messages;
    /// `tracer`, if any, hears of every request and, at the end, of the totals.
    pub fn connect(
        endpoint: &Endpoint,
        address: String,
        tracer: Option<Tracer>,
    ) -> Result<Self, SwarmError> {
        let unreachable = |message: String| SwarmError::Unreachable {
            endpoint: address.clone(),
            message,
        };
        let transport =
            Transport::new(endpoint, tracer.clone()).map_err(|e| unreachable(e.to_string()))?;
        let transport = Arc::new(transport);
        let docker = transport
            .bollard()
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerSwarm {
            transport,
            docker,
            address,
            tracer,
        })
    }

    fn error(&self, operation: &str, error: BollardError) -> SwarmError {
        match error {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => SwarmError::Api {
                operation: operation.to_owned(),
                status: status_code,
                message,
            },
            other => SwarmError::Unreachable {
                endpoint: self.address.clone(),
                message: crate::error::error_chain(&other),
            },
        }
    }

    async fn raw(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), SwarmError> {
        let (status, bytes) = self
            .transport
            .raw_json(method, path, body)
            .await
            .map_err(|e| self.error(operation, e))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| SwarmError::Protocol {
                operation: operation.to_owned(),
                message: e.to_string(),
            })?
        };
        Ok((status, value))
    }

    fn api_error(operation: &str, status: StatusCode, body: &Value) -> SwarmError {
        SwarmError::Api {
            operation: operation.to_owned(),
            status: status.as_u16(),
            message: engine_message(body),
        }
    }

    async fn post_update(&self, id: &str, query: String, spec: &Value) -> Result<(), SwarmError> {
        let operation = format!("update service {id}");
        let (status, body) = self
            .raw(
                &operation,
                Method::POST,
                &format!("/services/{id}/update?{query}"),
                Some(spec),
            )
            .await?;
        if status.is_success() {
            return Ok(());
        }
        let error = Self::api_error(&operation, status, &body);
        match error {
            SwarmError::Api { ref message, .. } if message.contains("out of sequence") => {
                Err(SwarmError::OutOfSequence(id.to_owned()))
            }
            other => Err(other),
        }
    }
}

impl Drop for DockerSwarm {
    fn drop(&mut self) {
        if let Some(tracer) = &self.tracer {
            tracer(&format!("engine: {}", self.transport.traffic()));
        }
    }
}

impl SwarmApi for DockerSwarm {
    async fn engine(&self) -> Result<Engine, SwarmError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| self.error("read the engine version", e))?;
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| self.error("read the engine info", e))?;
        let is_manager = info
            .swarm
            .and_then(|swarm| swarm.control_available)
            .unwrap_or(false);
        Ok(Engine {
            api_version: version.api_version.unwrap_or_default(),
            is_manager,
        })
    }

    async fn service(&self, name: &str) -> Result<Option<Service>, SwarmError> {
        let operation = format!("inspect service {name}");
        let (status, body) = self
            .raw(&operation, Method::GET, &format!("/services/{name}"), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Self::api_error(&operation, status, &body));
        }
        Ok(Some(service_from_json(&body)))
    }

    async fn services(&self) -> Result<Vec<Service>, SwarmError> {
        let operation = "list services";
        let (status, body) = self.raw(operation, Method::GET, "/services", None).await?;
        if !status.is_success() {
            return Err(Self::api_error(operation, status, &body));
        }
        Ok(body
            .as_array()
            .map(|list| list.iter().map(service_from_json).collect())
            .unwrap_or_default())
    }

    async fn running_tasks(&self) -> Result<Vec<Task>, SwarmError> {
        let filters = HashMap::from([("desired-state".to_owned(), vec!["running".to_owned()])]);
        self.list_tasks_filtered("list running tasks", filters)
            .await
    }

    async fn update_service(&self, id: &str, version: u64, spec: &Value) -> Result<(), SwarmError> {
        self.post_update(id, format!("version={version}"), spec)
            .await
    }

    async fn watch_service(&self, id: &str) -> Result<Changes, SwarmError> {
        // Replay the last seconds too: an update that completed between the caller's last
        // read and this subscription still wakes it once.
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_secs().saturating_sub(2));
        let filters = HashMap::from([
            ("type".to_owned(), vec!["service".to_owned()]),
            ("service".to_owned(), vec![id.to_owned()]),
        ]);
        let events = self.docker.events(Some(EventsOptions {
            since: Some(since.to_string()),
            filters: Some(filters),
            ..Default::default()
        }));
        Ok(Box::pin(
            events
                .take_while(|event| std::future::ready(event.is_ok()))
                .map(drop),
        ))
    }

    async fn service_events(&self, since: Option<&str>) -> Result<ServiceEvents, SwarmError> {
        let operation = "follow the service events";
        let filters = r#"{"type":["service"],"event":["create","update"]}"#;
        let mut path = format!("/events?filters={}", percent_encode(filters));
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        let response = self
            .transport
            .raw_stream(&path)
            .await
            .map_err(|e| self.error(operation, e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
            let body = bytes
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or(Value::Null);
            return Err(Self::api_error(operation, status, &body));
        }
        Ok(Box::pin(event_objects(
            response.into_body(),
            self.address.clone(),
        )))
    }

    async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        let operation = format!("remove service {id}");
        let (status, body) = self
            .raw(&operation, Method::DELETE, &format!("/services/{id}"), None)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::api_error(&operation, status, &body))
        }
    }

    async fn configs(&self, prefix: &str) -> Result<Vec<ConfigObject>, SwarmError> {
        let filters = HashMap::from([("name".to_owned(), vec![prefix.to_owned()])]);
        let configs = self
            .docker
            .list_configs(Some(ListConfigsOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.error("list configs", e))?;
        Ok(configs
            .into_iter()
            .map(|config| {
                let spec = config.spec.unwrap_or_default();
                ConfigObject {
                    id: config.id.unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                    created_at: config.created_at.map(|t| t.to_string()).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn config_data(&self, id: &str) -> Result<String, SwarmError> {
        let operation = format!("read config {id}");
        let config = self
            .docker
            .inspect_config(id)
            .await
            .map_err(|e| self.error(&operation, e))?;
        let data = config.spec.and_then(|spec| spec.data).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|e| SwarmError::Protocol {
                operation: operation.clone(),
                message: e.to_string(),
            })?;
        String::from_utf8(bytes).map_err(|e| SwarmError::Protocol {
            operation,
            message: e.to_string(),
        })
    }

    async fn create_config(
        &self,
        name: &str,
        data: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, SwarmError> {
        let spec = ConfigSpec {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            ..Default::default()
        };
        match self.docker.create_config(spec).await {
            Ok(response) => Ok(response.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(SwarmError::NameConflict(name.to_owned())),
            Err(error) => Err(self.error(&format!("create config {name}"), error)),
        }
    }

    async fn delete_config(&self, id: &str) -> Result<(), SwarmError> {
        self.docker
            .delete_config(id)
            .await
            .map_err(|e| self.error(&format!("delete config {id}"), e))
    }

    async fn nodes(&self) -> Result<Vec<Node>, SwarmError> {
        let nodes = self
            .docker
            .list_nodes(None)
            .await
            .map_err(|e| self.error("list nodes", e))?;
        Ok(nodes.into_iter().map(node_from_model).collect())
    }

    async fn networks(&self) -> Result<Vec<Network>, SwarmError> {
        let networks = self
            .docker
            .list_networks(None)
            .await
            .map_err(|e| self.error("list networks", e))?;
        Ok(networks
            .into_iter()
            .map(|network| Network {
                id: network.id.unwrap_or_default(),
                name: network.name.unwrap_or_default(),
            })
            .collect())
    }

    async fn image_availability(&self, image: &str) -> Result<ImageAvailability, SwarmError> {
        let operation = format!("inspect image {image}");
        let (status, body) = self
            .raw(
                &operation,
                Method::GET,
                &format!("/images/{image}/json"),
                None,
            )
            .await?;
        if status.is_success() {
            return Ok(ImageAvailability::Local);
        }
        if status != StatusCode::NOT_FOUND {
            return Err(Self::api_error(&operation, status, &body));
        }
        let operation = format!("look up image {image} in its registry");
        let (status, body) = self
            .raw(
                &operation,
                Method::GET,
                &format!("/distribution/{image}/json"),
                None,
            )
            .await?;
        let message = engine_message(&body);
        Ok(if status.is_success() {
            ImageAvailability::InRegistry
        } else if registry_says_missing(status, &message) {
            ImageAvailability::Missing(message)
        } else {
            ImageAvailability::Unknown(message)
        })
    }

    async fn tasks(&self, service_id: &str) -> Result<Vec<Task>, SwarmError> {
        self.list_tasks(service_id, true).await
    }

    async fn task_history(&self, service_id: &str) -> Result<Vec<Task>, SwarmError> {
        self.list_tasks(service_id, false).await
    }
}

impl DockerSwarm {
    async fn list_tasks(
        &self,
        service_id: &str,
        current_only: bool,
    ) -> Result<Vec<Task>, SwarmError> {
        let mut filters = HashMap::from([("service".to_owned(), vec![service_id.to_owned()])]);
        if current_only {
            filters.insert("_up-to-date".to_owned(), vec!["true".to_owned()]);
        }
        self.list_tasks_filtered(&format!("list tasks of {service_id}"), filters)
            .await
    }

    async fn list_tasks_filtered(
        &self,
        operation: &str,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<Task>, SwarmError> {
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.error(operation, e))?;
        Ok(tasks.into_iter().map(task_from_model).collect())
    }
}

/// The events of an `/events` body, one JSON object per line; an error when the
/// connection breaks, the end when the engine closes it.
fn event_objects(
    body: Incoming,
    address: String,
) -> impl Stream<Item = Result<ServiceEvent, SwarmError>> + Send {
    futures_util::stream::unfold(Some((body, Vec::new())), move |state| {
        let address = address.clone();
        async move {
            let (mut body, mut buffer) = state?;
            loop {
                if let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let event = serde_json::from_slice::<Value>(&line)
                        .ok()
                        .and_then(|value| ServiceEvent::from_json(&value));
                    match event {
                        Some(event) => return Some((Ok(event), Some((body, buffer)))),
                        None => continue,
                    }
                }
                match body.frame().await? {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            buffer.extend_from_slice(&data);
                        }
                    }
                    Err(error) => {
                        let gone = SwarmError::Unreachable {
                            endpoint: address,
                            message: error.to_string(),
                        };
                        return Some((Err(gone), None));
                    }
                }
            }
        }
    })
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn service_from_json(body: &Value) -> Service {
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Service {
        id: text("/ID").unwrap_or_default(),
        name: text("/Spec/Name").unwrap_or_default(),
        version: body
            .pointer("/Version/Index")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        spec: body.get("Spec").cloned().unwrap_or(Value::Null),
        previous_spec: body.get("PreviousSpec").cloned(),
        update_state: text("/UpdateStatus/State"),
        update_message: text("/UpdateStatus/Message"),
        update_started_at: text("/UpdateStatus/StartedAt"),
        update_completed_at: text("/UpdateStatus/CompletedAt"),
        created_at: text("/CreatedAt"),
        updated_at: text("/UpdatedAt"),
        endpoint_ports: spec::ports_at(body, "/Endpoint/Ports"),
    }
}

fn node_from_model(node: bollard::models::Node) -> Node {
    let spec = node.spec.unwrap_or_default();
    let description = node.description.unwrap_or_default();
    let status = node.status.unwrap_or_default();
    let platform = description.platform.unwrap_or_default();
    Node {
        id: node.id.unwrap_or_default(),
        hostname: description.hostname.unwrap_or_default(),
        role: spec.role.map(|r| r.to_string()).unwrap_or_default(),
        ready: status.state.is_some_and(|s| s.to_string() == "ready"),
        active: spec.availability.is_some_and(|a| a.to_string() == "active"),
        addr: status.addr.unwrap_or_default(),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        engine_labels: description
            .engine
            .and_then(|engine| engine.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        os: platform.os.unwrap_or_default(),
        arch: platform.architecture.unwrap_or_default(),
    }
}

/// The `message` of an engine's error answer.
fn engine_message(body: &Value) -> String {
    body.get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Whether a failed distribution lookup means the registry answered that the image does
/// not exist (rather than that it could not be asked).
fn registry_says_missing(status: StatusCode, message: &str) -> bool {
    status == StatusCode::NOT_FOUND
        || ["manifest unknown", "not found", "does not exist"]
            .iter()
            .any(|said| message.to_lowercase().contains(said))
}

fn task_from_model(task: bollard::models::Task) -> Task {
    let status = task.status.unwrap_or_default();
    let image = task
        .spec
        .and_then(|spec| spec.container_spec)
        .and_then(|container| container.image)
        .unwrap_or_default();
    let mut ports: Vec<Port> = status
        .port_status
        .and_then(|p| p.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|port| Port {
            protocol: port
                .protocol
                .map_or_else(|| "tcp".to_owned(), |p| p.to_string()),
            target: port
                .target_port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0),
            published: port
                .published_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0),
            mode: port
                .publish_mode
                .map_or_else(|| "ingress".to_owned(), |m| m.to_string()),
        })
        .collect();
    // The engine lists a host port once per address family it binds.
    ports.sort();
    ports.dedup();
    Task {
        id: task.id.unwrap_or_default(),
        service_id: task.service_id.unwrap_or_default(),
        node_id: task.node_id,
        created_at: task.created_at.unwrap_or_default(),
        desired_state: task
            .desired_state
            .map(|s| s.to_string())
            .unwrap_or_default(),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        message: status.message.unwrap_or_default(),
        error: status.err.filter(|e| !e.is_empty()),
        ports,
        image,
    }
}
