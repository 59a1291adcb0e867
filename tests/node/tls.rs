//! API security (issue 11): TLS on the API listener (`api.tls.*`) and SIGHUP reloads of the
//! certificate and the bearer token file. The test CA and certificates are made with rcgen at
//! test time; no private key is committed.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use accumen::api::auth::hash_line;
use accumen::api::tls::{fingerprint, provider};
use accumen::client::HttpClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::harness::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// A test CA that signs leaf certificates for `localhost` and 127.0.0.1.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate: PEM chain, PEM key, and its fingerprint.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    fingerprint: String,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "accumen test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: fingerprint(cert.der()),
        }
    }
}

/// Writes `leaf` to `dir/cert.pem` and `dir/key.pem`; returns their paths.
fn install(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, &leaf.cert_pem).unwrap();
    std::fs::write(&k, &leaf.key_pem).unwrap();
    (c, k)
}

fn tls_yaml(cert: &Path, key: &Path, more: &str) -> String {
    format!(
        "api:\n  tls:\n    cert_file: \"{}\"\n    key_file: \"{}\"\n{more}",
        cert.display(),
        key.display()
    )
}

/// A node serving `leaf` over HTTPS; `more` follows `key_file` (4 spaces: more `api.tls` keys,
/// 2 spaces: more `api` keys).
fn tls_node(dir: &Path, leaf: &Leaf, more: &str) -> TestNode {
    let (c, k) = install(dir, leaf);
    TestNode::start_in(dir, &tls_yaml(&c, &k, more), &[])
}

fn https(node: &TestNode) -> String {
    node.api.replace("http://", "https://")
}

fn addr(node: &TestNode) -> String {
    node.api.trim_start_matches("http://").to_owned()
}

/// One HTTPS `GET /health` on a fresh connection, trusting only `ca_pem`: the fingerprint of the
/// certificate the node presented and the answer's status line.
fn handshake(node: &TestNode, ca_pem: &str) -> (String, String) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr(node)).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    // actix may close without close_notify after `Connection: close`: the answer is complete.
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the HTTPS answer: {e}"),
    }
    let peer = tls.conn.peer_certificates().unwrap()[0].clone();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or("").to_owned();
    (fingerprint(&peer), status)
}

