//! Tests of the HTTP client and the subcommands against a scripted fake node: a
//! `std::net::TcpListener` on a thread that records each request and answers it with raw bytes,
//! so framing (Content-Length, chunked, read-to-EOF) is exactly what the test writes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accumen_actors::types::{Action, Keypair, SignedTx, contract_address, sha256};
use serde_json::{Value, json};

use super::*;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct FakeNode {
    url: String,
    requests: Arc<Mutex<Vec<Req>>>,
    connections: Arc<AtomicUsize>,
}

impl FakeNode {
    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

/// Starts a server answering every request with `handler`'s raw bytes, then closing. The thread
/// outlives the test; it only ever blocks in `accept`.
fn serve(handler: impl Fn(&Req) -> Vec<u8> + Send + 'static) -> FakeNode {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (reqs, conns) = (requests.clone(), connections.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            conns.fetch_add(1, Ordering::SeqCst);
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (n, v) = h.split_once(':').unwrap();
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
            let mut req = Req {
                method,
                path,
                headers,
                body: Vec::new(),
            };
            let len: usize = req
                .header("content-length")
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            req.body = vec![0; len];
            r.read_exact(&mut req.body).unwrap();
            reqs.lock().unwrap().push(req.clone());
            let answer = handler(&req);
            let _ = stream.write_all(&answer);
            let _ = stream.flush();
        }
    });
    FakeNode {
        url,
        requests,
        connections,
    }
}

fn json_answer(status: u16, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn error_answer(status: u16, code: &str, message: &str) -> Vec<u8> {
    json_answer(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// A URL where nothing listens: bind, note the port, close.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

// ---------------------------------------------------------------------------------------------
// HTTP client

#[test]
fn content_length_body_and_request_shape() {
    let node = serve(|_| json_answer(200, &json!({"a": 1})));
    // A trailing slash on the base URL is tolerated.
    let c = HttpClient::new(&format!("{}/", node.url)).unwrap();
    assert_eq!(c.base_url(), node.url);
    let (status, body) = c.get("/stats").unwrap();
    assert_eq!((status, body), (200, json!({"a": 1})));

    let (status, body) = c.post("/v1/x", &json!({"k": "v"})).unwrap();
    assert_eq!((status, body), (200, json!({"a": 1})));

    let reqs = node.requests();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/stats");
    assert_eq!(reqs[0].header("connection"), Some("close"));
    assert_eq!(
        reqs[0].header("host"),
        Some(node.url.trim_start_matches("http://"))
    );
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].header("content-type"), Some("application/json"));
    assert_eq!(
        reqs[1].header("content-length"),
        Some(reqs[1].body.len().to_string().as_str())
    );
    assert_eq!(reqs[1].json(), json!({"k": "v"}));
}

#[test]
fn chunked_body() {
    let node = serve(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n\
          6;ext=1\r\n{\"a\": \r\n3\r\n[1,\r\na\r\n 2, 3456]}\r\n0\r\nX-Trailer: t\r\n\r\n"
            .to_vec()
    });
    let c = HttpClient::new(&node.url).unwrap();
    assert_eq!(c.get("/").unwrap(), (200, json!({"a": [1, 2, 3456]})));
}

#[test]
fn read_to_eof_body_and_interim_answer() {
    let node = serve(|_| {
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"eof\": true}"
            .to_vec()
    });
    let c = HttpClient::new(&node.url).unwrap();
    assert_eq!(c.get("/").unwrap(), (200, json!({"eof": true})));
}

#[test]
fn error_status_is_returned_not_raised() {
    let node = serve(|_| error_answer(409, "nonce_too_low", "expected nonce 3"));
    let c = HttpClient::new(&node.url).unwrap();
    let (status, body) = c.post("/v1/tx", &json!({})).unwrap();
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "nonce_too_low");
    assert_eq!(body["error"]["message"], "expected nonce 3");
}

