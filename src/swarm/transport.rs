//! One HTTP/1.1 connection stack for bollard and for raw JSON calls.
//!
//! bollard 0.21's typed models drop the fields they do not know when a service is read and
//! written back, so service inspect and update go through raw JSON while everything else uses
//! bollard. Both must reach the same engine with the same TLS identity (for example a UCP
//! client bundle), so both send through [`Transport::send`].
//!
//! bollard's own TLS is not used because it differs from the docker CLI: it trusts the system
//! roots besides ca.pem and cannot skip verification. Here, as in the CLI, the CA pool is
//! ca.pem only, the client certificate is used when both cert and key are given, `verify =
//! false` accepts any server certificate (docker's `--tls` without `--tlsverify`), and only
//! TLS 1.2 and 1.3 are offered.
//!
//! Connections are kept alive and reused: a convergence wait sends a few requests every
//! fraction of a second, and through a UCP client bundle each new connection costs a TLS
//! handshake. A connection goes back to the pool as soon as its response head arrives; it is
//! taken again only once hyper reports it ready, i.e. after that response's body was read
//! (an event stream keeps its connection for itself). Every request and every byte on the
//! wire is counted, so `-v` can show what a command cost the engine.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bollard::errors::Error;
use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use super::endpoint::{Endpoint, SshDestination, TlsFiles};
use super::ssh::{LastFailure, SshStream};

/// Limit for one request until its response headers (bollard) or whole body (`raw_json`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// HTTP/1.1 needs a Host header; over a unix socket (or ssh) the engine ignores it.
const UNIX_HOST: &str = "localhost";
/// Idle connections kept for reuse; a run rarely has more than two requests in flight.
const MAX_IDLE: usize = 4;

/// The body type of bollard's requests (bollard does not export its name).
trait HasBody {
    type Body;
}
impl<B> HasBody for Request<B> {
    type Body = B;
}
type Sender = SendRequest<<BollardRequest as HasBody>::Body>;

/// Receives one line per request (`-v`) and the totals when the connection is dropped.
pub type Tracer = Arc<dyn Fn(&str) + Send + Sync>;

/// What a run cost the engine, counted on the wire.
#[derive(Debug, Default)]
pub struct Traffic {
    requests: AtomicU64,
    connections: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kib = |bytes: &AtomicU64| bytes.load(Ordering::Relaxed) as f64 / 1024.0;
        write!(
            f,
            "{} requests over {} connection(s), {:.1} KiB sent, {:.1} KiB received",
            self.requests.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            kib(&self.sent),
            kib(&self.received)
        )
    }
}

/// Why TLS material could not be loaded; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "cannot load the {kind} from {}: {source}; check that the file exists and holds PEM \
         data (encrypted keys are not supported), e.g. the files of a UCP client bundle",
        .path.display()
    )]
    ReadPem {
        kind: &'static str,
        path: PathBuf,
        source: pem::Error,
    },
    #[error(
        "the CA certificate in {} is not usable: {source}; use the ca.pem of the engine \
         or client bundle",
        .path.display()
    )]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "the client certificate {} and key {} are not usable together: {source}; \
         use cert.pem and key.pem from the same client bundle",
        .cert.display(),
        .key.display()
    )]
    ClientCert {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "TLS verification is on but no CA certificate (ca.pem) is configured; import the \
         context from a client bundle that includes ca.pem, or use DOCKER_CERT_PATH or \
         --tlscacert"
    )]
    NoCa,
    #[error("`{host}` is not a valid TLS server name; connect by DNS name or IP address")]
    ServerName { host: String },
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Sends HTTP requests to one Docker engine endpoint.
pub struct Transport {
    target: Target,
    idle: Mutex<Vec<Sender>>,
    traffic: Arc<Traffic>,
    tracer: Option<Tracer>,
}

enum Target {
    Unix(PathBuf),
    Tcp(String),
    Tls {
        addr: String,
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
    Ssh {
        destination: SshDestination,
        last_failure: LastFailure,
    },
}

impl Transport {
    /// Prepares a transport. PEM files are loaded now, so a bad or missing file is reported
    /// before any request is made.
    pub fn new(endpoint: &Endpoint, tracer: Option<Tracer>) -> Result<Self, TransportError> {
        let target = match endpoint {
            Endpoint::Unix(path) => Target::Unix(path.clone()),
            Endpoint::Tcp { addr, tls: None } => Target::Tcp(addr.clone()),
            Endpoint::Tcp {
                addr,
                tls: Some(files),
            } => Target::Tls {
                addr: addr.clone(),
                connector: TlsConnector::from(client_config(files)?),
                server_name: server_name(addr)?,
            },
            Endpoint::Ssh(destination) => Target::Ssh {
                destination: destination.clone(),
                last_failure: LastFailure::default(),
            },
        };
        Ok(Self {
            target,
            idle: Mutex::new(Vec::new()),
            traffic: Arc::default(),
            tracer,
        })
    }