fn sighup(node: &TestNode) {
    let pid = node.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn count_logs(node: &TestNode, needle: &str) -> usize {
    node.logs().lines().filter(|l| l.contains(needle)).count()
}

/// Sends SIGHUP and waits for the node's log line about `what` (`tls` or `tokens`): the nth
/// success or failure line; returns it.
fn reload_and_wait(node: &TestNode, what: &str, ok: bool) -> String {
    let needle = if ok {
        "SIGHUP: reloaded"
    } else {
        "SIGHUP: reload failed"
    };
    let tag = format!("what=\"{what}\"");
    let matching = |n: &TestNode| -> Vec<String> {
        n.logs()
            .lines()
            .filter(|l| l.contains(needle) && l.contains(&tag))
            .map(str::to_owned)
            .collect()
    };
    let before = matching(node).len();
    sighup(node);
    wait_for(&format!("{needle} {tag}"), DEADLINE, || {
        matching(node).get(before).cloned()
    })
}

fn reloads(node: &TestNode, what: &str, result: &str) -> f64 {
    let text = node.metrics_text();
    let series = format!("accumen_config_reloads_total{{what=\"{what}\",result=\"{result}\"}}");
    text.lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("ACCUMEN_CA_CERT")
        .env_remove("ACCUMEN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn https_with_the_test_ca_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let leaf = ca.leaf();
    let node = tls_node(dir.path(), &leaf, "");
    let url = https(&node);

    // The library client trusting the test CA: reads and a write.
    let client = HttpClient::new(&url)
        .unwrap()
        .with_ca_pem(ca.pem().as_bytes())
        .unwrap();
    let (code, v) = client.get("/v1/chain").unwrap();
    assert_eq!(code, 200, "{v}");
    let mut sender = Sender::new(71);
    let (tx, _) = sender.deploy(fixture("counter"));
    let (code, v) = client
        .post("/v1/tx", &serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(code, 202, "{v}");
    let hash = v["tx_hash"].as_str().unwrap().to_owned();
    wait_for("the deploy over HTTPS", DEADLINE, || {
        let (code, v) = client.get(&format!("/v1/tx/{hash}")).unwrap();
        (code == 200 && v["status"] == "included").then_some(())
    });
    // The certificate presented is the configured one.
    let (fp, status) = handshake(&node, &ca.pem());
    assert_eq!(fp, leaf.fingerprint);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // The CLI: --ca-cert and ACCUMEN_CA_CERT.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    let out = cli(&["status", "--api", &url, "--ca-cert", ca_path], &[]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["block_height"].is_u64(), "{v}");
    let out = cli(&["status", "--api", &url], &[("ACCUMEN_CA_CERT", ca_path)]);
    assert!(out.status.success(), "{out:?}");

    // Not trusting the CA (the system's roots): refused, with the way out named.
    let out = cli(&["status", "--api", &url], &[]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS handshake failed"), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
    // Trusting another CA: refused too.
    let other = Ca::new();
    let e = HttpClient::new(&url)
        .unwrap()
        .with_ca_pem(other.pem().as_bytes())
        .unwrap()
        .get("/health")
        .unwrap_err();
    assert!(format!("{e:#}").contains("TLS handshake failed"), "{e:#}");
    // A CA file that is not one: bad usage, nothing sent.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let out = cli(
        &["status", "--api", &url, "--ca-cert", junk.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-cert"));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let e = HttpClient::new(&node.api)
        .unwrap()
        .get("/health")
        .unwrap_err();
    // Without the node's address, whose port may itself contain "200" (seen once: 42005).
    let e = format!("{e:#}").replace(&node.api, "");
    assert!(!e.contains("200"), "{e}");
    let mut raw = TcpStream::connect(addr(&node)).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    raw.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out);
    assert!(
        !String::from_utf8_lossy(&out).contains("HTTP/1.1 200"),
        "{out:?}"
    );

    // The other listeners stay plain HTTP, and the idle watchdog saw the TLS connections.
    assert_eq!(
        HttpClient::new(&node.health)
            .unwrap()
            .get("/health")
            .unwrap()
            .0,
        200
    );
    assert!(node.metrics_text().contains("accumen_api_connections"));
    assert_eq!(
        count_logs(&node, "cannot duplicate an API connection's socket"),
        0
    );
}

#[test]
fn silent_handshakes_are_dropped_and_the_capped_listener_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    // Two connections in all (one per worker on two cores): two silent clients fill the API.
    let node = tls_node(
        dir.path(),
        &ca.leaf(),
        "    handshake_timeout: 300ms\n  max_connections: 2\n",
    );
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(addr(&node)).unwrap();
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            s
        })
        .collect();
    // Served once the handshake timeout has dropped the silent ones.
    let client = HttpClient::new(&https(&node))
        .unwrap()
        .with_ca_pem(ca.pem().as_bytes())
        .unwrap()
        .with_timeouts(DEADLINE, DEADLINE);
    let (code, _) = client.get("/health").unwrap();
    assert_eq!(code, 200);
    for mut s in silent {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("a silent handshake was not dropped: {other:?}"),
        }
    }
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_it_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let first = ca.leaf();
    let node = tls_node(dir.path(), &first, "");
    assert_eq!(reloads(&node, "tls", "ok"), 0.0);
    assert_eq!(handshake(&node, &ca.pem()).0, first.fingerprint);

    // A new pair: new connections get it; the node served throughout.
    let second = ca.leaf();
    install(dir.path(), &second);
    let line = reload_and_wait(&node, "tls", true);
    assert!(line.contains(&second.fingerprint), "{line}");
    let (fp, status) = handshake(&node, &ca.pem());
    assert_eq!(fp, second.fingerprint);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(reloads(&node, "tls", "ok"), 1.0);

    // A broken certificate file: ERROR, old certificate kept, node still up.
    std::fs::write(
        dir.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
    )
    .unwrap();
    let line = reload_and_wait(&node, "tls", false);
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("api.tls.cert_file"), "{line}");
    // A certificate without its key (written between the two files of a renewal): refused too.
    let third = ca.leaf();
    std::fs::write(dir.path().join("cert.pem"), &third.cert_pem).unwrap();
    let line = reload_and_wait(&node, "tls", false);
    assert!(line.contains("does not fit"), "{line}");
    let (fp, status) = handshake(&node, &ca.pem());
    assert_eq!(fp, second.fingerprint, "the old certificate stays");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(reloads(&node, "tls", "error"), 2.0);
    assert_eq!(
        reloads(&node, "tokens", "ok"),
        0.0,
        "no token file configured"
    );
    let mut node = node;
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the node is still running"
    );
    assert!(node.terminate().success());
}

