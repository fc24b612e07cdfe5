//! The engine's service events, followed across drops: what `labels watch` listens to.
//!
//! The engine keeps only a short buffer of past events and a stream ends whenever the engine
//! restarts or a manager fails over behind a client bundle. [`Follower`] reopens the stream
//! with a growing pause between tries, asks for the events since the last one it saw, and says
//! once that the engine is gone and once that it is back ([`Happening`]), not on every try.
//! What the engine no longer has is the caller's to catch: it re-lists the services when told
//! the engine is back (as kube-rs's watcher re-lists after a resume fails).

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::swarm::{SwarmApi, SwarmError};

/// The first pause before reopening a dropped stream; it doubles on every failed try.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between tries.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// A service was created or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    /// The service's ID.
    pub service_id: String,
    /// `create` or `update`.
    pub action: String,
    /// When the engine emitted it: nanoseconds since the epoch, in the engine's clock.
    pub time_nano: i64,
}

impl ServiceEvent {
    /// Reads one event object of `GET /events`; `None` for anything else.
    pub fn from_json(event: &Value) -> Option<ServiceEvent> {
        let service_id = event.pointer("/Actor/ID")?.as_str()?.to_owned();
        let action = event.get("Action")?.as_str()?.to_owned();
        let time_nano = event
            .get("timeNano")
            .and_then(Value::as_i64)
            .or_else(|| Some(event.get("time")?.as_i64()? * 1_000_000_000))?;
        Some(ServiceEvent {
            service_id,
            action,
            time_nano,
        })
    }

    /// The `since` of `GET /events` that replays from this event on (`seconds.nanoseconds`).
    fn since(&self) -> String {
        let seconds = self.time_nano.div_euclid(1_000_000_000);
        let nanos = self.time_nano.rem_euclid(1_000_000_000);
        format!("{seconds}.{nanos:09}")
    }
}

/// An open stream of service events; it ends (or yields an error) when the engine goes.
pub type ServiceEvents = Pin<Box<dyn Stream<Item = Result<ServiceEvent, SwarmError>> + Send>>;

/// What following the engine brought.
#[derive(Debug)]
pub enum Happening {
    /// A service was created or updated.
    Changed(ServiceEvent),
    /// The stream dropped and could not be reopened yet: said once per absence.
    Gone(String),
    /// The stream is open again after [`Happening::Gone`]; events missed may be lost.
    Back,
}

/// Follows the service events of one engine, reconnecting with backoff.
pub struct Follower<'a, S> {
    api: &'a S,
    stream: Option<ServiceEvents>,
    since: Option<String>,
    away: bool,
    pause: Duration,
}

impl<'a, S: SwarmApi> Follower<'a, S> {
    /// Opens the stream: an engine that cannot be reached at the start is an error, not a
    /// reason to wait.
    pub async fn open(api: &'a S) -> Result<Follower<'a, S>, SwarmError> {
        let stream = api.service_events(None).await?;
        Ok(Follower {
            api,
            stream: Some(stream),
            since: None,
            away: false,
            pause: FIRST_PAUSE,
        })
    }

    /// The next happening; waits as long as it takes. Cancel-safe: dropping the future
    /// loses no event.
    pub async fn next(&mut self) -> Happening {
        loop {
            if let Some(stream) = &mut self.stream {
                let reason = match stream.next().await {
                    Some(Ok(event)) => {
                        self.since = Some(event.since());
                        return Happening::Changed(event);
                    }
                    Some(Err(error)) => error.to_string(),
                    None => "the engine closed the event stream".to_owned(),
                };
                self.stream = None;
                if let Some(gone) = self.gone(reason) {
                    return gone;
                }
                continue;
            }
            tokio::time::sleep(self.pause).await;
            self.pause = (self.pause * 2).min(LONGEST_PAUSE);
            match self.api.service_events(self.since.as_deref()).await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.pause = FIRST_PAUSE;
                    if std::mem::take(&mut self.away) {
                        return Happening::Back;
                    }
                }
                Err(error) => {
                    if let Some(gone) = self.gone(error.to_string()) {
                        return gone;
                    }
                }
            }
        }
    }

    /// [`Happening::Gone`] the first time only.
    fn gone(&mut self, reason: String) -> Option<Happening> {
        if self.away {
            return None;
        }
        self.away = true;
        Some(Happening::Gone(reason))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_object_is_read_and_replays_from_its_own_time() {
        let event = ServiceEvent::from_json(&json!({
            "Type": "service", "Action": "update",
            "Actor": { "ID": "svc1", "Attributes": { "name": "web" } },
            "time": 1_765_000_000, "timeNano": 1_765_000_000_012_345_678_i64
        }))
        .expect("a service event");
        assert_eq!(event.service_id, "svc1");
        assert_eq!(event.action, "update");
        assert_eq!(event.since(), "1765000000.012345678");
    }

    #[test]
    fn an_event_without_nanoseconds_uses_its_seconds() {
        let event = ServiceEvent::from_json(&json!({
            "Action": "create", "Actor": { "ID": "svc1" }, "time": 12
        }))
        .expect("a service event");
        assert_eq!(event.time_nano, 12_000_000_000);
        assert_eq!(ServiceEvent::from_json(&json!({ "status": "x" })), None);
    }
}