#[test]
fn non_json_error_page_is_passed_as_text() {
    let node =
        serve(|_| b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nbad gateway".to_vec());
    let c = HttpClient::new(&node.url).unwrap();
    assert_eq!(c.get("/").unwrap(), (502, json!("bad gateway")));
    let e = err_text(run_status(&node.url, None));
    assert!(e.contains("502") && e.contains("bad gateway"), "{e}");
}

#[test]
fn post_raw_sends_bytes_and_returns_bytes() {
    let node = serve(|req| {
        let mut a = format!(
            "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n",
            req.body.len()
        )
        .into_bytes();
        a.extend_from_slice(&req.body);
        a
    });
    let c = HttpClient::new(&node.url).unwrap();
    let (status, body) = c
        .post_raw("/raw", "application/octet-stream", &[0, 1, 2, 255])
        .unwrap();
    assert_eq!((status, body), (201, vec![0, 1, 2, 255]));
    assert_eq!(
        node.requests()[0].header("content-type"),
        Some("application/octet-stream")
    );
}

#[test]
fn submit_txs_binary_sends_the_framing_and_reads_json() {
    let node = serve(|_| json_answer(200, &json!({"accepted": 2, "rejected": 0, "results": []})));
    let c = HttpClient::new(&node.url).unwrap();
    let mut s = accumen_actors::testkit::Signer::new(9);
    let txs = vec![
        s.call(accumen_actors::types::Address([3; 32]), "increment", &[]),
        s.call(
            accumen_actors::types::Address([3; 32]),
            "increment",
            &[1, 2],
        ),
    ];
    let (status, v) = c.submit_txs_binary(&txs).unwrap();
    assert_eq!((status, v["accepted"].clone()), (200, json!(2)));
    let reqs = node.requests();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/txs");
    assert_eq!(
        reqs[0].header("content-type"),
        Some("application/octet-stream")
    );
    // The body is the documented framing: count, then each canonical encoding length-prefixed.
    let frames = crate::api::batch::split_binary(&reqs[0].body, 10).unwrap();
    let back: Vec<SignedTx> = frames
        .into_iter()
        .map(|f| SignedTx::decode(f).unwrap())
        .collect();
    assert_eq!(back, txs);
}

#[test]
fn connection_refused_message() {
    let url = dead_url();
    let c = HttpClient::new(&url).unwrap();
    let e = err_text(c.get("/stats"));
    assert_eq!(
        e,
        format!("cannot reach the node at {url}: connection refused (is it running?)")
    );
    // The same through a subcommand.
    let e = err_text(run_status(&url, None));
    assert!(e.contains("connection refused (is it running?)"), "{e}");
}

#[test]
fn truncated_body_and_garbage_are_errors() {
    let node = serve(|req| match req.path.as_str() {
        "/short" => b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"a\":".to_vec(),
        "/chunk" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        "/notjson" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        _ => b"SSH-2.0-OpenSSH\r\n".to_vec(),
    });
    let c = HttpClient::new(&node.url).unwrap();
    let e = err_text(c.get("/short"));
    assert!(e.contains("truncated"), "{e}");
    let e = err_text(c.get("/chunk"));
    assert!(e.contains("chunk size"), "{e}");
    let e = err_text(c.get("/notjson"));
    assert!(e.contains("not JSON"), "{e}");
    let e = err_text(c.get("/other"));
    assert!(e.contains("not an HTTP/1.x answer"), "{e}");
}

#[test]
fn announced_body_over_the_limit_is_refused_unread() {
    let node = serve(|_| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{}}",
            MAX_RESPONSE_BYTES + 1
        )
        .into_bytes()
    });
    let c = HttpClient::new(&node.url).unwrap();
    let e = err_text(c.get("/huge"));
    assert!(
        e.contains("larger than the") && e.contains(&MAX_RESPONSE_BYTES.to_string()),
        "{e}"
    );
}

#[test]
fn read_timeout() {
    let node = serve(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        json_answer(200, &json!({}))
    });
    let c = HttpClient::new(&node.url)
        .unwrap()
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(200));
    let e = err_text(c.get("/slow"));
    assert!(e.contains("did not answer GET /slow within 200ms"), "{e}");
}