#[test]
fn sighup_reloads_the_token_file_and_keeps_it_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("api-tokens");
    std::fs::write(&tokens, format!("{}\n", hash_line("token-a"))).unwrap();
    let node = TestNode::start_in(
        dir.path(),
        &format!("api:\n  auth:\n    token_file: \"{}\"", tokens.display()),
        &[],
    );
    let admin = |token: &str| {
        HttpClient::new(&node.admin)
            .unwrap()
            .with_token(Some(token))
            .get("/admin/actors")
            .unwrap()
            .0
    };
    assert_eq!(admin("token-a"), 200);
    assert_eq!(admin("token-b"), 401);

    std::fs::write(&tokens, format!("# rotated\n{}\n", hash_line("token-b"))).unwrap();
    let line = reload_and_wait(&node, "tokens", true);
    assert!(line.contains("1 token hashes"), "{line}");
    assert_eq!(admin("token-a"), 401, "the old token is revoked");
    assert_eq!(admin("token-b"), 200);

    // A broken file, then a missing one: the last good set stays.
    std::fs::write(&tokens, "sha256:nothex\n").unwrap();
    let line = reload_and_wait(&node, "tokens", false);
    assert!(line.contains("line 1"), "{line}");
    std::fs::remove_file(&tokens).unwrap();
    reload_and_wait(&node, "tokens", false);
    assert_eq!(admin("token-b"), 200);
    assert_eq!(admin("token-a"), 401);
    assert_eq!(reloads(&node, "tokens", "ok"), 1.0);
    assert_eq!(reloads(&node, "tokens", "error"), 2.0);
}

#[test]
fn sighup_without_anything_to_reload_is_harmless() {
    let node = TestNode::start("");
    sighup(&node);
    wait_for("the nothing-to-reload line", DEADLINE, || {
        node.find_log("SIGHUP: nothing to reload")
    });
    assert_eq!(node.get("/health").0, 200);
}

/// Runs the node with `extra`; it must exit 2 without listening. Returns stderr.
fn refused(dir: &Path, extra: &str) -> String {
    let config = dir.join("node.yaml");
    std::fs::write(&config, merge_yaml(&base_config(dir), extra)).unwrap();
    let out = run_to_exit("sequencer", &config, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("listening"), "{err}");
    err
}

#[test]
fn tls_configuration_errors_stop_the_node_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, key) = install(dir.path(), &ca.leaf());

    let err = refused(
        dir.path(),
        &format!("api:\n  tls:\n    cert_file: \"{}\"", cert.display()),
    );
    assert!(err.contains("api.tls.key_file"), "{err}");
    let err = refused(
        dir.path(),
        &format!("api:\n  tls:\n    key_file: \"{}\"", key.display()),
    );
    assert!(err.contains("api.tls.cert_file"), "{err}");

    let missing = dir.path().join("missing.pem");
    let err = refused(dir.path(), &tls_yaml(&missing, &key, ""));
    assert!(
        err.contains("api.tls.cert_file") && err.contains("missing.pem"),
        "{err}"
    );
    let err = refused(dir.path(), &tls_yaml(&cert, &missing, ""));
    assert!(err.contains("api.tls.key_file"), "{err}");
    // A key of another certificate.
    let other = ca.leaf();
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let err = refused(dir.path(), &tls_yaml(&cert, &other_key, ""));
    assert!(err.contains("does not fit"), "{err}");
    // The key file given the certificate.
    let err = refused(dir.path(), &tls_yaml(&cert, &cert, ""));
    assert!(err.contains("api.tls.key_file"), "{err}");
}

