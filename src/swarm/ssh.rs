//! A connection to a remote engine through the system `ssh`, as the docker CLI makes one for
//! `ssh://` hosts: `ssh -o ConnectTimeout=30 -T [-l USER] [-p PORT] -- HOST docker system
//! dial-stdio`, HTTP spoken over the process's stdin and stdout.
//!
//! The system `ssh` is used, not a library, so the user's `~/.ssh/config`, agent, keys and
//! known_hosts apply exactly as for `ssh` and `docker -H ssh://...`. When the remote side
//! ends the connection before answering, the stream's error is what `ssh` said on stderr
//! (an unknown host key, a refused login) or that the remote has no `docker` CLI, instead of
//! a bare "connection closed".

use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use super::endpoint::SshDestination;

/// How much of `ssh`'s stderr is kept for an error message.
const STDERR_LIMIT: u64 = 16 * 1024;

/// The arguments of `ssh` for `destination`, as the docker CLI passes them.
pub fn ssh_args(destination: &SshDestination) -> Vec<String> {
    let mut args = vec!["-o".into(), "ConnectTimeout=30".into(), "-T".into()];
    if let Some(user) = &destination.user {
        args.extend(["-l".into(), user.clone()]);
    }
    if let Some(port) = destination.port {
        args.extend(["-p".into(), port.to_string()]);
    }
    args.extend(["--".into(), destination.host.clone()]);
    args.extend(["docker", "system", "dial-stdio"].map(String::from));
    args
}

/// Why the last `ssh` process of a transport ended badly, for the request it failed: hyper
/// may drop a connection that dies before its first request went out without its error.
pub type LastFailure = Arc<Mutex<Option<String>>>;

/// One `ssh ... docker system dial-stdio` process as a byte stream.
pub struct SshStream {
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Why the process ended, once it did (`None`: it ended well).
    ended: oneshot::Receiver<Option<String>>,
}

impl SshStream {
    /// Starts `ssh` for `destination`; an `ssh` that cannot be started is an error naming
    /// the fix. Why it ended, if badly, also goes to `last_failure`.
    pub fn connect(
        destination: &SshDestination,
        last_failure: &LastFailure,
    ) -> io::Result<SshStream> {
        let mut child = Command::new("ssh")
            .args(ssh_args(destination))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                let fix = if error.kind() == io::ErrorKind::NotFound {
                    "; install an OpenSSH client (the docker CLI needs one for ssh:// hosts too)"
                } else {
                    ""
                };
                io::Error::new(
                    error.kind(),
                    format!("cannot run `ssh` for {destination}: {error}{fix}"),
                )
            })?;
        let (stdin, stdout, stderr) = (
            child.stdin.take().expect("piped stdin"),
            child.stdout.take().expect("piped stdout"),
            child.stderr.take().expect("piped stderr"),
        );
        let (sender, ended) = oneshot::channel();
        let (destination, last_failure) = (destination.clone(), Arc::clone(last_failure));
        tokio::spawn(async move {
            let mut said = String::new();
            let _ = stderr.take(STDERR_LIMIT).read_to_string(&mut said).await;
            let status = child.wait().await;
            let why = match status {
                Ok(status) => why_it_ended(&destination, status, &said),
                Err(error) => Some(format!(
                    "ssh to {destination} could not be waited for: {error}"
                )),
            };
            if why.is_some() {
                why.clone_into(&mut last_failure.lock().unwrap_or_else(|p| p.into_inner()));
            }
            let _ = sender.send(why);
        });
        Ok(SshStream {
            stdin,
            stdout,
            ended,
        })
    }
}

/// What went wrong when `ssh` ended with `status` after saying `said` on stderr; `None` when
/// it ended well.
fn why_it_ended(destination: &SshDestination, status: ExitStatus, said: &str) -> Option<String> {
    if status.success() {
        return None;
    }
    let said = said.trim();
    let no_docker = status.code() == Some(127)
        || said.contains("docker: not found")
        || said.contains("docker: command not found");
    let ending = if said.is_empty() {
        String::new()
    } else {
        format!(": {}", said.lines().last().unwrap_or_default())
    };
    Some(if no_docker {
        format!(
            "the remote host of {destination} has no `docker` CLI on its PATH (needed for \
             `docker system dial-stdio`){ending}; install the docker CLI there, or check the \
             PATH of a non-interactive login"
        )
    } else {
        format!(
            "ssh to {destination} ended ({status}){ending}; check that `ssh {}` logs in without \
             a prompt and that `docker version` works there",
            ssh_login(destination)
        )
    })
}

/// The `ssh` command line of a manual check.
fn ssh_login(destination: &SshDestination) -> String {
    let mut line = String::new();
    if let Some(port) = destination.port {
        line.push_str(&format!("-p {port} "));
    }
    if let Some(user) = &destination.user {
        line.push_str(&format!("{user}@"));
    }
    line.push_str(&destination.host);
    line
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stdout).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            return Poll::Ready(Ok(()));
        }
        // End of stream: an error when ssh failed, so the caller says why.
        match ready!(Pin::new(&mut self.ended).poll(cx)) {
            Ok(Some(why)) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)))
            }
            Ok(None) | Err(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match ready!(Pin::new(&mut self.stdin).poll_write(cx, data)) {
            // The process is gone: say why it ended rather than "broken pipe".
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                match ready!(Pin::new(&mut self.ended).poll(cx)) {
                    Ok(Some(why)) => Poll::Ready(Err(io::Error::new(error.kind(), why))),
                    Ok(None) | Err(_) => Poll::Ready(Err(error)),
                }
            }
            written => Poll::Ready(written),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn destination(user: Option<&str>, port: Option<u16>) -> SshDestination {
        SshDestination {
            user: user.map(str::to_owned),
            host: "manager".into(),
            port,
        }
    }

    #[test]
    fn arguments_as_the_docker_cli_passes_them() {
        assert_eq!(
            ssh_args(&destination(Some("ops"), Some(2222))).join(" "),
            "-o ConnectTimeout=30 -T -l ops -p 2222 -- manager docker system dial-stdio"
        );
        assert_eq!(
            ssh_args(&destination(None, None)).join(" "),
            "-o ConnectTimeout=30 -T -- manager docker system dial-stdio"
        );
    }

    #[test]
    fn why_ssh_ended_names_the_fix() {
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        let to = destination(Some("ops"), Some(2222));
        assert_eq!(why_it_ended(&to, exit(0), ""), None);
        let no_docker = why_it_ended(&to, exit(127), "bash: line 1: docker: command not found\n");
        assert!(no_docker.unwrap().starts_with(
            "the remote host of ssh://ops@manager:2222 has no `docker` CLI on its PATH"
        ));
        let refused = why_it_ended(
            &to,
            exit(255),
            "ssh: connect to host manager port 2222: Connection refused\n",
        )
        .unwrap();
        assert_eq!(
            refused,
            "ssh to ssh://ops@manager:2222 ended (exit status: 255): ssh: connect to host \
             manager port 2222: Connection refused; check that `ssh -p 2222 ops@manager` logs in \
             without a prompt and that `docker version` works there"
        );
    }
}
