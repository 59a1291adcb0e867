//! Attacks on the HTTP API with nothing but a socket (issue 6 §7 and the query item of §9):
//! garbage the node must refuse without doing work in proportion to it, clients that hold
//! connections open without finishing a request, and queries that ask for too much. Every test
//! ends the same way: the chain is still producing blocks and an honest sender's transaction is
//! included.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use accumen::client::HttpClient;
use accumen_actors::types::{Action, Bytes, MAX_ARGS_LEN};
use serde_json::{Value, json};

use crate::harness::*;

/// Longest any raw-socket read waits: a deadline for "the server never answered or closed",
/// not a measure of speed.
const DEADLINE: Duration = Duration::from_secs(60);

/// A raw client connection to the API listener.
struct Raw(TcpStream);

impl Raw {
    fn connect(node: &TestNode) -> Raw {
        let s = TcpStream::connect(node.api.trim_start_matches("http://")).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_nodelay(true).unwrap();
        Raw(s)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// Everything the server sends until it closes the connection. Panics if it has not closed
    /// it within `DEADLINE`.
    fn read_to_close(&mut self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // A close with unread bytes on the server's side arrives as a reset.
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "the server did not close the connection ({e}); it sent {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The value of one sample of /metrics (`name` with its labels, as printed).
fn metric(node: &TestNode, sample: &str) -> f64 {
    let text = node.metrics_text();
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(sample))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{text}"))
}

fn refused(node: &TestNode, reason: &str) -> f64 {
    metric(
        node,
        &format!("accumen_api_refused_total{{reason=\"{reason}\"}}"),
    )
}

/// An honest client after the attack: a fresh sender's deploy is accepted and included, and
/// blocks keep coming.
fn honest_client_is_served(node: &TestNode, seed: u8) {
    let height = node.height();
    let mut honest = Sender::new(seed);
    deploy(node, &mut honest, fixture("counter"));
    wait_for("blocks after the attack", Duration::from_secs(30), || {
        (node.height() > height).then_some(())
    });
}

/// `[[0],[0],…]` of at most `bytes` bytes: the issue's garbage batch.
fn garbage_batch(bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes);
    body.push(b'[');
    while body.len() + 8 < bytes {
        body.extend_from_slice(b"[0],");
    }
    body.extend_from_slice(b"[0]]");
    body
}

#[test]
fn overlong_batches_are_refused_while_parsing() {
    let node = TestNode::start("");
    let body = garbage_batch(4 * 1024 * 1024);
    assert!(body.len() <= 4 * 1024 * 1024);

    // Four at once, as in the issue: ~1M elements each, refused at element 10,001.
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let (api, body) = (node.api.clone(), body.clone());
            std::thread::spawn(move || {
                HttpClient::new(&api)
                    .unwrap()
                    .post_raw("/v1/txs", "application/json", &body)
                    .unwrap()
            })
        })
        .collect();
    for a in attackers {
        let (code, answer) = a.join().unwrap();
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(code, 413, "{v}");
        assert_eq!(error_code(&v), "batch_too_large", "{v}");
    }
    assert_eq!(refused(&node, "batch_too_large"), 4.0);
    // Every body was released with its request.
    wait_for("the body budget to be free", DEADLINE, || {
        (metric(&node, "accumen_api_body_bytes_in_flight") == 0.0).then_some(())
    });
    eprintln!(
        "node RSS after the garbage batches: {} bytes",
        metric(&node, "accumen_memory_usage_bytes")
    );

    // A batch within the limit still answers element by element.
    let mut s = Sender::new(60);
    let (good, _) = s.deploy(fixture("counter"));
    let (code, v) = node.post(
        "/v1/txs",
        &json!([{"tx": "garbage"}, serde_json::to_value(&good).unwrap()]),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["results"][0]["error"]["code"], "malformed_json", "{v}");
    assert_eq!(v["results"][1]["accepted"], true, "{v}");
    node.wait_included(v["results"][1]["tx_hash"].as_str().unwrap());

    honest_client_is_served(&node, 61);
}

#[test]
fn garbage_shapes_get_cheap_specific_errors() {
    let node = TestNode::start("");
    let client = node.client();

    // Nesting far past the parser's depth limit: refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (code, answer) = client
        .post_raw("/v1/tx", "application/json", deep.as_bytes())
        .unwrap();
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        (code, error_code(&v).as_str()),
        (400, "malformed_json"),
        "{v}"
    );
    // The same inside a batch element is that element's own error.
    let batch = format!("[{deep}]");
    let (code, v) = {
        let (code, a) = client
            .post_raw("/v1/txs", "application/json", batch.as_bytes())
            .unwrap();
        (code, serde_json::from_slice::<Value>(&a).unwrap())
    };
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"][0]["error"]["code"], "malformed_json", "{v}");

    // A 1 MiB string where a struct belongs: the error does not echo it back.
    let huge = "a".repeat(1024 * 1024);
    let (code, answer) = client
        .post_raw(
            "/v1/tx",
            "application/json",
            json!({"tx": huge, "signature": huge})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(code, 400);
    assert!(answer.len() < 2048, "{} byte answer", answer.len());

    // A state key longer than any stored key is refused before it is decoded or looked up.
    let contract = deploy(&node, &mut Sender::new(62), fixture("counter"));
    let (code, v) = node.get(&format!(
        "/v1/contracts/{contract}/state/{}",
        "ab".repeat(10_000)
    ));
    assert_eq!(
        (code, error_code(&v).as_str()),
        (400, "key_too_long"),
        "{v}"
    );

    honest_client_is_served(&node, 63);
}