/// The health listener holds at most `OBSERVABILITY_MAX_CONNECTIONS`: with that many silent
/// clients connected, a probe is served only once the request timeout has closed one of them
/// (without the cap it would be served at once, while all of them are still open).
#[test]
fn the_health_listener_caps_its_connections() {
    let cap = accumen::api::OBSERVABILITY_MAX_CONNECTIONS;
    let node = TestNode::start("api:\n  request_timeout: 500ms");
    let health = node.health.trim_start_matches("http://").to_owned();
    let silent: Vec<TcpStream> = (0..cap)
        .map(|_| TcpStream::connect(&health).unwrap())
        .collect();
    // Every silent connection is accepted (and so counted) before the probe arrives: a request
    // on a connection made after them would be answered first if they were not.
    let client = HttpClient::new(&node.health)
        .unwrap()
        .with_timeouts(DEADLINE, DEADLINE);
    let (code, _) = client.get("/health").unwrap();
    assert_eq!(code, 200);
    let closed = silent
        .into_iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            // The 408 of the request timeout (then the close), end of stream or a reset: the
            // node let go of it. WouldBlock: still open and silent.
            let mut buf = [0u8; 512];
            match (&*s).read(&mut buf) {
                Ok(0) => true,
                Ok(n) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                Err(e) => e.kind() == ErrorKind::ConnectionReset,
            }
        })
        .count();
    assert!(
        closed >= 1,
        "the probe was served while all {cap} silent connections were open"
    );
}

/// A follower of a sequencer whose API has TLS: `https://` with `follower.ca_cert_file`; without
/// trusting the CA it cannot get the chain and says why; a missing CA file is exit 2.
#[test]
fn a_follower_follows_an_https_sequencer_with_its_ca() {
    let seq_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let seq = tls_node(seq_dir.path(), &ca.leaf(), "");
    let client = HttpClient::new(&https(&seq))
        .unwrap()
        .with_ca_pem(ca.pem().as_bytes())
        .unwrap();
    let chain = client.get("/v1/chain").unwrap().1;
    let key = chain["sequencer"].as_str().unwrap().to_owned();
    let mut sender = Sender::new(72);
    let (tx, _) = sender.deploy(fixture("counter"));
    let (code, v) = client
        .post("/v1/tx", &serde_json::to_value(&tx).unwrap())
        .unwrap();
    assert_eq!(code, 202, "{v}");
    let hash = v["tx_hash"].as_str().unwrap().to_owned();
    let height = wait_for("the deploy", DEADLINE, || {
        let (code, v) = client.get(&format!("/v1/tx/{hash}")).unwrap();
        (code == 200 && v["status"] == "included").then(|| v["block_height"].as_u64().unwrap())
    });

    let f_dir = tempfile::tempdir().unwrap();
    let ca_file = f_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let yaml = |ca: &Path| {
        format!(
            "follower:\n  sequencer_api: \"{}\"\n  sequencer_key: \"{key}\"\n  ca_cert_file: \
             \"{}\"\n  retry_min: \"50ms\"\n  retry_max: \"200ms\"\n  long_poll: \"1s\"\n",
            https(&seq),
            ca.display()
        )
    };
    let follower = TestNode::start_role_in(f_dir.path(), "follower", &yaml(&ca_file), &[]);
    wait_for("the follower to replay the deploy", DEADLINE, || {
        let s = HttpClient::new(&follower.health)
            .unwrap()
            .get("/stats")
            .unwrap()
            .1;
        (s["height"].as_u64().unwrap_or(0) >= height).then_some(())
    });
    let (code, v) = follower.get(&format!("/v1/tx/{hash}"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "included", "{v}");

    // Not trusting the CA (the system's roots): the chain cannot be fetched, and it says why.
    let untrusting = format!(
        "follower:\n  sequencer_api: \"{}\"\n  sequencer_key: \"{key}\"\n  request_timeout: \
         \"2s\"\n  long_poll: \"1s\"\n",
        https(&seq)
    );
    let config = f_dir.path().join("untrusting.yaml");
    std::fs::write(&config, merge_yaml(&base_config(f_dir.path()), &untrusting)).unwrap();
    let out = run_to_exit("follower", &config, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // A CA file that does not exist: refused at start, naming the key.
    let missing = f_dir.path().join("missing.pem");
    let config = f_dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        merge_yaml(&base_config(f_dir.path()), &yaml(&missing)),
    )
    .unwrap();
    let out = run_to_exit("follower", &config, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("follower.ca_cert_file"), "{err}");
}