    /// What was sent and received so far.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Sends one request, on an idle connection when one is ready, else on a new one; used
    /// by bollard's custom transport and by [`Transport::raw_json`]. Only the path and query
    /// of the request URI are used (bollard passes `http://<addr>/path`), and the Host header
    /// is set here.
    pub async fn send(&self, req: BollardRequest) -> Result<Response<Incoming>, Error> {
        let req = self.origin_form(req)?;
        let line = format!("{} {}", req.method(), req.uri());
        let started = Instant::now();
        self.traffic.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.send_pooled(req).await;
        if let Some(tracer) = &self.tracer {
            let outcome = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(error) => format!("failed: {error}"),
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            tracer(&format!("api: {line} -> {outcome} ({ms:.1} ms)"));
        }
        result
    }

    async fn send_pooled(&self, mut req: BollardRequest) -> Result<Response<Incoming>, Error> {
        while let Some(mut sender) = self.take_idle() {
            match sender.try_send_request(req).await {
                Ok(response) => {
                    self.put_back(sender);
                    return Ok(response);
                }
                // Closed before the request went out: nothing was sent, try another.
                Err(mut error) => match error.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(error.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|error| self.explained(error))?;
        self.put_back(sender);
        Ok(response)
    }

    /// A new connection's failure, with why its `ssh` ended when that is known.
    fn explained(&self, error: hyper::Error) -> Error {
        if let Target::Ssh { last_failure, .. } = &self.target
            && let Some(why) = last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        {
            let err = io::Error::new(io::ErrorKind::ConnectionAborted, why);
            return Error::IOError { err };
        }
        error.into()
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().position(Sender::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    fn put_back(&self, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<Sender, Error> {
        self.traffic.connections.fetch_add(1, Ordering::Relaxed);
        let counted = |stream| Counted {
            stream,
            traffic: Arc::clone(&self.traffic),
        };
        match &self.target {
            Target::Unix(path) => handshake(counted(Stream::Unix(connect_unix(path).await?))).await,
            Target::Tcp(addr) => handshake(counted(Stream::Tcp(connect_tcp(addr).await?))).await,
            Target::Tls {
                addr,
                connector,
                server_name,
            } => {
                let tcp = connect_tcp(addr).await?;
                let tls = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|err| io_error(err, format_args!("TLS handshake with {addr}")))?;
                handshake(counted(Stream::Tls(Box::new(tls)))).await
            }
            Target::Ssh {
                destination,
                last_failure,
            } => {
                let ssh = SshStream::connect(destination, last_failure)
                    .map_err(|err| Error::IOError { err })?;
                handshake(counted(Stream::Ssh(Box::new(ssh)))).await
            }
        }
    }

    /// GET/POST a path like `/services/ucp-interlock` (no version prefix) with an optional
    /// JSON body; returns the status and the whole body. Non-2xx statuses are not errors here.
    pub async fn raw_json(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let mut builder = Request::builder().method(method).uri(path_and_query);
        let payload = match body {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(json)?)
            }
            None => Bytes::new(),
        };
        let request = builder.body(bollard::body_full(payload))?;
        let exchange = async {
            let response = self.send(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::RequestTimeoutError)?
    }

    /// A bollard client whose every request goes through [`Transport::send`], with a 120 s
    /// request timeout and `bollard::API_DEFAULT_VERSION`.
    pub fn bollard(self: &Arc<Self>) -> Result<Docker, Error> {
        let transport = Arc::clone(self);
        let send = move |req: BollardRequest| {
            let transport = Arc::clone(&transport);
            async move { transport.send(req).await }
        };
        // bollard builds absolute URIs from this address; `send` keeps only path and query.
        let addr = format!("http://{}", self.authority());
        let timeout = REQUEST_TIMEOUT.as_secs();
        Docker::connect_with_custom_transport(send, Some(addr), timeout, API_DEFAULT_VERSION)
    }

    fn authority(&self) -> &str {
        match &self.target {
            Target::Unix(_) | Target::Ssh { .. } => UNIX_HOST,
            Target::Tcp(addr) | Target::Tls { addr, .. } => addr,
        }
    }

    /// Rewrites the URI to origin form (`/path?query`) and sets the Host header, as HTTP/1.1
    /// on a raw connection needs; bollard hands over absolute URIs.
    fn origin_form(&self, req: BollardRequest) -> Result<BollardRequest, Error> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().cloned();
        parts.uri = Uri::from(path.unwrap_or_else(|| PathAndQuery::from_static("/")));
        let host = HeaderValue::from_str(self.authority()).map_err(hyper::http::Error::from)?;
        parts.headers.insert(HOST, host);
        Ok(Request::from_parts(parts, body))
    }
}

async fn connect_unix(path: &Path) -> Result<UnixStream, Error> {
    UnixStream::connect(path).await.map_err(|err| {
        let socket = path.display();
        io_error(
            err,
            format_args!("cannot connect to the Docker socket {socket}"),
        )
    })
}

async fn connect_tcp(addr: &str) -> Result<TcpStream, Error> {
    TcpStream::connect(addr)
        .await
        .map_err(|err| io_error(err, format_args!("cannot connect to {addr}")))
}

/// Keeps the OS error text (connection refused, no such file) and says what failed.
fn io_error(err: io::Error, what: impl Display) -> Error {
    let err = io::Error::new(err.kind(), format!("{what}: {err}"));
    Error::IOError { err }
}

/// Opens an HTTP/1.1 connection on `stream`.
async fn handshake(stream: Counted) -> Result<Sender, Error> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task runs until the sender is dropped or the engine closes it; its
    // errors reach the caller through `send_request` or the body.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The kinds of connection to an engine.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Ssh(Box<SshStream>),
}

/// A connection that counts the bytes it carries into [`Traffic`].
struct Counted {
    stream: Stream,
    traffic: Arc<Traffic>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = match &mut self.stream {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        let read = (buf.filled().len() - before) as u64;
        self.traffic.received.fetch_add(read, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = match &mut self.stream {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(written)) = polled {
            self.traffic
                .sent
                .fetch_add(written as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let builder =
        ClientConfig::builder_with_provider(provider).with_protocol_versions(&versions)?;
    let builder = if files.verify {
        let ca = files.ca.as_deref().ok_or(TransportError::NoCa)?;
        builder.with_root_certificates(root_store(ca)?)
    } else {
        let verifier = Arc::new(AnyServerCert(algorithms));
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
    };
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs("client certificate", cert)?;
            let client_cert_error = |source| TransportError::ClientCert {
                cert: cert.clone(),
                key: key.clone(),
                source,
            };
            builder
                .with_client_auth_cert(chain, load_key(key)?)
                .map_err(client_cert_error)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn root_store(ca: &Path) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA certificate", ca)? {
        roots.add(cert).map_err(|source| TransportError::BadCa {
            path: ca.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

fn load_certs(
    kind: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let pem_error = |source| TransportError::ReadPem {
        kind,
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(pem_error(pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TransportError::ReadPem {
        kind: "client key",
        path: path.to_path_buf(),
        source,
    })
}

/// The TLS server name of `host:port` (a DNS name or an IP address, brackets removed).
fn server_name(addr: &str) -> Result<ServerName<'static>, TransportError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| TransportError::ServerName {
        host: host.to_owned(),
    })
}

/// Accepts any server certificate, like docker's `--tls` without `--tlsverify`. Handshake
/// signatures are still checked, so the server must hold the key of the certificate it sent.
#[derive(Debug)]
struct AnyServerCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::ServerConfig;
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::server::WebPkiClientVerifier;
    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, UnixListener};
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// Answers one HTTP/1.1 request: `/version` with a minimal engine version, anything else
    /// with an echo of what arrived.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> io::Result<()> {
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await? == 0 {
                return Ok(());
            }
            let mut headers = HashMap::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await?;
                let Some((name, value)) = line.trim_end().split_once(':') else {
                    break;
                };
                headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
            }
            let length = headers
                .get("content-length")
                .map_or(Ok(0), |len| len.parse());
            let mut body = vec![0; length.map_err(io::Error::other)?];
            reader.read_exact(&mut body).await?;
            let mut words = request_line.split_whitespace();
            let (method, target) = (words.next(), words.next().unwrap_or_default());
            let reply = if target.ends_with("/version") {
                json!({ "Version": "99.0.0", "ApiVersion": "1.99" })
            } else {
                let body = String::from_utf8_lossy(&body);
                json!({ "method": method, "target": target, "headers": headers, "body": body })
            }
            .to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                reply.len()
            );
            reader.get_mut().write_all(response.as_bytes()).await?;
        }
    }