#[test]
fn base_url_parsing() {
    assert!(HttpClient::new("http://127.0.0.1:8080").is_ok());
    assert!(HttpClient::new("http://localhost").is_ok());
    assert!(HttpClient::new("http://[::1]:8080/").is_ok());
    let e = err_text(HttpClient::new("https://node.example:443"));
    assert!(e.contains("only http://"), "{e}");
    for bad in [
        "127.0.0.1:8080",
        "http://",
        "http://h:port",
        "http://u@h:1",
        "http://h:1?x",
    ] {
        assert!(HttpClient::new(bad).is_err(), "{bad}");
    }
    // A path prefix (behind a reverse proxy) is kept in front of every request path.
    let node = serve(|_| json_answer(200, &json!(null)));
    let c = HttpClient::new(&format!("{}/node1/", node.url)).unwrap();
    c.get("/stats").unwrap();
    assert_eq!(node.requests()[0].path, "/node1/stats");
}

// ---------------------------------------------------------------------------------------------
// key generate

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_generate_mode_overwrite_force_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alice.key");
    let v = run_key(KeyCmd::Generate {
        out: out.clone(),
        force: false,
    })
    .unwrap();
    assert_eq!(v["file"], out.display().to_string());
    let pk = v["public_key"].as_str().unwrap().to_string();
    #[cfg(unix)]
    assert_eq!(mode(&out), 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    assert_eq!(load_key(&out).unwrap().public().to_hex(), pk);

    // No overwrite without --force; the old key is untouched.
    let e = err_text(run_key(KeyCmd::Generate {
        out: out.clone(),
        force: false,
    }));
    assert!(
        e.contains("refusing to overwrite") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);

    // --force replaces it, and a file that was world-readable comes back owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let v2 = run_key(KeyCmd::Generate {
        out: out.clone(),
        force: true,
    })
    .unwrap();
    let pk2 = v2["public_key"].as_str().unwrap();
    assert_ne!(pk2, pk);
    assert_eq!(load_key(&out).unwrap().public().to_hex(), pk2);
    #[cfg(unix)]
    assert_eq!(mode(&out), 0o600);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn key_generate_needs_existing_directory_and_bad_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing/sub/k.key");
    let e = err_text(run_key(KeyCmd::Generate {
        out: out.clone(),
        force: false,
    }));
    assert!(e.contains("does not exist"), "{e}");
    assert!(!dir.path().join("missing").exists());

    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not hex\n").unwrap();
    let e = err_text(load_key(&bad));
    assert!(e.contains("bad.key") && e.contains("valid key"), "{e}");
    let e = err_text(load_key(&dir.path().join("nope.key")));
    assert!(e.contains("nope.key") && e.contains("cannot read"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// tx

fn new_key(dir: &std::path::Path) -> (PathBuf, Keypair) {
    let path = dir.join("sender.key");
    run_key(KeyCmd::Generate {
        out: path.clone(),
        force: false,
    })
    .unwrap();
    let kp = load_key(&path).unwrap();
    (path, kp)
}

/// A node with chain id "accumen-test" where the sender has nonce 4 committed and 3 pending.
/// `/v1/tx/{hash}` answers "pending" `pending_polls` times, then "included".
fn chain_node(tx_answer: fn(&Req) -> Vec<u8>, pending_polls: usize) -> FakeNode {
    let polls = AtomicUsize::new(0);
    serve(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/chain") => {
            json_answer(200, &json!({"chain_id": "accumen-test", "height": 12}))
        }
        ("GET", p) if p.starts_with("/v1/accounts/") => {
            let pk = p.trim_start_matches("/v1/accounts/");
            json_answer(
                200,
                &json!({"public_key": pk, "next_nonce": 4, "pending": 3, "pending_nonce": 7}),
            )
        }
        ("POST", "/v1/tx") => tx_answer(req),
        ("GET", p) if p.starts_with("/v1/tx/") => {
            let hash = p.trim_start_matches("/v1/tx/");
            if polls.fetch_add(1, Ordering::SeqCst) < pending_polls {
                json_answer(200, &json!({"tx_hash": hash, "status": "pending"}))
            } else {
                json_answer(
                    200,
                    &json!({"tx_hash": hash, "status": "included", "block_height": 13,
                            "index": 0, "receipt": {"status": "success", "gas_used": 1234}}),
                )
            }
        }
        _ => error_answer(404, "not_found", "no such route"),
    })
}

