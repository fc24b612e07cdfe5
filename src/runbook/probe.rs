//! `status --probe`: one HTTP request to each node that runs a proxy task, the way a
//! client outside the swarm reaches it — the node's own address and the published port —
//! so one command tells whether the migration works from the outside.
//!
//! The client is deliberately tiny (an HTTP/1.0 `GET /` over a plain TCP connection, read
//! up to the status line) and talks only to the addresses the swarm reports for its nodes.
//! Any HTTP answer counts as the proxy answering: nginx answers 503 for a host it has no
//! route for, which still proves the path to the proxy works.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::output::report::ProbeResult;
use crate::runbook::doctor::{ProbeTarget, Probes};

/// How long one request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Probes every target at once; results by proxy service, in the targets' order.
pub async fn run(targets: Vec<ProbeTarget>) -> Probes {
    let mut requests = JoinSet::new();
    for (index, target) in targets.iter().cloned().enumerate() {
        requests.spawn(async move { (index, get(&target.addr, target.port).await) });
    }
    let mut answers = vec![None; targets.len()];
    while let Some(joined) = requests.join_next().await {
        if let Ok((index, answer)) = joined {
            answers[index] = Some(answer);
        }
    }
    let mut probes = Probes::new();
    for (target, answer) in targets.into_iter().zip(answers) {
        let (status, error, millis) = match answer {
            Some(Answer { status, millis }) => match status {
                Ok(code) => (Some(code), None, millis),
                Err(error) => (None, Some(error), millis),
            },
            None => (None, Some("the probe did not finish".to_owned()), 0),
        };
        probes.entry(target.proxy).or_default().push(ProbeResult {
            node: target.node,
            addr: target.addr,
            port: target.port,
            status,
            error,
            millis,
        });
    }
    probes
}

/// What one request got: the status code or why there was none, and how long it took.
#[derive(Debug, Clone)]
struct Answer {
    status: Result<u16, String>,
    millis: u64,
}

async fn get(addr: &str, port: u16) -> Answer {
    let started = Instant::now();
    let status = match tokio::time::timeout(TIMEOUT, request(addr, port)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
    };
    Answer {
        status,
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

async fn request(addr: &str, port: u16) -> Result<u16, String> {
    let mut stream = TcpStream::connect((addr, port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET / HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: interlockctl\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buffer = [0_u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let read = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    status_code(&head)
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`).
fn status_code(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(code))) if version.starts_with("HTTP/") => Ok(code),
        _ if head.is_empty() => Err("the connection closed without an answer".to_owned()),
        _ => Err(format!("not an HTTP answer: {:?}", line.trim())),
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            status_code(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Ok(503)
        );
        assert_eq!(status_code(b"HTTP/1.0 200 OK\r\nServer: x\r\n"), Ok(200));
        assert_eq!(
            status_code(b""),
            Err("the connection closed without an answer".into())
        );
        assert_eq!(
            status_code(b"SSH-2.0-OpenSSH\r\n"),
            Err("not an HTTP answer: \"SSH-2.0-OpenSSH\"".into())
        );
    }

    /// A loopback server that answers one request with `answer`, or never answers.
    async fn server(answer: Option<&'static [u8]>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0_u8; 256];
            let _ = stream.read(&mut request).await;
            match answer {
                Some(answer) => {
                    let _ = stream.write_all(answer).await;
                }
                None => tokio::time::sleep(TIMEOUT * 2).await,
            }
        });
        port
    }

    fn target(node: &str, port: u16) -> ProbeTarget {
        ProbeTarget {
            proxy: "proxy".into(),
            node: node.into(),
            addr: "127.0.0.1".into(),
            port,
        }
    }

    #[tokio::test]
    async fn every_node_gets_one_request_and_its_own_result() {
        let ok = server(Some(b"HTTP/1.1 200 OK\r\n\r\nhello")).await;
        let silent = server(None).await;
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let probes = run(vec![
            target("a", ok),
            target("b", silent),
            target("c", closed),
        ])
        .await;
        let results = &probes["proxy"];
        let outcome: Vec<(&str, Option<u16>, bool)> = results
            .iter()
            .map(|r| (r.node.as_str(), r.status, r.error.is_some()))
            .collect();
        assert_eq!(
            outcome,
            [
                ("a", Some(200), false),
                ("b", None, true),
                ("c", None, true)
            ]
        );
        assert_eq!(results[1].error.as_deref(), Some("no answer within 2 s"));
        assert!(results[1].millis >= 2000, "{results:?}");
    }
}
