//! Decides which Docker engine to talk to, with the same rules as the docker CLI.
//!
//! Operators run interlockctl from the shell where `docker` already works: with a UCP/MKE
//! client bundle sourced (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), with `-H`,
//! or with a docker context. Picking a different engine than `docker` would could migrate the
//! wrong cluster, so this module copies the docker CLI: the context precedence of
//! `resolveContextName` (where `DOCKER_HOST` beats `DOCKER_CONTEXT`), the default-context TLS
//! settings and default ports of `cli/flags` and `opts.ParseHost`, and the context store layout
//! read by `cli/context/docker/load.go`.
//!
//! `ssh://[user@]host[:port]` hosts (in `DOCKER_HOST`, `-H` or a context) are reached as the
//! docker CLI reaches them: through the system `ssh` (so the user's `~/.ssh/config`, agent and
//! known_hosts apply) running `docker system dial-stdio` on the remote host; TLS settings do
//! not apply to them.
//!
//! The environment and the home directory are parameters so that the rules can be tested
//! without touching the process environment. Resolution only decides where to connect and
//! which PEM files to use; the transport reads those files.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// Name of the context that is built from flags and environment variables.
pub const DEFAULT_CONTEXT: &str = "default";
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
const DEFAULT_TCP_HOST: &str = "localhost";
const PLAIN_PORT: u16 = 2375;
const TLS_PORT: u16 = 2376;

/// What the user passed on the command line (None = not given). The environment is read
/// separately so tests stay pure.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFlags {
    pub host: Option<String>,
    pub context: Option<String>,
    pub tls: bool,
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
}

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `addr` is `host:port` (IPv6 hosts in brackets).
    Tcp {
        addr: String,
        tls: Option<TlsFiles>,
    },
    /// A remote engine through `ssh [-l user] [-p port] host docker system dial-stdio`.
    Ssh(SshDestination),
}

/// Where `ssh` logs in, from `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshDestination {
    /// `-l USER`; `None` leaves it to `~/.ssh/config` and the local user name.
    pub user: Option<String>,
    /// The host, as `ssh` takes it (a name from `~/.ssh/config` works too).
    pub host: String,
    /// `-p PORT`; `None` leaves it to `~/.ssh/config` and 22.
    pub port: Option<u16>,
}

impl fmt::Display for SshDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ssh://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Shown in messages: `unix:///path`, `tcp://host:port`, plus how TLS is used.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { addr, tls: None } => write!(f, "tcp://{addr}"),
            Endpoint::Tcp {
                addr,
                tls: Some(tls),
            } if tls.verify => write!(f, "tcp://{addr} (TLS)"),
            Endpoint::Tcp { addr, .. } => write!(f, "tcp://{addr} (TLS, server not verified)"),
            Endpoint::Ssh(destination) => write!(f, "{destination}"),
        }
    }
}

/// PEM files for a TLS connection. Nothing is read here; a missing file that is listed is
/// reported when the transport loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The only trust anchors when `verify` is set (like the docker CLI, no system roots).
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// False for docker's `--tls` without `--tlsverify` or a context with `SkipTLSVerify`.
    pub verify: bool,
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub endpoint: Endpoint,
    /// `"default"` or the name of the docker context.
    pub context: String,
    /// For messages: what set the host of the default context (`"--host"`, `"DOCKER_HOST"`,
    /// `"the default socket"`, `"the default TLS host"`), or what selected the named context
    /// (`"--context"`, `"DOCKER_CONTEXT"`, `"currentContext in config.json"`).
    pub source: &'static str,
}

/// Why a host URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostProblem {
    #[error(
        "{0}:// connections are not supported; use a tcp:// host with TLS \
         (for example from a UCP client bundle), an ssh:// host or a unix:// socket"
    )]
    UnsupportedScheme(String),
    #[error("{0}; use ssh://[USER@]HOST[:PORT]")]
    MalformedSsh(&'static str),
    #[error("this is not a Docker host URL; use unix:///path/to/docker.sock or tcp://HOST:PORT")]
    UnknownScheme,
    #[error("{0}; use tcp://HOST:PORT")]
    Malformed(&'static str),
    #[error(
        "http:// means no TLS but TLS is enabled; use tcp:// or https://, or turn TLS off \
         (DOCKER_TLS_VERIFY, DOCKER_TLS, --tls, --tlsverify)"
    )]
    PlainHttpWithTls,
}