    fn unix_server(dir: &Path) -> PathBuf {
        let path = dir.join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream));
            }
        });
        path
    }

    /// Serves plain HTTP, or TLS with `tls`; returns `127.0.0.1:port`.
    async fn tcp_server(tls: Option<Arc<ServerConfig>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let acceptor = tls.map(TlsAcceptor::from);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => answer(acceptor.accept(stream).await?).await,
                        None => answer(stream).await,
                    }
                });
            }
        });
        addr
    }

    fn tcp(addr: &str, tls: Option<TlsFiles>) -> Endpoint {
        Endpoint::Tcp {
            addr: addr.to_owned(),
            tls,
        }
    }

    async fn echo(transport: &Transport, body: Option<&Value>) -> Value {
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let path = "/services/ucp-interlock/update?version=7";
        let (status, bytes) = transport.raw_json(method, path, body).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn engine_version(transport: Transport) -> Option<String> {
        let docker = Arc::new(transport).bollard().unwrap();
        docker.version().await.unwrap().version
    }

    #[tokio::test]
    async fn raw_json_over_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = unix_server(dir.path());
        let transport = Transport::new(&Endpoint::Unix(socket), None).unwrap();
        let spec = json!({ "Name": "ucp-interlock", "Unknown": { "kept": true } });
        let echoed = echo(&transport, Some(&spec)).await;
        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["target"], "/services/ucp-interlock/update?version=7");
        assert_eq!(echoed["headers"]["host"], "localhost");
        assert_eq!(echoed["headers"]["content-type"], "application/json");
        let body: Value = serde_json::from_str(echoed["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, spec);
    }

    #[tokio::test]
    async fn raw_json_over_tcp() {
        let addr = tcp_server(None).await;
        let transport = Transport::new(&tcp(&addr, None), None).unwrap();
        let echoed = echo(&transport, None).await;
        assert_eq!(echoed["method"], "GET");
        assert_eq!(echoed["headers"]["host"], addr.as_str());
        assert_eq!(echoed["headers"].get("content-type"), None);
        assert_eq!(echoed["body"], "");
    }

    #[tokio::test]
    async fn requests_reuse_one_connection_and_are_counted() {
        let addr = tcp_server(None).await;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let tracer: Tracer = Arc::new(move |line: &str| seen.lock().unwrap().push(line.to_owned()));
        let transport = Transport::new(&tcp(&addr, None), Some(tracer)).unwrap();
        for _ in 0..3 {
            echo(&transport, None).await;
        }
        let docker = Arc::new(transport);
        docker.bollard().unwrap().version().await.unwrap();
        let traffic = docker.traffic();
        assert_eq!(traffic.requests.load(Ordering::Relaxed), 4);
        assert_eq!(traffic.connections.load(Ordering::Relaxed), 1);
        assert!(traffic.received.load(Ordering::Relaxed) > 0);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with("api: GET /services/ucp-interlock/update?version=7 -> 200 ("),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn bollard_goes_through_the_transport() {
        let dir = tempfile::tempdir().unwrap();
        let socket = unix_server(dir.path());
        let unix = Transport::new(&Endpoint::Unix(socket), None).unwrap();
        assert_eq!(engine_version(unix).await.as_deref(), Some("99.0.0"));
        let addr = tcp_server(None).await;
        let tcp = Transport::new(&tcp(&addr, None), None).unwrap();
        assert_eq!(engine_version(tcp).await.as_deref(), Some("99.0.0"));
    }

    #[tokio::test]
    async fn missing_socket_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let transport = Transport::new(&Endpoint::Unix(socket.clone()), None).unwrap();
        let err = transport
            .raw_json(Method::GET, "/_ping", None)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&socket.display().to_string()), "{message}");
        assert!(matches!(err, Error::IOError { ref err } if err.kind() == io::ErrorKind::NotFound));
    }

    #[tokio::test]
    async fn refused_tcp_port_is_an_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let transport = Transport::new(&tcp(&addr, None), None).unwrap();
        let err = transport
            .raw_json(Method::GET, "/_ping", None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&addr), "{err}");
        let refused = io::ErrorKind::ConnectionRefused;
        assert!(
            matches!(err, Error::IOError { ref err } if err.kind() == refused),
            "{err}"
        );
    }

    /// A test CA with a server certificate for 127.0.0.1 and a client certificate, all
    /// written as PEM files like a client bundle.
    struct Pki {
        dir: tempfile::TempDir,
        server: Arc<ServerConfig>,
    }

    impl Pki {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let ca = test_ca("interlockctl test CA");
            let (server_cert, server_key) =
                leaf(&ca, "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
            let (client_cert, client_key) =
                leaf(&ca, "client", ExtendedKeyUsagePurpose::ClientAuth);
            std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(dir.path().join("cert.pem"), client_cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), client_key.serialize_pem()).unwrap();
            let key = PrivatePkcs8KeyDer::from(server_key.serialize_der()).into();
            let server = server_config(ca.der().clone(), server_cert.der().clone(), key);
            Pki { dir, server }
        }

        fn file(&self, name: &str) -> Option<PathBuf> {
            Some(self.dir.path().join(name))
        }

        fn bundle(&self, verify: bool) -> TlsFiles {
            TlsFiles {
                ca: self.file("ca.pem"),
                cert: self.file("cert.pem"),
                key: self.file("key.pem"),
                verify,
            }
        }
    }

    fn test_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    fn leaf(
        ca: &CertifiedIssuer<'static, KeyPair>,
        name: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        (params.signed_by(&key, ca).unwrap(), key)
    }

    /// A server that requires a client certificate signed by `ca`.
    fn server_config(
        ca: CertificateDer<'static>,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(ca).unwrap();
        let clients =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(clients.build().unwrap())
            .with_single_cert(vec![cert], key)
            .unwrap();
        Arc::new(config)
    }

    #[tokio::test]
    async fn tls_with_a_client_bundle() {
        let pki = Pki::new();
        let addr = tcp_server(Some(pki.server.clone())).await;
        let endpoint = tcp(&addr, Some(pki.bundle(true)));
        let transport = Transport::new(&endpoint, None).unwrap();
        let echoed = echo(&transport, Some(&json!({ "a": 1 }))).await;
        assert_eq!(echoed["headers"]["host"], addr.as_str());
        let transport = Transport::new(&endpoint, None).unwrap();
        assert_eq!(engine_version(transport).await.as_deref(), Some("99.0.0"));
    }

    #[tokio::test]
    async fn tls_without_verify_accepts_an_unknown_server() {
        let pki = Pki::new();
        let addr = tcp_server(Some(pki.server.clone())).await;
        let files = TlsFiles {
            ca: None,
            ..pki.bundle(false)
        };
        let transport = Transport::new(&tcp(&addr, Some(files)), None).unwrap();
        echo(&transport, None).await;
    }

    #[tokio::test]
    async fn tls_rejects_a_server_from_another_ca() {
        let pki = Pki::new();
        let other = Pki::new();
        let addr = tcp_server(Some(other.server.clone())).await;
        let transport = Transport::new(&tcp(&addr, Some(pki.bundle(true))), None).unwrap();
        let err = transport
            .raw_json(Method::GET, "/_ping", None)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("TLS handshake with {addr}")),
            "{message}"
        );
        assert!(message.contains("invalid peer certificate"), "{message}");
    }

    #[tokio::test]
    async fn tls_server_refuses_a_client_without_certificate() {
        let pki = Pki::new();
        let addr = tcp_server(Some(pki.server.clone())).await;
        let files = TlsFiles {
            cert: None,
            ..pki.bundle(true)
        };
        let transport = Transport::new(&tcp(&addr, Some(files)), None).unwrap();
        let result = transport.raw_json(Method::GET, "/_ping", None).await;
        assert!(result.is_err(), "{result:?}");
    }

    #[test]
    fn bad_pem_files_are_named() {
        let pki = Pki::new();
        let missing = pki.dir.path().join("missing-ca.pem");
        let files = TlsFiles {
            ca: Some(missing.clone()),
            ..pki.bundle(true)
        };
        let err = Transport::new(&tcp("127.0.0.1:1", Some(files)), None)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let garbage = pki.dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key").unwrap();
        let files = TlsFiles {
            key: Some(garbage.clone()),
            ..pki.bundle(true)
        };
        let err = Transport::new(&tcp("127.0.0.1:1", Some(files)), None)
            .err()
            .unwrap();
        assert!(matches!(
            err,
            TransportError::ReadPem {
                kind: "client key",
                ..
            }
        ));
        assert!(
            err.to_string().contains(&garbage.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn verify_needs_a_ca() {
        let files = TlsFiles {
            ca: None,
            cert: None,
            key: None,
            verify: true,
        };
        let err = Transport::new(&tcp("127.0.0.1:1", Some(files)), None)
            .err()
            .unwrap();
        assert!(matches!(err, TransportError::NoCa), "{err}");
    }

    #[test]
    fn server_names_from_addresses() {
        let name = |addr| server_name(addr).unwrap().to_str().into_owned();
        assert_eq!(name("127.0.0.1:2376"), "127.0.0.1");
        assert_eq!(name("[::1]:2376"), "::1");
        assert_eq!(name("ucp.example.com:443"), "ucp.example.com");
        assert!(server_name("bad_name!:1").is_err());
    }
}
