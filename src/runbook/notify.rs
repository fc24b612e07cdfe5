//! `labels watch --notify URL`: tells people. One JSON POST per service with invalid labels
//! to every URL, with a `text` a person can read (so chat webhooks that take `{"text": ...}`
//! show it) and the structured findings beside it.
//!
//! Deliveries run beside the watch and never hold it up: each try has a bounded time, a
//! failed try (no connection, a timeout, a 5xx or 429 answer) is tried again after a pause,
//! at most [`TRIES`] times, and the outcome comes back as a [`Delivery`] for the watch to
//! report. Once the watch stops, no new try starts; tries under way finish (or time out).
//!
//! The client is hyper's, already here for the engine: HTTP/1.1 over TCP, or over TLS
//! (rustls) trusting the system's CA bundle. URLs are shown without their path and query,
//! where chat webhooks keep their secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// Tries per delivery.
pub const TRIES: usize = 3;
/// The pause before the second try; it doubles before each later one.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// CA bundles of the common systems, tried in order after `SSL_CERT_FILE`.
const CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A URL `--notify` cannot use, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("--notify {0}: not an http:// or https:// URL with a host")]
    BadUrl(String),
    #[error(
        "--notify {0}: https needs the system's CA certificates, and none were found; set \
         SSL_CERT_FILE to a PEM bundle"
    )]
    NoCaBundle(String),
}

/// One webhook.
#[derive(Clone)]
struct Webhook {
    uri: Uri,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    shown: String,
}

impl Webhook {
    fn parse(url: &str, roots: &mut Option<Arc<ClientConfig>>) -> Result<Webhook, NotifyError> {
        let bad = || NotifyError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let (port, tls) = match uri.scheme_str() {
            Some("http") => (uri.port_u16().unwrap_or(80), None),
            Some("https") => {
                let config = match roots {
                    Some(config) => Arc::clone(config),
                    None => {
                        let config =
                            system_tls().ok_or_else(|| NotifyError::NoCaBundle(shown(&uri)))?;
                        Arc::clone(roots.insert(config))
                    }
                };
                (
                    uri.port_u16().unwrap_or(443),
                    Some(TlsConnector::from(config)),
                )
            }
            _ => return Err(bad()),
        };
        Ok(Webhook {
            shown: shown(&uri),
            uri,
            host,
            port,
            tls,
        })
    }
}

/// `scheme://host[:port]`: a URL without the path and query that may hold a secret.
fn shown(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map_or("", |a| a.as_str());
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{authority}")
}