/// Why no endpoint could be resolved; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "--context and --host cannot be used together; pass only one of them \
         (a context already names its host)"
    )]
    ContextWithHost,
    #[error("{origin} is `{host}`: {problem}")]
    BadHost {
        origin: String,
        host: String,
        #[source]
        problem: HostProblem,
    },
    #[error(
        "no home directory to find the docker config directory in; \
         set DOCKER_CONFIG (and DOCKER_CERT_PATH for TLS files)"
    )]
    NoConfigDir,
    #[error(
        "cannot read {}: {source}; fix its permissions or point DOCKER_CONFIG at another directory",
        .path.display()
    )]
    ReadConfig { path: PathBuf, source: io::Error },
    #[error(
        "{} is not valid JSON: {source}; repair it or point DOCKER_CONFIG at another directory",
        .path.display()
    )]
    ParseConfig {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "docker context `{name}` (selected by {origin}) does not exist; run `docker context ls` \
         to see the contexts, then choose one with --context or DOCKER_CONTEXT"
    )]
    ContextNotFound { name: String, origin: &'static str },
    #[error(
        "docker context `{name}` has no docker host in {}; recreate it with \
         `docker context create` or import the client bundle again",
        .path.display()
    )]
    ContextWithoutHost { name: String, path: PathBuf },
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Resolves the engine endpoint as the docker CLI would. `env` looks up environment
/// variables; `home` is the user's home directory, if known.
pub fn resolve(
    flags: &ConnectionFlags,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Resolved, EndpointError> {
    // The docker CLI treats an empty variable like an unset one.
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let config_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.map(|home| home.join(".docker")));
    match choose_context(flags, &env, config_dir.as_deref())? {
        None => default_context(flags, &env, config_dir.as_deref()),
        Some((name, chosen_by)) => named_context(name, chosen_by, config_dir.as_deref()),
    }
}

/// Returns the named context to use and what chose it, or None for the default context.
fn choose_context(
    flags: &ConnectionFlags,
    env: Env,
    config_dir: Option<&Path>,
) -> Result<Option<(String, &'static str)>, EndpointError> {
    let flag_context = flags.context.as_deref().filter(|name| !name.is_empty());
    let named = if let Some(name) = flag_context {
        if flags.host.is_some() {
            return Err(EndpointError::ContextWithHost);
        }
        Some((name.to_owned(), "--context"))
    } else if flags.host.is_some() || env("DOCKER_HOST").is_some() {
        None
    } else if let Some(name) = env("DOCKER_CONTEXT") {
        Some((name, "DOCKER_CONTEXT"))
    } else {
        current_context(config_dir)?.map(|name| (name, "currentContext in config.json"))
    };
    Ok(named.filter(|(name, _)| name != DEFAULT_CONTEXT))
}

fn current_context(config_dir: Option<&Path>) -> Result<Option<String>, EndpointError> {
    #[derive(Deserialize)]
    struct ConfigFile {
        #[serde(rename = "currentContext")]
        current_context: Option<String>,
    }
    let Some(dir) = config_dir else {
        return Ok(None);
    };
    let config: Option<ConfigFile> = read_json(&dir.join("config.json"))?;
    Ok(config
        .and_then(|config| config.current_context)
        .filter(|name| !name.is_empty()))
}

/// The context built from `--host`/`DOCKER_HOST` and the TLS flags and variables.
fn default_context(
    flags: &ConnectionFlags,
    env: Env,
    config_dir: Option<&Path>,
) -> Result<Resolved, EndpointError> {
    let tls_only = flags.tls || env("DOCKER_TLS").is_some();
    let tlsverify = flags.tlsverify || env("DOCKER_TLS_VERIFY").is_some();
    let tls_requested = tls_only || tlsverify;
    let (host, source) = default_host(flags, env, tls_requested);
    // `--tls` alone skips verification; an https:// host without TLS settings verifies.
    let verify = tlsverify || !tls_only;
    let endpoint = endpoint_for(&host, source, tls_requested, || {
        default_tls_files(flags, env, config_dir, verify)
    })?;
    Ok(Resolved {
        endpoint,
        context: DEFAULT_CONTEXT.to_owned(),
        source,
    })
}

/// `--host`, else `DOCKER_HOST`, else the local socket (or, with TLS on, `tcp://localhost:2376`
/// as in the docker CLI's `opts.ParseHost`).
fn default_host(flags: &ConnectionFlags, env: Env, tls: bool) -> (String, &'static str) {
    let given = match &flags.host {
        Some(host) => Some((host.trim().to_owned(), "--host")),
        None => env("DOCKER_HOST").map(|host| (host.trim().to_owned(), "DOCKER_HOST")),
    };
    match given {
        Some((host, source)) if !host.is_empty() => (host, source),
        _ if tls => (
            format!("tcp://{DEFAULT_TCP_HOST}:{TLS_PORT}"),
            "the default TLS host",
        ),
        _ => (format!("unix://{DEFAULT_SOCKET}"), "the default socket"),
    }
}

