//! API security (issue 11): per-client rate limits on the API listener (`api.rate_limit.*`).
//! A client past its bucket gets 429 `rate_limited` with `Retry-After` and is served again once
//! it has waited; writes and reads are counted apart.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// One request on its own connection (`Connection: close`); the whole answer as text.
fn raw(node: &TestNode, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(node.api.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer to {method} {path}: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// Sends until the first 429 (the bucket holds a few requests and refills slowly, so one comes
/// within a bounded number of requests); returns that answer.
fn until_limited(node: &TestNode, method: &str, path: &str, body: &str) -> String {
    for _ in 0..200 {
        let a = raw(node, method, path, body);
        if status(&a) == 429 {
            return a;
        }
    }
    panic!("no 429 after 200 requests to {method} {path}");
}

fn refused_rate_limited(node: &TestNode) -> f64 {
    let text = node.metrics_text();
    text.lines()
        .find(|l| l.starts_with("accumen_api_refused_total{reason=\"rate_limited\"}"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rate_limited refusals in /metrics:\n{text}"))
}

fn assert_limited(answer: &str) {
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(answer.contains("\"rate_limited\""), "{answer}");
}

#[test]
fn reads_limited_then_recovered() {
    let node =
        TestNode::start("api:\n  rate_limit:\n    reads:\n      per_second: 1\n      burst: 3");
    assert_eq!(refused_rate_limited(&node), 0.0);
    let answer = until_limited(&node, "GET", "/v1/chain", "");
    assert_limited(&answer);
    assert!(refused_rate_limited(&node) >= 1.0);
    // Waiting is the remedy: served again once a token is back (a refusal takes none).
    wait_for("the read limit to let a request through", DEADLINE, || {
        let a = raw(&node, "GET", "/v1/chain", "");
        (status(&a) == 200).then_some(())
    });
    // Writes are not counted against the read limit, nor limited at all here.
    let mut sender = Sender::new(91);
    deploy(&node, &mut sender, fixture("counter"));
}

#[test]
fn writes_limited_apart_from_reads() {
    let node =
        TestNode::start("api:\n  rate_limit:\n    writes:\n      per_second: 1\n      burst: 2");
    // Garbage is enough to spend tokens: the limit applies before the body is read.
    let answer = until_limited(&node, "POST", "/v1/tx", "{}");
    assert_limited(&answer);
    assert!(refused_rate_limited(&node) >= 1.0);
    // Reads stay open while writes wait.
    let (code, v) = node.get("/v1/chain");
    assert_eq!(code, 200, "{v}");
    // An honest transaction goes through once the client has waited.
    let mut sender = Sender::new(92);
    let (tx, _) = sender.deploy(fixture("counter"));
    let (code, v): (u16, Value) = wait_for("the write limit to admit", DEADLINE, || {
        let (code, v) = submit(&node, &tx);
        (code != 429).then_some((code, v))
    });
    assert_eq!(code, 202, "{v}");
}