/// rustls trusting the system's CA bundle; `None` when there is none.
fn system_tls() -> Option<Arc<ClientConfig>> {
    let from_env = std::env::var("SSL_CERT_FILE").ok();
    let mut roots = RootCertStore::empty();
    for path in from_env.iter().map(String::as_str).chain(CA_BUNDLES) {
        let Ok(certs) = CertificateDer::pem_file_iter(path) else {
            continue;
        };
        let (added, _) = roots.add_parsable_certificates(certs.flatten());
        if added > 0 {
            break;
        }
    }
    if roots.is_empty() {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The service it was about.
    pub service: String,
    /// The URL, shown without path and query.
    pub url: String,
    /// The receiver's status code, or why none came.
    pub result: Result<u16, String>,
    /// Tries sent.
    pub tries: usize,
}

/// Sends notifications beside the watch.
pub struct Notifier {
    hooks: Vec<Webhook>,
    timeout: Duration,
    stopping: Arc<AtomicBool>,
    deliveries: JoinSet<Delivery>,
}

impl Notifier {
    /// Checks every URL up front (a bad one is refused before the watch starts).
    pub fn new(urls: &[String], timeout: Duration) -> Result<Notifier, NotifyError> {
        let mut roots = None;
        let hooks = urls
            .iter()
            .map(|url| Webhook::parse(url, &mut roots))
            .collect::<Result<_, _>>()?;
        Ok(Notifier {
            hooks,
            timeout,
            stopping: Arc::new(AtomicBool::new(false)),
            deliveries: JoinSet::new(),
        })
    }

    /// Whether any URL was given.
    pub fn is_active(&self) -> bool {
        !self.hooks.is_empty()
    }

    /// Whether deliveries are under way.
    pub fn is_busy(&self) -> bool {
        !self.deliveries.is_empty()
    }

    /// Starts delivering `body` about `service` to every URL; returns at once.
    pub fn send(&mut self, service: &str, body: &Value) {
        let body = Bytes::from(serde_json::to_vec(body).expect("a notification serializes"));
        for hook in &self.hooks {
            let (hook, body, service) = (hook.clone(), body.clone(), service.to_owned());
            let (timeout, stopping) = (self.timeout, Arc::clone(&self.stopping));
            self.deliveries.spawn(async move {
                let (result, tries) = deliver(&hook, body, timeout, &stopping).await;
                Delivery {
                    service,
                    url: hook.shown,
                    result,
                    tries,
                }
            });
        }
    }

    /// The next delivery that ended; waits forever when none is under way.
    pub async fn ended(&mut self) -> Delivery {
        loop {
            match self.deliveries.join_next().await {
                Some(Ok(delivery)) => return delivery,
                Some(Err(_)) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Starts no new try and waits for those under way (each bounded by the timeout).
    pub async fn finish(mut self) -> Vec<Delivery> {
        self.stopping.store(true, Ordering::SeqCst);
        let mut ended = Vec::new();
        while let Some(joined) = self.deliveries.join_next().await {
            if let Ok(delivery) = joined {
                ended.push(delivery);
            }
        }
        ended
    }
}

/// Tries, pauses and tries again; stops trying once the watch stops.
async fn deliver(
    hook: &Webhook,
    body: Bytes,
    timeout: Duration,
    stopping: &AtomicBool,
) -> (Result<u16, String>, usize) {
    let mut pause = FIRST_PAUSE;
    let mut tries = 0;
    loop {
        tries += 1;
        let result = match tokio::time::timeout(timeout, post(hook, body.clone())).await {
            Ok(Ok(status @ 200..=299)) => return (Ok(status), tries),
            Ok(Ok(status)) if retried(status) => Err(format!("the receiver answered {status}")),
            Ok(Ok(status)) => {
                return (Err(format!("the receiver refused it with {status}")), tries);
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            )),
        };
        if tries >= TRIES {
            return (result, tries);
        }
        tokio::time::sleep(pause).await;
        if stopping.load(Ordering::SeqCst) {
            return (
                result.map_err(|e| format!("{e}; the watch stopped before another try")),
                tries,
            );
        }
        pause *= 2;
    }
}

/// Statuses worth another try: the receiver's trouble, not the request's.
fn retried(status: u16) -> bool {
    status >= 500 || status == 429
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// One POST; the receiver's status code, whatever it is.
async fn post(hook: &Webhook, body: Bytes) -> Result<u16, String> {
    let tcp = TcpStream::connect((hook.host.as_str(), hook.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let stream: Box<dyn Connection> = match &hook.tls {
        None => Box::new(tcp),
        Some(connector) => {
            let name = ServerName::try_from(hook.host.clone())
                .map_err(|e| format!("bad host name: {e}"))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            Box::new(tls)
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = hook
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let authority = hook.uri.authority().map_or("", |a| a.as_str());
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("interlockctl/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // Read the answer to its end, so a receiver is not cut off mid-reply.
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_secret_part() {
        let mut roots = None;
        let hook = Webhook::parse(
            "http://user:pw@hooks.example:8080/T000/B000/XXXX?x=1",
            &mut roots,
        )
        .expect("a webhook");
        assert_eq!(hook.shown, "http://hooks.example:8080");
        assert_eq!(hook.port, 8080);
        assert!(hook.tls.is_none());
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_taken() {
        for url in [
            "ftp://x/y",
            "hooks.example/path",
            "http:///path",
            "not a url",
        ] {
            let error = Notifier::new(&[url.to_owned()], Duration::from_secs(1))
                .err()
                .unwrap_or_else(|| panic!("{url} refused"));
            assert_eq!(
                error.to_string(),
                format!("--notify {url}: not an http:// or https:// URL with a host")
            );
        }
    }
}