/// ca.pem, cert.pem and key.pem from `DOCKER_CERT_PATH` (else the config directory), each
/// overridden by its flag. Like the docker CLI, the CA path is kept even if the file is
/// missing (so verification fails loudly), while a missing default cert or key is dropped.
fn default_tls_files(
    flags: &ConnectionFlags,
    env: Env,
    config_dir: Option<&Path>,
    verify: bool,
) -> Result<TlsFiles, EndpointError> {
    let cert_dir = || {
        env("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| config_dir.map(Path::to_path_buf))
            .ok_or(EndpointError::NoConfigDir)
    };
    let ca = match &flags.tlscacert {
        Some(path) => path.clone(),
        None => cert_dir()?.join("ca.pem"),
    };
    Ok(TlsFiles {
        ca: Some(ca),
        cert: flag_or_present(flags.tlscert.as_deref(), &cert_dir, "cert.pem")?,
        key: flag_or_present(flags.tlskey.as_deref(), &cert_dir, "key.pem")?,
        verify,
    })
}

fn flag_or_present(
    flag: Option<&Path>,
    dir: &dyn Fn() -> Result<PathBuf, EndpointError>,
    file: &str,
) -> Result<Option<PathBuf>, EndpointError> {
    match flag {
        Some(path) => Ok(Some(path.to_path_buf())),
        None => Ok(present(dir()?.join(file))),
    }
}

fn present(path: PathBuf) -> Option<PathBuf> {
    path.is_file().then_some(path)
}

/// A context from the docker CLI's context store.
fn named_context(
    name: String,
    chosen_by: &'static str,
    config_dir: Option<&Path>,
) -> Result<Resolved, EndpointError> {
    let store = config_dir
        .ok_or(EndpointError::NoConfigDir)?
        .join("contexts");
    let id = context_id(&name);
    let meta_path = store.join("meta").join(&id).join("meta.json");
    let Some(meta) = read_json::<ContextMeta>(&meta_path)? else {
        return Err(EndpointError::ContextNotFound {
            name,
            origin: chosen_by,
        });
    };
    let Some(docker) = meta
        .endpoints
        .docker
        .filter(|ep| !ep.host.trim().is_empty())
    else {
        return Err(EndpointError::ContextWithoutHost {
            name,
            path: meta_path,
        });
    };
    let tls_dir = store.join("tls").join(&id).join("docker");
    let files = TlsFiles {
        ca: present(tls_dir.join("ca.pem")),
        cert: present(tls_dir.join("cert.pem")),
        key: present(tls_dir.join("key.pem")),
        verify: !docker.skip_tls_verify,
    };
    // The CLI uses TLS when the context stores TLS material or skips verification.
    let tls_requested =
        docker.skip_tls_verify || files.ca.is_some() || files.cert.is_some() || files.key.is_some();
    let origin = format!("context `{name}`");
    let endpoint = endpoint_for(docker.host.trim(), &origin, tls_requested, || Ok(files))?;
    Ok(Resolved {
        endpoint,
        context: name,
        source: chosen_by,
    })
}

#[derive(Deserialize)]
struct ContextMeta {
    #[serde(rename = "Endpoints", default)]
    endpoints: ContextEndpoints,
}

#[derive(Deserialize, Default)]
struct ContextEndpoints {
    docker: Option<DockerEndpointMeta>,
}

#[derive(Deserialize)]
struct DockerEndpointMeta {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The store directory name of a context: hex SHA-256 of its name (`digest.FromString`).
fn context_id(name: &str) -> String {
    format!("{:x}", Sha256::digest(name.as_bytes()))
}

/// Reads a JSON file; a missing file is `None`.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, EndpointError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            let path = path.to_path_buf();
            return Err(EndpointError::ReadConfig { path, source });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| EndpointError::ParseConfig {
            path: path.to_path_buf(),
            source,
        })
}

/// Turns a host URL into an endpoint. TLS is used if requested by the settings or by an
/// https:// URL; `tls_files` is only called then.
fn endpoint_for(
    host: &str,
    origin: &str,
    tls_requested: bool,
    tls_files: impl FnOnce() -> Result<TlsFiles, EndpointError>,
) -> Result<Endpoint, EndpointError> {
    let bad_host = |problem| EndpointError::BadHost {
        origin: origin.to_owned(),
        host: host.to_owned(),
        problem,
    };
    let (scheme, tcp) = match parse_host(host).map_err(bad_host)? {
        HostUrl::Unix(path) => return Ok(Endpoint::Unix(path)),
        HostUrl::Ssh(destination) => return Ok(Endpoint::Ssh(destination)),
        HostUrl::Tcp(scheme, tcp) => (scheme, tcp),
    };
    if scheme == TcpScheme::Http && tls_requested {
        return Err(bad_host(HostProblem::PlainHttpWithTls));
    }
    let tls = (tls_requested || scheme == TcpScheme::Https)
        .then(tls_files)
        .transpose()?;
    let default_port = if tls.is_some() { TLS_PORT } else { PLAIN_PORT };
    let addr = format!("{}:{}", tcp.host, tcp.port.unwrap_or(default_port));
    Ok(Endpoint::Tcp { addr, tls })
}

enum HostUrl {
    Unix(PathBuf),
    Tcp(TcpScheme, TcpAddr),
    Ssh(SshDestination),
}

#[derive(PartialEq, Eq)]
enum TcpScheme {
    Tcp,
    Http,
    Https,
}

struct TcpAddr {
    host: String,
    port: Option<u16>,
}

/// Parses `unix://PATH`, `tcp://`, `http://`, `https://` and a bare `HOST:PORT` (tcp), as
/// the docker CLI's `parseDockerDaemonHost` does.
fn parse_host(host: &str) -> Result<HostUrl, HostProblem> {
    let (scheme, rest) = host.split_once("://").unwrap_or(("tcp", host));
    let tcp = |scheme| Ok(HostUrl::Tcp(scheme, parse_tcp(rest)?));
    match scheme {
        "unix" if rest.is_empty() => Ok(HostUrl::Unix(PathBuf::from(DEFAULT_SOCKET))),
        "unix" => Ok(HostUrl::Unix(PathBuf::from(rest))),
        "tcp" => tcp(TcpScheme::Tcp),
        "http" => tcp(TcpScheme::Http),
        "https" => tcp(TcpScheme::Https),
        "ssh" => parse_ssh(rest).map(HostUrl::Ssh),
        "npipe" => Err(HostProblem::UnsupportedScheme(scheme.to_owned())),
        _ => Err(HostProblem::UnknownScheme),
    }
}