fn accept_tx(req: &Req) -> Vec<u8> {
    let signed: SignedTx = serde_json::from_slice(&req.body).unwrap();
    json_answer(
        202,
        &json!({"tx_hash": signed.tx.id().to_hex(), "status": "pending"}),
    )
}

#[test]
fn tx_deploy_wat_signs_and_submits() {
    let dir = tempfile::tempdir().unwrap();
    let (key, kp) = new_key(dir.path());
    let node = chain_node(accept_tx, 2);
    let out = run_tx(
        &node.url,
        None,
        TxCmd::Deploy {
            key,
            code: fixture("counter.wat"),
            gas: 50_000_000,
            priority: 5,
            wait: true,
            timeout: Duration::from_secs(10).into(),
        },
    )
    .unwrap();

    let reqs = node.requests();
    let post = reqs.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.path, "/v1/tx");
    assert_eq!(post.header("content-type"), Some("application/json"));
    let signed: SignedTx = serde_json::from_value(post.json()).unwrap();
    let verified = signed.clone().verify().unwrap();
    let tx = verified.tx();
    assert_eq!(tx.chain_id, "accumen-test");
    assert_eq!(tx.sender, kp.public());
    assert_eq!(tx.nonce, 7, "uses pending_nonce");
    assert_eq!(tx.gas_limit, 50_000_000);
    assert_eq!(tx.priority, 5);
    assert_eq!(tx.expiry, None);
    let Action::Deploy { code } = &tx.action else {
        panic!("not a deploy: {:?}", tx.action)
    };
    assert!(code.as_ref().starts_with(b"\0asm"));
    assert_eq!(
        code.as_ref(),
        wat::parse_file(fixture("counter.wat")).unwrap()
    );

    let expected_contract = contract_address(&kp.public(), 7, &sha256(code.as_ref()));
    assert_eq!(out["tx_hash"], verified.id().to_hex());
    assert_eq!(out["contract"], expected_contract.to_hex());
    assert_eq!(out["nonce"], 7);
    assert_eq!(out["block_height"], 13);
    assert_eq!(out["receipt"]["status"], "success");
    // Two "pending" answers, then "included".
    let polls = reqs
        .iter()
        .filter(|r| r.path.starts_with("/v1/tx/"))
        .count();
    assert_eq!(polls, 3);
}

#[test]
fn tx_deploy_wasm_binary_is_sent_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = new_key(dir.path());
    let wasm = wat::parse_file(fixture("counter.wat")).unwrap();
    let path = dir.path().join("counter.wasm");
    std::fs::write(&path, &wasm).unwrap();
    let node = chain_node(accept_tx, 0);
    let out = run_tx(
        &node.url,
        None,
        TxCmd::Deploy {
            key,
            code: path,
            gas: 1,
            priority: 0,
            wait: false,
            timeout: Duration::from_secs(1).into(),
        },
    )
    .unwrap();
    assert!(out.get("receipt").is_none());
    let post = node
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let signed: SignedTx = serde_json::from_value(post.json()).unwrap();
    assert_eq!(signed.tx.action, Action::Deploy { code: wasm.into() });
}

#[test]
fn tx_call_builds_call_and_reports_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = new_key(dir.path());
    let contract = "ab".repeat(32);

    let node = chain_node(accept_tx, 0);
    let out = run_tx(
        &node.url,
        None,
        TxCmd::Call {
            key: key.clone(),
            contract: contract.clone(),
            entry: "increment".into(),
            args: Some("0102ff".into()),
            gas: 10_000_000,
            priority: 0,
            wait: false,
            timeout: Duration::from_secs(1).into(),
        },
    )
    .unwrap();
    assert_eq!(out["contract"], contract);
    assert_eq!(out["nonce"], 7);
    let post = node
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let signed: SignedTx = serde_json::from_value(post.json()).unwrap();
    signed.clone().verify().unwrap();
    let Action::Call {
        contract: c,
        entry,
        args,
    } = signed.tx.action
    else {
        panic!("not a call")
    };
    assert_eq!(c.to_hex(), contract);
    assert_eq!(entry, "increment");
    assert_eq!(args.as_ref(), &[1, 2, 255]);

    let node = chain_node(
        |_| error_answer(409, "nonce_too_low", "nonce 7 is below the next nonce 8"),
        0,
    );
    let e = err_text(run_tx(
        &node.url,
        None,
        TxCmd::Call {
            key,
            contract,
            entry: "increment".into(),
            args: None,
            gas: 10_000_000,
            priority: 0,
            wait: false,
            timeout: Duration::from_secs(1).into(),
        },
    ));
    assert_eq!(
        e,
        "node rejected the transaction (409 nonce_too_low): nonce 7 is below the next nonce 8"
    );
}

