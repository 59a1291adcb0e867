//! `accumen admin ...`: the operator's client for the node's admin listener (`admin_addr`).
//!
//! Where the listener is: `--admin URL` (or `ACCUMEN_ADMIN`), else the `admin_addr` of the
//! `--config` file (defaults, file and `ACCUMEN_*` variables, exactly as the node reads them),
//! else the default `http://127.0.0.1:8083`. A wildcard `admin_addr` (`0.0.0.0`, `::`) is
//! reached on loopback, since the CLI runs on the node's host.
//!
//! Invariants:
//! - An actor name is checked locally (`[a-z0-9_]`, at most 64 bytes) before any request, so a
//!   typo never becomes another path on the node.
//! - A node that is not running reads "cannot reach the node at URL: connection refused (is it
//!   running?)", with the admin listener named.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use super::http::HttpClient;
use crate::settings::Settings;

/// The admin listener's default URL (the default `admin_addr`).
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8083";

/// `accumen admin ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCmd {
    /// List the supervised actors with their state, incarnation and last heartbeat.
    Actors,
    /// Restart one actor by name, as the supervisor would (e.g. bridge_submitter).
    Restart {
        /// The actor's name, as `admin actors` lists it.
        name: String,
    },
}

/// The admin listener's URL: `admin` if given, else `config`'s `admin_addr`, else the default.
pub fn admin_url(config: Option<&Path>, admin: Option<&str>) -> anyhow::Result<String> {
    if let Some(url) = admin {
        return Ok(url.to_string());
    }
    let Some(path) = config else {
        return Ok(DEFAULT_ADMIN_URL.to_string());
    };
    let settings = Settings::load(path)
        .with_context(|| format!("reading admin_addr from {}", path.display()))?;
    Ok(format!("http://{}", reachable(settings.admin_addr.0)))
}

/// A listen address as a client on the same host reaches it.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Runs one admin command against the listener at `url`; returns the node's JSON answer.
pub fn run_admin(url: &str, token: Option<&str>, cmd: AdminCmd) -> anyhow::Result<Value> {
    let client = HttpClient::new(url)
        .context("admin listener URL")?
        .with_token(token);
    let (status, body) = match &cmd {
        AdminCmd::Actors => client.get("/admin/actors"),
        AdminCmd::Restart { name } => {
            check_name(name)?;
            client.post(&format!("/admin/actors/{name}/restart"), &Value::Null)
        }
    }
    .context("admin listener")?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let err = body.get("error");
    let field = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (code, message) = (field("code"), field("message"));
    match (&cmd, status) {
        (AdminCmd::Restart { name }, 404) if code == "unknown_actor" => {
            bail!("cannot restart {name}: {message}")
        }
        (AdminCmd::Restart { name }, _) => {
            bail!("node refused to restart {name} ({status} {code}): {message}")
        }
        (AdminCmd::Actors, _) => {
            bail!("node answered {status} {code} for the actor list: {message}")
        }
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        bail!(
            "invalid actor name {name:?}: expected a name as `accumen admin actors` lists it \
             (lowercase letters, digits, _)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_admin_addrs_are_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:8083".parse().unwrap()).to_string(),
            "127.0.0.1:8083"
        );
        assert_eq!(reachable("[::]:9".parse().unwrap()).to_string(), "[::1]:9");
        assert_eq!(
            reachable("10.1.2.3:8083".parse().unwrap()).to_string(),
            "10.1.2.3:8083"
        );
    }

    #[test]
    fn admin_url_prefers_the_flag_then_the_config_then_the_default() {
        assert_eq!(admin_url(None, None).unwrap(), DEFAULT_ADMIN_URL);
        assert_eq!(
            admin_url(None, Some("http://127.0.0.1:9")).unwrap(),
            "http://127.0.0.1:9"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, "admin_addr: \"127.0.0.1:9123\"\n").unwrap();
        assert_eq!(
            admin_url(Some(&path), None).unwrap(),
            "http://127.0.0.1:9123"
        );
        std::fs::write(&path, "admin_addr: \":9123\"\n").unwrap();
        let err = format!("{:#}", admin_url(Some(&path), None).unwrap_err());
        assert!(err.contains("admin_allow_non_loopback"), "{err}");
    }

    #[test]
    fn bad_names_are_refused_before_any_request() {
        // Port 1 is never listened on: a request would fail differently.
        for bad in ["", "../health", "Executor", "a/b", &"x".repeat(65)] {
            let err = run_admin(
                "http://127.0.0.1:1",
                None,
                AdminCmd::Restart {
                    name: bad.to_string(),
                },
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("invalid actor name"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_node_that_is_not_running_is_named() {
        let err = format!(
            "{:#}",
            run_admin("http://127.0.0.1:1", None, AdminCmd::Actors).unwrap_err()
        );
        assert!(
            err.contains("cannot reach the node at http://127.0.0.1:1")
                && err.contains("is it running?"),
            "{err}"
        );
    }
}