/// `[USER@]HOST[:PORT]`, as the docker CLI's ssh connection helper takes it: no path, no
/// password.
fn parse_ssh(rest: &str) -> Result<SshDestination, HostProblem> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        return Err(HostProblem::MalformedSsh(
            "a path after the host is not supported",
        ));
    }
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            return Err(HostProblem::MalformedSsh(
                "a password in the URL is not supported (use a key or the ssh agent)",
            ));
        }
        Some((user, host_port)) => (Some(user.to_owned()), host_port),
        None => (None, authority),
    };
    let (host, port) = split_port(host_port).map_err(|_| {
        HostProblem::MalformedSsh("an IPv6 address needs its brackets: ssh://[::1]:22")
    })?;
    if host.is_empty() || user.as_deref() == Some("") {
        return Err(HostProblem::MalformedSsh("the user or host is empty"));
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => {
                return Err(HostProblem::MalformedSsh(
                    "the port is not a number from 1 to 65535",
                ));
            }
        },
    };
    Ok(SshDestination {
        user,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

/// `HOST:PORT`, `[IPV6]:PORT`, either without port, or `:PORT` (host `localhost`).
fn parse_tcp(rest: &str) -> Result<TcpAddr, HostProblem> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        return Err(HostProblem::Malformed(
            "a path after HOST:PORT is not supported",
        ));
    }
    let (host, port) = split_port(authority)?;
    let host = if host.is_empty() {
        DEFAULT_TCP_HOST
    } else {
        host
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => {
                return Err(HostProblem::Malformed(
                    "the port is not a number from 1 to 65535",
                ));
            }
        },
    };
    Ok(TcpAddr {
        host: host.to_owned(),
        port,
    })
}

fn split_port(authority: &str) -> Result<(&str, Option<&str>), HostProblem> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(HostProblem::Malformed(
            "an IPv6 address lacks its closing `]`",
        ))?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or(HostProblem::Malformed(
                    "unexpected text after the IPv6 address",
                )),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

