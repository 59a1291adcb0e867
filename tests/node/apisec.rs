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

/// `accumen token generate`: the token and its token-file line.
fn generate_token() -> (String, String) {
    let out = std::process::Command::new(BIN)
        .args(["token", "generate"])
        .env_remove("ACCUMEN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    let line = v["token_file_line"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64, "{v}");
    assert!(line.starts_with("sha256:"), "{v}");
    (token, line)
}

/// A node whose `api.auth.token_file` holds the hash of one generated token.
fn node_with_token(extra: &str) -> (TestNode, String, tempfile::TempDir) {
    let (token, line) = generate_token();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-tokens");
    std::fs::write(&file, format!("# test\n{line}\n")).unwrap();
    let node = TestNode::start_in(
        dir.path(),
        &format!(
            "api:\n  auth:\n    token_file: \"{}\"\n{extra}",
            file.display()
        ),
        &[],
    );
    (node, token, dir)
}

fn assert_unauthorized(answer: &str) {
    assert_eq!(status(answer), 401, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nwww-authenticate: bearer"),
        "{answer}"
    );
    assert!(answer.contains("\"unauthorized\""), "{answer}");
}

#[test]
fn writes_and_admin_need_a_token_reads_stay_open() {
    let (node, token, _dir) = node_with_token("");
    // Writes: refused without a token and with a wrong one, nothing admitted.
    let mut sender = Sender::new(93);
    let (tx, _) = sender.deploy(fixture("counter"));
    let body = serde_json::to_string(&tx).unwrap();
    assert_unauthorized(&raw(&node, "POST", "/v1/tx", &body));
    let (code, v) = node
        .client()
        .with_token(Some("not-the-token"))
        .post("/v1/tx", &serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(code, 401, "{v}");
    // Reads stay open.
    assert_eq!(status(&raw(&node, "GET", "/v1/chain", "")), 200);
    // Accepted with the token.
    let (code, v) = node
        .client()
        .with_token(Some(&token))
        .post("/v1/tx", &serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(code, 202, "{v}");
    node.wait_included(v["tx_hash"].as_str().unwrap());
    // The admin listener needs it for every route.
    let admin = accumen::client::HttpClient::new(&node.admin).unwrap();
    let (code, v) = admin.get("/admin/actors").unwrap();
    assert_eq!(code, 401, "{v}");
    let (code, v) = admin.with_token(Some(&token)).get("/admin/actors").unwrap();
    assert_eq!(code, 200, "{v}");
    let text = node.metrics_text();
    assert!(
        text.lines().any(
            |l| l.starts_with("accumen_api_refused_total{reason=\"unauthorized\"}")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
}

#[test]
fn protect_reads_and_the_cli_token() {
    let (node, token, _dir) = node_with_token("    protect_reads: true");
    assert_unauthorized(&raw(&node, "GET", "/v1/chain", ""));
    let status_cmd = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["status", "--api", &node.api])
            .env_remove("RUST_LOG")
            .env_remove("ACCUMEN_TOKEN");
        if let Some(t) = token {
            cmd.env("ACCUMEN_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let refused = status_cmd(None);
    assert!(!refused.status.success(), "{refused:?}");
    let ok = status_cmd(Some(&token));
    assert!(ok.status.success(), "{ok:?}");
}

#[test]
fn a_bad_token_file_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("api-tokens");
    std::fs::write(&tokens, "not-a-hash\n").unwrap();
    let config = dir.path().join("node.yaml");
    let extra = format!("api:\n  auth:\n    token_file: \"{}\"", tokens.display());
    std::fs::write(&config, merge_yaml(&base_config(dir.path()), &extra)).unwrap();
    let out = run_to_exit("sequencer", &config, &[]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api.auth.token_file"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}