#[test]
fn tx_wait_times_out_while_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = new_key(dir.path());
    let node = chain_node(accept_tx, usize::MAX);
    let e = err_text(run_tx(
        &node.url,
        None,
        TxCmd::Call {
            key,
            contract: "00".repeat(32),
            entry: "get".into(),
            args: None,
            gas: 10,
            priority: 0,
            wait: true,
            timeout: Duration::from_millis(500).into(),
        },
    ));
    assert!(e.contains("still pending after 500ms"), "{e}");
    let polls = node
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/tx/"))
        .count();
    assert!((2..=5).contains(&polls), "{polls} polls");
}

#[test]
fn bad_arguments_fail_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = new_key(dir.path());
    let node = serve(|_| json_answer(200, &json!({})));
    let call = |contract: &str, entry: &str, args: Option<&str>| TxCmd::Call {
        key: key.clone(),
        contract: contract.into(),
        entry: entry.into(),
        args: args.map(Into::into),
        gas: 10,
        priority: 0,
        wait: false,
        timeout: Duration::from_secs(1).into(),
    };
    let good = "11".repeat(32);
    let cases: Vec<(anyhow::Result<Value>, &str)> = vec![
        (
            run_tx(&node.url, None, call("abcd", "get", None)),
            "bad contract address",
        ),
        (
            run_tx(&node.url, None, call(&"zz".repeat(32), "get", None)),
            "bad contract address",
        ),
        (
            run_tx(&node.url, None, call(&good, "get", Some("abc"))),
            "bad --args",
        ),
        (
            run_tx(&node.url, None, call(&good, "no spaces", None)),
            "bad entry point",
        ),
        (
            run_tx(
                &node.url,
                None,
                TxCmd::Deploy {
                    key: key.clone(),
                    code: fixture("no-such.wat"),
                    gas: 1,
                    priority: 0,
                    wait: false,
                    timeout: Duration::from_secs(1).into(),
                },
            ),
            "cannot read contract code",
        ),
        (
            run_tx(
                &node.url,
                None,
                TxCmd::Deploy {
                    key: dir.path().join("no.key"),
                    code: fixture("counter.wat"),
                    gas: 1,
                    priority: 0,
                    wait: false,
                    timeout: Duration::from_secs(1).into(),
                },
            ),
            "cannot read key file",
        ),
        (
            run_query(
                &node.url,
                None,
                QueryCmd::Tx {
                    hash: "00ff".into(),
                },
            ),
            "bad transaction hash",
        ),
        (
            run_query(
                &node.url,
                None,
                QueryCmd::State {
                    contract: good.clone(),
                    key: "xyz".into(),
                },
            ),
            "bad storage key",
        ),
        (
            run_query(
                &node.url,
                None,
                QueryCmd::State {
                    contract: "12".into(),
                    key: "00".into(),
                },
            ),
            "bad contract address",
        ),
        (
            run_query(
                &node.url,
                None,
                QueryCmd::Contract {
                    address: "g".repeat(64),
                },
            ),
            "bad contract address",
        ),
        (
            run_query(
                &node.url,
                None,
                QueryCmd::Account {
                    public_key: "00".repeat(31),
                },
            ),
            "bad public key",
        ),
        (
            run_query(
                &node.url,
                None,
                QueryCmd::Call {
                    contract: good.clone(),
                    entry: "get".into(),
                    args: Some("0".into()),
                    gas: None,
                },
            ),
            "bad --args",
        ),
    ];
    for (result, expected) in cases {
        let e = err_text(result);
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
    assert_eq!(node.connections.load(Ordering::SeqCst), 0);
}