#[test]
fn slow_bodies_are_timed_out_and_closed() {
    let node = TestNode::start("api:\n  body_timeout: 1s\n  idle_timeout: 5s");

    // An announced body that stops after a few bytes.
    let mut slow = Raw::connect(&node);
    slow.send(
        b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"tx\"",
    );
    let answer = slow.read_to_close();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // A chunked body that stops after one chunk: refused the same way, and closed even though
    // actix would otherwise go on draining it.
    let mut chunked = Raw::connect(&node);
    chunked.send(
        b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\n[{}, \r\n",
    );
    let answer = chunked.read_to_close();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    assert_eq!(refused(&node, "body_timeout"), 2.0);
    honest_client_is_served(&node, 64);
}

#[test]
fn idle_and_stalled_connections_are_closed() {
    let node = TestNode::start("api:\n  request_timeout: 1s\n  keep_alive: 1s\n  idle_timeout: 2s");

    // Connects and says nothing.
    Raw::connect(&node).read_to_close();

    // One request, then idles on keep-alive.
    let mut idle = Raw::connect(&node);
    idle.send(b"GET /v1/chain HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = idle.read_to_close();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Slowloris on the *second* request of a connection: actix times out only the first
    // request head, so only the idle watchdog closes this one. The attacker drips a header byte
    // every 100 ms until its writes fail.
    let mut loris = Raw::connect(&node);
    loris.send(b"GET /v1/chain HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/chain HTTP/1.1\r\nX-Drip: ");
    let started = Instant::now();
    loop {
        if loris.0.write_all(b"a").is_err() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "a connection dripping a request head was never closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = loris.read_to_close();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(refused(&node, "idle_timeout") >= 1.0);

    wait_for("no API connection left open", DEADLINE, || {
        (metric(&node, "accumen_api_connections") == 0.0).then_some(())
    });
    honest_client_is_served(&node, 65);
}

#[test]
fn connections_at_the_cap_wait_and_health_still_answers() {
    let node = TestNode::start(
        "api:\n  max_connections: 4\n  request_timeout: 60s\n  keep_alive: 60s\n  idle_timeout: 60s",
    );
    // actix caps per HTTP worker; the node splits api.max_connections across its workers.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let cap = 4usize.div_ceil(workers) * workers;

    // Twice the cap, each holding its connection with an unfinished request head.
    let attackers: Vec<Raw> = (0..2 * cap)
        .map(|_| {
            let mut a = Raw::connect(&node);
            a.send(b"GET /v1/chain HTTP/1.1\r\n");
            a
        })
        .collect();
    wait_for("the API to be at its connection cap", DEADLINE, || {
        (metric(&node, "accumen_api_connections") == cap as f64).then_some(())
    });

    // The health and metrics listeners have their own accept loops: still answering.
    let health = HttpClient::new(&node.health).unwrap();
    let (code, v) = health.get("/health").unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "healthy", "{v}");
    assert_eq!(metric(&node, "accumen_api_connections"), cap as f64);

    // An honest client connects and sends its request: it waits in the backlog.
    let (sent_tx, sent_rx) = mpsc::channel();
    let api = node.api.clone();
    let honest = std::thread::spawn(move || {
        let mut c = TcpStream::connect(api.trim_start_matches("http://")).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        c.write_all(b"GET /v1/chain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        sent_tx.send(()).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer
    });
    sent_rx.recv().unwrap();
    assert!(!honest.is_finished(), "served past the connection cap");

    // The attackers leave: the waiting client is served.
    drop(attackers);
    let answer = honest.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    honest_client_is_served(&node, 66);
}

#[test]
fn body_budget_refuses_bodies_past_it() {
    let node = TestNode::start(
        "api:\n  max_body_bytes: 65536\n  max_batch: 10\n  max_body_bytes_in_flight: 100000\n  body_timeout: 60s\n  idle_timeout: 60s",
    );
    let head = b"POST /v1/tx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 65536\r\n\r\n";
    // The first holder: 60,000 bytes of a body that never finishes.
    let mut holder = Raw::connect(&node);
    holder.send(head);
    holder.send(&[b' '; 60_000]);
    wait_for("the first body to be held", DEADLINE, || {
        (metric(&node, "accumen_api_body_bytes_in_flight") >= 60_000.0).then_some(())
    });
    // A second one does not fit beside it.
    let mut second = Raw::connect(&node);
    second.send(head);
    second.send(&[b' '; 50_000]);
    let answer = second.read_to_close();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("body_budget_exhausted"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert_eq!(refused(&node, "body_budget_exhausted"), 1.0);
    // The holder is still within budget; once it leaves, its bytes are free again.
    assert!(metric(&node, "accumen_api_body_bytes_in_flight") <= 100_000.0);
    drop(holder);
    wait_for("the body budget to be free", DEADLINE, || {
        (metric(&node, "accumen_api_body_bytes_in_flight") == 0.0).then_some(())
    });
    honest_client_is_served(&node, 67);
}

#[test]
fn queries_are_capped_in_args_and_gas() {
    let node = TestNode::start("api:\n  query_gas_limit: 2000000");
    let mut s = Sender::new(68);
    let looper = deploy(&node, &mut s, fixture("loop"));
    let counter = deploy(&node, &mut s, fixture("counter"));
    let q = |addr, body: Value| node.post(&format!("/v1/contracts/{addr}/query"), &body);

    // Args one byte over a call's limit.
    let (code, v) = q(
        counter,
        json!({"entry": "get", "args": "00".repeat(MAX_ARGS_LEN + 1)}),
    );
    assert_eq!(
        (code, error_code(&v).as_str()),
        (400, "args_too_large"),
        "{v}"
    );
    // Exactly at the limit is accepted.
    let (code, v) = q(
        counter,
        json!({"entry": "get", "args": "00".repeat(MAX_ARGS_LEN)}),
    );
    assert_eq!(code, 200, "{v}");

    // More gas than api.query_gas_limit, though a transaction could ask for it.
    let (code, v) = q(looper, json!({"entry": "run", "gas_limit": 2_000_001}));
    assert_eq!((code, error_code(&v).as_str()), (400, "gas_limit"), "{v}");
    assert_eq!(refused(&node, "args_too_large"), 1.0);
    assert_eq!(refused(&node, "query_gas_limit"), 1.0);

    // A query that names no gas gets api.query_gas_limit, not execution.gas_limit.
    let (code, v) = q(looper, json!({"entry": "run"}));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "out_of_gas", "{v}");
    assert_eq!(v["gas_used"], 2_000_000, "{v}");

    honest_client_is_served(&node, 69);
}

#[test]
fn large_answers_are_charged_to_the_body_budget() {
    // A first run stores a 59,990-byte value (kv takes 60,000 bytes of input at most): its
    // answer is about 120,000 hex characters.
    let dir = tempfile::tempdir().unwrap();
    let mut first = TestNode::start_in(dir.path(), "storage: persistent", &[]);
    let mut s = Sender::new(70);
    let kv = deploy(&first, &mut s, fixture("kv"));
    let mut args = vec![1u8, b'k'];
    args.extend(std::iter::repeat_n(7u8, 59_990));
    let set = s.sign(
        Action::Call {
            contract: kv,
            entry: "set".into(),
            args: Bytes(args),
        },
        5_000_000,
    );
    let hash = submit_ok(&first, &set);
    assert_eq!(first.wait_included(&hash)["receipt"]["status"], "success");
    let state_path = format!("/v1/contracts/{kv}/state/{}", hex::encode(b"k"));
    let (code, v) = first.get(&state_path);
    assert_eq!(code, 200, "{v}");
    assert_eq!(first.terminate().code(), Some(0));

    // Restarted with a budget smaller than that answer: the read is refused, not buffered.
    let node = TestNode::start_in(
        dir.path(),
        "storage: persistent\napi:\n  max_body_bytes: 4000\n  max_batch: 1\n  max_body_bytes_in_flight: 100000",
        &[],
    );
    let (code, v) = node.get(&state_path);
    assert_eq!(
        (code, error_code(&v).as_str()),
        (503, "body_budget_exhausted"),
        "{v}"
    );
    let (code, v) = node.post(
        &format!("/v1/contracts/{kv}/query"),
        &json!({"entry": "get", "args": hex::encode(b"k")}),
    );
    assert_eq!(
        (code, error_code(&v).as_str()),
        (503, "body_budget_exhausted"),
        "{v}"
    );
    assert_eq!(refused(&node, "body_budget_exhausted"), 2.0);
    // Small answers are not charged and still served.
    let (code, v) = node.get(&format!("/v1/contracts/{kv}"));
    assert_eq!(code, 200, "{v}");
    honest_client_is_served(&node, 71);
}

#[test]
fn a_connection_whose_request_is_being_handled_is_not_cut() {
    // The watchdog closes connections idle for 1 s; a body that takes longer than that to
    // arrive (within api.body_timeout) is a request in progress, not an idle connection.
    let node = TestNode::start(
        "api:\n  request_timeout: 1s\n  keep_alive: 1s\n  idle_timeout: 1s\n  body_timeout: 60s",
    );
    let body = br#"{"entry": "get"}"#;
    let mut c = Raw::connect(&node);
    c.send(
        format!(
            "POST /v1/contracts/{}/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            "00".repeat(32),
            body.len()
        )
        .as_bytes(),
    );
    // The client's pacing: four pieces, 600 ms apart, so the body takes about 2.4 s.
    for piece in body.chunks(body.len().div_ceil(4)) {
        std::thread::sleep(Duration::from_millis(600));
        c.send(piece);
    }
    let answer = c.read_to_close();
    // Answered (no contract at that address), not cut.
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("not_found"), "{answer}");
}