impl crate::error::Diagnostic for EndpointError {
    fn code(&self) -> &'static str {
        "invalid_endpoint"
    }

    fn hint(&self) -> Option<String> {
        // Every message already ends with the fix.
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    /// A home directory with a docker config directory and context store.
    struct Home(tempfile::TempDir);

    impl Home {
        fn new() -> Self {
            Home(tempfile::tempdir().unwrap())
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn config_dir(&self) -> PathBuf {
            self.path().join(".docker")
        }

        fn write(&self, path: &Path, text: &str) {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn set_current_context(&self, name: &str) {
            let config = serde_json::json!({ "auths": {}, "currentContext": name });
            self.write(&self.config_dir().join("config.json"), &config.to_string());
        }

        fn add_context(&self, name: &str, host: &str, skip_verify: bool) {
            let meta = serde_json::json!({
                "Name": name,
                "Metadata": {},
                "Endpoints": { "docker": { "Host": host, "SkipTLSVerify": skip_verify } },
            });
            let path = self.meta_dir(name).join("meta.json");
            self.write(&path, &meta.to_string());
        }

        fn meta_dir(&self, name: &str) -> PathBuf {
            let meta = self.config_dir().join("contexts/meta");
            meta.join(context_id(name))
        }

        /// Writes the named PEM files into the context's TLS directory; returns the directory.
        fn add_context_tls(&self, name: &str, files: &[&str]) -> PathBuf {
            let tls = self.config_dir().join("contexts/tls");
            let dir = tls.join(context_id(name)).join("docker");
            for file in files {
                self.write(&dir.join(file), "PEM");
            }
            dir
        }
    }

    fn unix(path: &str) -> Endpoint {
        Endpoint::Unix(PathBuf::from(path))
    }

    fn tcp(addr: &str) -> Endpoint {
        Endpoint::Tcp {
            addr: addr.to_owned(),
            tls: None,
        }
    }

    fn host_flag(host: &str) -> ConnectionFlags {
        ConnectionFlags {
            host: Some(host.to_owned()),
            ..Default::default()
        }
    }

    fn context_flag(name: &str) -> ConnectionFlags {
        ConnectionFlags {
            context: Some(name.to_owned()),
            ..Default::default()
        }
    }

    fn resolve_in(home: &Home, flags: &ConnectionFlags, vars: &[(&str, &str)]) -> Resolved {
        resolve(flags, &env_of(vars), Some(home.path())).unwrap()
    }

    #[test]
    fn endpoints_display_as_urls() {
        let files = |verify| TlsFiles {
            ca: None,
            cert: None,
            key: None,
            verify,
        };
        let tls = |verify| Endpoint::Tcp {
            addr: "h:2376".into(),
            tls: Some(files(verify)),
        };
        assert_eq!(unix("/run/d.sock").to_string(), "unix:///run/d.sock");
        assert_eq!(tcp("h:2375").to_string(), "tcp://h:2375");
        assert_eq!(tls(true).to_string(), "tcp://h:2376 (TLS)");
        let unverified = "tcp://h:2376 (TLS, server not verified)";
        assert_eq!(tls(false).to_string(), unverified);
    }

    #[test]
    fn context_id_is_sha256_hex_of_the_name() {
        assert_eq!(
            context_id("foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    /// (case, currentContext, flags, environment, expected context, endpoint, source)
    type PrecedenceCase<'a> = (
        &'a str,
        Option<&'a str>,
        ConnectionFlags,
        Vec<(&'a str, &'a str)>,
        &'a str,
        Endpoint,
        &'static str,
    );

    #[test]
    fn precedence_matches_the_docker_cli() {
        let home = Home::new();
        home.add_context("foo", "tcp://foo.example:2375", false);
        home.add_context("bar", "unix:///run/bar.sock", false);
        let other_config = home.path().join("other");
        home.write(
            &other_config.join("config.json"),
            r#"{"currentContext":"baz"}"#,
        );
        let baz_meta = other_config.join("contexts/meta").join(context_id("baz"));
        let baz = r#"{"Endpoints":{"docker":{"Host":"unix:///baz.sock"}}}"#;
        home.write(&baz_meta.join("meta.json"), baz);
        let other = other_config.to_str().unwrap();
        let foo = || tcp("foo.example:2375");
        let bar = || unix("/run/bar.sock");
        let socket = || unix(DEFAULT_SOCKET);
        let dh = ("DOCKER_HOST", "tcp://env.example:1");
        let dc = ("DOCKER_CONTEXT", "foo");
        #[rustfmt::skip]
        let cases: Vec<PrecedenceCase> = vec![
            ("nothing set", None, ConnectionFlags::default(), vec![], "default", socket(), "the default socket"),
            ("-H", None, host_flag("tcp://flag.example:1"), vec![], "default", tcp("flag.example:1"), "--host"),
            ("-H beats DOCKER_HOST", None, host_flag("tcp://flag.example:1"), vec![dh], "default", tcp("flag.example:1"), "--host"),
            ("DOCKER_HOST", None, ConnectionFlags::default(), vec![dh], "default", tcp("env.example:1"), "DOCKER_HOST"),
            ("DOCKER_HOST beats DOCKER_CONTEXT", None, ConnectionFlags::default(), vec![dh, dc], "default", tcp("env.example:1"), "DOCKER_HOST"),
            ("-H beats DOCKER_CONTEXT", None, host_flag("unix:///x.sock"), vec![dc], "default", unix("/x.sock"), "--host"),
            ("-H beats currentContext", Some("bar"), host_flag("unix:///x.sock"), vec![], "default", unix("/x.sock"), "--host"),
            ("DOCKER_HOST beats currentContext", Some("bar"), ConnectionFlags::default(), vec![dh], "default", tcp("env.example:1"), "DOCKER_HOST"),
            ("DOCKER_CONTEXT", None, ConnectionFlags::default(), vec![dc], "foo", foo(), "DOCKER_CONTEXT"),
            ("DOCKER_CONTEXT beats currentContext", Some("bar"), ConnectionFlags::default(), vec![dc], "foo", foo(), "DOCKER_CONTEXT"),
            ("currentContext", Some("bar"), ConnectionFlags::default(), vec![], "bar", bar(), "currentContext in config.json"),
            ("currentContext default", Some("default"), ConnectionFlags::default(), vec![], "default", socket(), "the default socket"),
            ("--context beats DOCKER_HOST", None, context_flag("bar"), vec![dh, dc], "bar", bar(), "--context"),
            ("--context beats currentContext", Some("foo"), context_flag("bar"), vec![], "bar", bar(), "--context"),
            ("--context default uses DOCKER_HOST", Some("bar"), context_flag("default"), vec![dh], "default", tcp("env.example:1"), "DOCKER_HOST"),
            ("empty --context is ignored", Some("bar"), context_flag(""), vec![], "bar", bar(), "currentContext in config.json"),
            ("empty DOCKER_HOST is ignored", None, ConnectionFlags::default(), vec![("DOCKER_HOST", ""), dc], "foo", foo(), "DOCKER_CONTEXT"),
            ("empty DOCKER_CONTEXT is ignored", Some("bar"), ConnectionFlags::default(), vec![("DOCKER_CONTEXT", "")], "bar", bar(), "currentContext in config.json"),
            ("DOCKER_CONTEXT=default", Some("bar"), ConnectionFlags::default(), vec![("DOCKER_CONTEXT", "default")], "default", socket(), "the default socket"),
            ("DOCKER_CONFIG moves config.json", Some("bar"), ConnectionFlags::default(), vec![("DOCKER_CONFIG", other)], "baz", unix("/baz.sock"), "currentContext in config.json"),
            ("empty -H means the default host", None, host_flag(""), vec![dh, dc], "default", socket(), "the default socket"),
        ];
        for (name, current, flags, vars, context, endpoint, source) in cases {
            let _ = fs::remove_file(home.config_dir().join("config.json"));
            if let Some(current) = current {
                home.set_current_context(current);
            }
            let resolved = resolve_in(&home, &flags, &vars);
            let expected = Resolved {
                endpoint,
                context: context.to_owned(),
                source,
            };
            assert_eq!(resolved, expected, "case: {name}");
        }
    }

    #[test]
    fn context_together_with_host_is_an_error() {
        let flags = ConnectionFlags {
            host: Some("tcp://a:1".into()),
            context: Some("foo".into()),
            ..Default::default()
        };
        let err = resolve(&flags, &env_of(&[]), None).unwrap_err();
        assert!(matches!(err, EndpointError::ContextWithHost), "{err}");
        assert!(err.to_string().contains("--context and --host"));
    }

    #[test]
    fn missing_context_names_docker_context_ls() {
        let home = Home::new();
        let err = resolve(&context_flag("nope"), &env_of(&[]), Some(home.path())).unwrap_err();
        assert!(
            matches!(err, EndpointError::ContextNotFound { .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("`nope`") && message.contains("docker context ls"));
        assert!(message.contains("--context"), "{message}");
    }

    #[test]
    fn context_with_tls_material_uses_tls_and_default_tls_port() {
        let home = Home::new();
        home.add_context("ucp", "tcp://ucp.example", false);
        let dir = home.add_context_tls("ucp", &["ca.pem", "cert.pem", "key.pem"]);
        let resolved = resolve_in(&home, &context_flag("ucp"), &[]);
        let tls = TlsFiles {
            ca: Some(dir.join("ca.pem")),
            cert: Some(dir.join("cert.pem")),
            key: Some(dir.join("key.pem")),
            verify: true,
        };
        let expected = Endpoint::Tcp {
            addr: "ucp.example:2376".into(),
            tls: Some(tls),
        };
        assert_eq!(resolved.endpoint, expected);
        assert_eq!(resolved.context, "ucp");
    }

    #[test]
    fn context_uses_only_the_tls_files_present() {
        let home = Home::new();
        home.add_context("ca-only", "tcp://h:443", false);
        let dir = home.add_context_tls("ca-only", &["ca.pem"]);
        let resolved = resolve_in(&home, &context_flag("ca-only"), &[]);
        let tls = TlsFiles {
            ca: Some(dir.join("ca.pem")),
            cert: None,
            key: None,
            verify: true,
        };
        let expected = Endpoint::Tcp {
            addr: "h:443".into(),
            tls: Some(tls),
        };
        assert_eq!(resolved.endpoint, expected);
    }

    #[test]
    fn context_skip_tls_verify_enables_tls_without_verification() {
        let home = Home::new();
        home.add_context("insecure", "tcp://h", true);
        let resolved = resolve_in(&home, &context_flag("insecure"), &[]);
        let tls = TlsFiles {
            ca: None,
            cert: None,
            key: None,
            verify: false,
        };
        let expected = Endpoint::Tcp {
            addr: "h:2376".into(),
            tls: Some(tls),
        };
        assert_eq!(resolved.endpoint, expected);
    }

    #[test]
    fn context_without_tls_material_is_plain_tcp() {
        let home = Home::new();
        home.add_context("plain", "tcp://h", false);
        let resolved = resolve_in(&home, &context_flag("plain"), &[]);
        assert_eq!(resolved.endpoint, tcp("h:2375"));
    }

    #[test]
    fn context_ignores_default_tls_settings() {
        let home = Home::new();
        home.add_context("plain", "unix:///ctx.sock", false);
        let vars = [("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CONTEXT", "plain")];
        let resolved = resolve_in(&home, &ConnectionFlags::default(), &vars);
        assert_eq!(resolved.endpoint, unix("/ctx.sock"));
    }

    #[test]
    fn context_store_errors_name_the_file() {
        let home = Home::new();
        let meta = home.meta_dir("broken").join("meta.json");
        home.write(&meta, "{not json");
        let err = resolve(&context_flag("broken"), &env_of(&[]), Some(home.path())).unwrap_err();
        assert!(matches!(err, EndpointError::ParseConfig { .. }), "{err}");
        assert!(err.to_string().contains(&meta.display().to_string()));

        home.write(&meta, r#"{"Name":"broken","Endpoints":{}}"#);
        let err = resolve(&context_flag("broken"), &env_of(&[]), Some(home.path())).unwrap_err();
        assert!(
            matches!(err, EndpointError::ContextWithoutHost { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("broken"));
    }

    #[test]
    fn broken_config_json_is_an_error() {
        let home = Home::new();
        home.write(&home.config_dir().join("config.json"), "[");
        let err = resolve(&ConnectionFlags::default(), &env_of(&[]), Some(home.path()));
        let err = err.unwrap_err();
        assert!(matches!(err, EndpointError::ParseConfig { .. }), "{err}");
        assert!(err.to_string().contains("config.json"));
    }

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>) -> Endpoint {
        Endpoint::Ssh(SshDestination {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        })
    }

    /// A context whose host is ssh:// is reached through ssh, its TLS settings unused.
    #[test]
    fn context_ssh_host_goes_through_ssh() {
        let home = Home::new();
        home.add_context("remote", "ssh://user@h:2222", true);
        let resolved = resolve(&context_flag("remote"), &env_of(&[]), Some(home.path())).unwrap();
        assert_eq!(resolved.endpoint, ssh(Some("user"), "h", Some(2222)));
        assert_eq!(resolved.endpoint.to_string(), "ssh://user@h:2222");
    }

    #[test]
    fn ssh_hosts_as_the_docker_cli_takes_them() {
        let home = Home::new();
        let cases = [
            ("ssh://h", ssh(None, "h", None)),
            (
                "ssh://root@10.0.0.1:22",
                ssh(Some("root"), "10.0.0.1", Some(22)),
            ),
            ("ssh://me@[::1]:2200", ssh(Some("me"), "::1", Some(2200))),
            (
                "ssh://ops@manager.example",
                ssh(Some("ops"), "manager.example", None),
            ),
        ];
        for (host, expected) in cases {
            let vars = env_of(&[("DOCKER_HOST", host), ("DOCKER_TLS_VERIFY", "1")]);
            let resolved = resolve(&ConnectionFlags::default(), &vars, Some(home.path()));
            assert_eq!(resolved.unwrap().endpoint, expected, "{host}");
        }
    }

    #[test]
    fn default_context_tls_from_cert_path() {
        let home = Home::new();
        let certs = home.path().join("bundle");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            home.write(&certs.join(file), "PEM");
        }
        let vars = [
            ("DOCKER_HOST", "tcp://ucp.example:443"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ];
        let resolved = resolve_in(&home, &ConnectionFlags::default(), &vars);
        let tls = TlsFiles {
            ca: Some(certs.join("ca.pem")),
            cert: Some(certs.join("cert.pem")),
            key: Some(certs.join("key.pem")),
            verify: true,
        };
        let expected = Endpoint::Tcp {
            addr: "ucp.example:443".into(),
            tls: Some(tls),
        };
        assert_eq!(resolved.endpoint, expected);
        assert_eq!(resolved.source, "DOCKER_HOST");
    }

    #[test]
    fn default_context_tls_files_default_to_config_dir_and_keep_missing_ca() {
        let home = Home::new();
        let flags = ConnectionFlags {
            tlsverify: true,
            ..host_flag("tcp://h")
        };
        let resolved = resolve_in(&home, &flags, &[]);
        let tls = TlsFiles {
            ca: Some(home.config_dir().join("ca.pem")),
            cert: None,
            key: None,
            verify: true,
        };
        let expected = Endpoint::Tcp {
            addr: "h:2376".into(),
            tls: Some(tls),
        };
        assert_eq!(resolved.endpoint, expected);
    }

    #[test]
    fn tls_flag_files_override_cert_path() {
        let home = Home::new();
        let certs = home.path().join("certs");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            home.write(&certs.join(file), "PEM");
        }
        let flags = ConnectionFlags {
            tls: true,
            tlscacert: Some("/ca.crt".into()),
            tlskey: Some("/key".into()),
            ..host_flag("tcp://h:1")
        };
        let vars = [("DOCKER_CERT_PATH", certs.to_str().unwrap())];
        let resolved = resolve_in(&home, &flags, &vars);
        let tls = TlsFiles {
            ca: Some("/ca.crt".into()),
            cert: Some(certs.join("cert.pem")),
            key: Some("/key".into()),
            verify: false,
        };
        let expected = Endpoint::Tcp {
            addr: "h:1".into(),
            tls: Some(tls),
        };
        assert_eq!(resolved.endpoint, expected);
    }

    /// (`DOCKER_TLS`, `DOCKER_TLS_VERIFY`, `--tls`, `--tlsverify`) -> verify, or None = no TLS.
    #[test]
    fn tls_switches_on_the_default_context() {
        let home = Home::new();
        #[rustfmt::skip]
        let cases = [
            ("", "", false, false, None),
            ("1", "", false, false, Some(false)),
            ("", "1", false, false, Some(true)),
            ("", "0", false, false, Some(true)), // non-empty counts, as in the CLI
            ("", "", true, false, Some(false)),
            ("", "", false, true, Some(true)),
            ("1", "1", false, false, Some(true)),
            ("", "", true, true, Some(true)),
        ];
        for (tls_env, verify_env, tls, tlsverify, expected) in cases {
            let flags = ConnectionFlags {
                tls,
                tlsverify,
                ..host_flag("tcp://h")
            };
            let vars = [("DOCKER_TLS", tls_env), ("DOCKER_TLS_VERIFY", verify_env)];
            let Endpoint::Tcp { tls: got, .. } = resolve_in(&home, &flags, &vars).endpoint else {
                panic!("expected tcp");
            };
            let case = (tls_env, verify_env, tls, tlsverify);
            assert_eq!(got.map(|tls| tls.verify), expected, "case {case:?}");
        }
    }

    #[test]
    fn tls_without_host_defaults_to_localhost_2376() {
        let home = Home::new();
        let vars = [("DOCKER_TLS_VERIFY", "1")];
        let resolved = resolve_in(&home, &ConnectionFlags::default(), &vars);
        assert!(matches!(
            resolved.endpoint,
            Endpoint::Tcp { ref addr, tls: Some(_) } if addr == "localhost:2376"
        ));
        assert_eq!(resolved.source, "the default TLS host");
    }

    #[test]
    fn tls_settings_do_not_apply_to_unix_sockets() {
        let home = Home::new();
        let vars = [("DOCKER_TLS_VERIFY", "1"), ("DOCKER_HOST", "unix:///s")];
        let resolved = resolve_in(&home, &ConnectionFlags::default(), &vars);
        assert_eq!(resolved.endpoint, unix("/s"));
    }

    #[test]
    fn tls_needs_a_config_dir_without_home() {
        let vars = env_of(&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_HOST", "tcp://h")]);
        let err = resolve(&ConnectionFlags::default(), &vars, None).unwrap_err();
        assert!(matches!(err, EndpointError::NoConfigDir), "{err}");
        assert!(err.to_string().contains("DOCKER_CONFIG"));
    }

    #[test]
    fn host_urls_and_default_ports() {
        let home = Home::new();
        let tls = |addr: &str| (addr.to_owned(), true);
        let plain = |addr: &str| (addr.to_owned(), false);
        #[rustfmt::skip]
        let cases = [
            ("tcp://h", plain("h:2375")),
            ("tcp://h:1234", plain("h:1234")),
            ("tcp://h:", plain("h:2375")),
            ("tcp://:2375", plain("localhost:2375")),
            ("tcp://", plain("localhost:2375")),
            ("tcp://h/", plain("h:2375")),
            ("h:1234", plain("h:1234")),
            ("h", plain("h:2375")),
            ("http://h", plain("h:2375")),
            ("https://h", tls("h:2376")),
            ("https://h:443", tls("h:443")),
            ("tcp://[::1]", plain("[::1]:2375")),
            ("tcp://[::1]:99", plain("[::1]:99")),
            ("  tcp://h:1  ", plain("h:1")),
        ];
        for (host, (addr, uses_tls)) in cases {
            let resolved = resolve_in(&home, &host_flag(host), &[]);
            let Endpoint::Tcp { addr: got, tls } = resolved.endpoint else {
                panic!("{host}: expected tcp");
            };
            assert_eq!((got, tls.is_some()), (addr, uses_tls), "host {host}");
        }
        let unix_cases = [
            ("unix:///run/d.sock", "/run/d.sock"),
            ("unix://", DEFAULT_SOCKET),
        ];
        for (host, path) in unix_cases {
            let resolved = resolve_in(&home, &host_flag(host), &[]);
            assert_eq!(resolved.endpoint, unix(path), "host {host}");
        }
    }

    #[test]
    fn bad_hosts_are_rejected_with_a_fix() {
        let home = Home::new();
        let unsupported = |scheme: &str| HostProblem::UnsupportedScheme(scheme.to_owned());
        let cases = [
            ("ssh://user:pw@h", HostProblem::MalformedSsh("")),
            ("ssh://user@h/var/run", HostProblem::MalformedSsh("")),
            ("ssh://user@h:x", HostProblem::MalformedSsh("")),
            ("ssh://@h", HostProblem::MalformedSsh("")),
            ("ssh://", HostProblem::MalformedSsh("")),
            ("npipe:////./pipe/docker_engine", unsupported("npipe")),
            ("ftp://h", HostProblem::UnknownScheme),
            ("fd://", HostProblem::UnknownScheme),
            ("tcp://h:port", HostProblem::Malformed("")),
            ("tcp://h:70000", HostProblem::Malformed("")),
            ("tcp://h:0", HostProblem::Malformed("")),
            ("tcp://h:1/v1.41", HostProblem::Malformed("")),
            ("tcp://[::1", HostProblem::Malformed("")),
            ("tcp://[::1]x", HostProblem::Malformed("")),
        ];
        for (host, expected) in cases {
            let vars = env_of(&[("DOCKER_HOST", host)]);
            let err = resolve(&ConnectionFlags::default(), &vars, Some(home.path()));
            let err = err.unwrap_err();
            let EndpointError::BadHost { problem, .. } = &err else {
                panic!("{host}: unexpected {err}");
            };
            let same = std::mem::discriminant(problem) == std::mem::discriminant(&expected);
            assert!(same, "{host}: {problem:?}");
            assert!(
                err.to_string()
                    .starts_with(&format!("DOCKER_HOST is `{host}`: "))
            );
        }
    }

    #[test]
    fn unsupported_schemes_name_the_alternatives() {
        let vars = env_of(&[("DOCKER_HOST", "npipe:////./pipe/docker_engine")]);
        let err = resolve(&ConnectionFlags::default(), &vars, None).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("npipe:// connections are not supported"),
            "{message}"
        );
        assert!(
            message.contains("tcp://") && message.contains("ssh://") && message.contains("unix://"),
            "{message}"
        );
    }

    #[test]
    fn plain_http_with_tls_is_an_error() {
        let home = Home::new();
        let vars = [("DOCKER_HOST", "http://h:80"), ("DOCKER_TLS_VERIFY", "1")];
        let err = resolve(
            &ConnectionFlags::default(),
            &env_of(&vars),
            Some(home.path()),
        );
        let err = err.unwrap_err();
        assert!(
            matches!(
                err,
                EndpointError::BadHost {
                    problem: HostProblem::PlainHttpWithTls,
                    ..
                }
            ),
            "{err}"
        );
    }
}