#[test]
fn wat_syntax_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = new_key(dir.path());
    let bad = dir.path().join("broken.wat");
    std::fs::write(&bad, "(module (func (i32.bogus)))").unwrap();
    let e = err_text(run_tx(
        &dead_url(),
        None,
        TxCmd::Deploy {
            key,
            code: bad,
            gas: 1,
            priority: 0,
            wait: false,
            timeout: Duration::from_secs(1).into(),
        },
    ));
    assert!(
        e.contains("broken.wat") && e.contains("WebAssembly text"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// query / status

#[test]
fn queries_use_the_right_paths() {
    let node = serve(|req| json_answer(200, &json!({"path": req.path, "method": req.method})));
    let addr = "AB".repeat(32);
    let lower = addr.to_lowercase();
    let q = |cmd| run_query(&node.url, None, cmd).unwrap()["path"].clone();
    assert_eq!(q(QueryCmd::Block { height: None }), "/v1/blocks/latest");
    assert_eq!(q(QueryCmd::Block { height: Some(9) }), "/v1/blocks/9");
    assert_eq!(
        q(QueryCmd::Tx {
            hash: format!("0x{addr}")
        }),
        format!("/v1/tx/{lower}")
    );
    assert_eq!(
        q(QueryCmd::State {
            contract: addr.clone(),
            key: "636F756E74".into()
        }),
        format!("/v1/contracts/{lower}/state/636f756e74")
    );
    assert_eq!(
        q(QueryCmd::Contract {
            address: addr.clone()
        }),
        format!("/v1/contracts/{lower}")
    );
    assert_eq!(
        q(QueryCmd::Account {
            public_key: addr.clone()
        }),
        format!("/v1/accounts/{lower}")
    );
    assert_eq!(run_status(&node.url, None).unwrap()["path"], "/stats");

    q(QueryCmd::Call {
        contract: addr.clone(),
        entry: "get".into(),
        args: None,
        gas: Some(5000),
    });
    q(QueryCmd::Call {
        contract: addr.clone(),
        entry: "get".into(),
        args: Some("01".into()),
        gas: None,
    });
    let posts: Vec<Req> = node
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts[0].path, format!("/v1/contracts/{lower}/query"));
    assert_eq!(
        posts[0].json(),
        json!({"entry": "get", "args": "", "gas_limit": 5000})
    );
    assert_eq!(posts[1].json(), json!({"entry": "get", "args": "01"}));
}

#[test]
fn query_errors_carry_code_and_message() {
    let node = serve(|req| {
        if req.path.starts_with("/v1/blocks/") {
            error_answer(404, "block_not_found", "no block at height 99")
        } else {
            error_answer(503, "unavailable", "shutting down")
        }
    });
    let e = err_text(run_query(
        &node.url,
        None,
        QueryCmd::Block { height: Some(99) },
    ));
    assert_eq!(
        e,
        "block 99 not found (404 block_not_found): no block at height 99"
    );
    let e = err_text(run_status(&node.url, None));
    assert_eq!(
        e,
        "node answered 503 unavailable for node stats: shutting down"
    );
}

#[test]
fn clap_definitions_are_valid() {
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }
    #[derive(Debug, clap::Subcommand)]
    enum Top {
        #[command(subcommand)]
        Key(KeyCmd),
        #[command(subcommand)]
        Tx(TxCmd),
        #[command(subcommand)]
        Query(QueryCmd),
    }
    Cli::command().debug_assert();

    let cli = Cli::try_parse_from([
        "accumen", "tx", "deploy", "--key", "k", "--code", "c.wat", "--wait",
    ])
    .unwrap();
    let Top::Tx(TxCmd::Deploy {
        gas,
        priority,
        wait,
        timeout,
        ..
    }) = cli.cmd
    else {
        panic!("{:?}", cli.cmd)
    };
    assert_eq!((gas, priority, wait), (50_000_000, 0, true));
    assert_eq!(*timeout, Duration::from_secs(60));

    let cli = Cli::try_parse_from(["accumen", "query", "block"]).unwrap();
    assert!(matches!(
        cli.cmd,
        Top::Query(QueryCmd::Block { height: None })
    ));
    let cli = Cli::try_parse_from(["accumen", "query", "block", "7"]).unwrap();
    assert!(matches!(
        cli.cmd,
        Top::Query(QueryCmd::Block { height: Some(7) })
    ));
}
