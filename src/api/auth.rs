//! Optional bearer tokens (`api.auth.*`): with `api.auth.token_file` set, writes on the API
//! listener (`POST /v1/tx`, `POST /v1/txs`), every admin route, and reads too when
//! `api.auth.protect_reads` is set, need `Authorization: Bearer <token>`; anything else gets
//! 401 `unauthorized` with `WWW-Authenticate: Bearer`, counted in
//! `accumen_api_refused_total{reason="unauthorized"}`.
//!
//! Invariants:
//! - The node stores only SHA-256 hashes of tokens (`sha256:<hex>`, one a line): the token file
//!   can be read without learning a token. `accumen token generate` prints a token and its line.
//! - A presented token is hashed and compared with every stored hash in constant time (no early
//!   exit on the first differing byte or on the first match), so timing tells nothing about
//!   how close a guess was or which token matched.
//! - A refused request is answered before its body is read (a refused `POST` closes its
//!   connection); the rate limiter sits outside this check, so guessing is rate limited too.
//! - The file is read at start and again on SIGHUP ([`TokenStore::reload`], see
//!   `node::systemd`): a new file replaces the whole set at once for requests that arrive after
//!   it (old tokens it no longer lists are refused from then on); a file that cannot be read or
//!   parsed changes nothing, so a typo never locks every client out or lets everyone in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use accumen_actors::types::sha256;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use anyhow::{Context, bail};

use super::{ApiError, State};

/// Metric reason and error code of a refusal.
pub const UNAUTHORIZED: &str = "unauthorized";
/// Longest token file read: thousands of lines, never a log file given by mistake.
const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;

/// The accepted tokens, as hashes.
#[derive(Debug, Clone)]
pub struct TokenSet {
    hashes: Vec<[u8; 32]>,
}

impl TokenSet {
    /// Parses a token file: `sha256:<64 hex>` lines; blank lines and `#` comments ignored.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut hashes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(hex) = line.strip_prefix("sha256:") else {
                bail!(
                    "line {}: expected sha256:<64 hex digits> (from `accumen token generate`)",
                    n + 1
                );
            };
            let mut h = [0u8; 32];
            hex::decode_to_slice(hex, &mut h)
                .with_context(|| format!("line {}: expected sha256:<64 hex digits>", n + 1))?;
            hashes.push(h);
        }
        if hashes.is_empty() {
            bail!("no token hashes: every protected request would be refused");
        }
        Ok(TokenSet { hashes })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("api.auth.token_file {}", path.display()))?
            .len();
        if len > MAX_TOKEN_FILE_BYTES {
            bail!(
                "api.auth.token_file {} is {len} bytes, more than {MAX_TOKEN_FILE_BYTES}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("api.auth.token_file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("api.auth.token_file {}", path.display()))
    }

    /// Whether `token` is one of the set, in time independent of which and how close.
    pub fn accepts(&self, token: &str) -> bool {
        let h = sha256(token.as_bytes()).0;
        let mut any = 0u8;
        for stored in &self.hashes {
            let diff = stored
                .iter()
                .zip(h.iter())
                .fold(0u8, |d, (a, b)| d | (a ^ b));
            any |= u8::from(diff == 0);
        }
        any == 1
    }
}

/// The token set of `api.auth.token_file`, swapped as a whole on reload.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    current: RwLock<Arc<TokenSet>>,
}

impl TokenStore {
    /// Reads `path`; the error names the setting, the file and the line at fault.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(TokenSet::load(path)?)),
        })
    }

    /// Reads the file again and swaps the new set in; on error the old set stays. Returns how
    /// many token hashes the new set holds.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let set = TokenSet::load(&self.path)?;
        let n = set.hashes.len();
        // A poisoned lock only means a panic while swapping an Arc: the value is still whole.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(n)
    }

    /// The set requests are checked against now.
    pub fn current(&self) -> Arc<TokenSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The line a token file holds for `token`.
pub fn hash_line(token: &str) -> String {
    format!("sha256:{}", hex::encode(sha256(token.as_bytes()).0))
}

/// What a listener protects.
#[derive(Debug, Clone)]
pub struct Auth {
    pub tokens: Option<Arc<TokenStore>>,
    pub protect_reads: bool,
    /// Every route needs a token (the admin listener).
    pub protect_all: bool,
}

impl Auth {
    fn protects(&self, method: &Method, path: &str) -> bool {
        self.protect_all
            || self.protect_reads
            || (method == Method::POST && (path == "/v1/tx" || path == "/v1/txs"))
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The middleware: 401 `unauthorized` for a protected request without an accepted token.
pub async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    auth: Auth,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(tokens) = &auth.tokens
        && auth.protects(req.method(), req.path())
    {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let ok = presented.is_some_and(|t| tokens.current().accepts(t));
        if !ok {
            if let Some(state) = req.app_data::<State>() {
                state.metrics.count_api_refusal(UNAUTHORIZED);
            }
            let msg = if presented.is_some() {
                "the bearer token is not accepted"
            } else {
                "this endpoint needs Authorization: Bearer <token>"
            };
            let mut err = ApiError::new(401, UNAUTHORIZED, msg);
            if req.method() == Method::POST {
                err = err.closing();
            }
            let res = actix_web::ResponseError::error_response(&err);
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_listed_tokens_only() {
        let file = format!(
            "# ops team\n\n{}\n  {}  \n",
            hash_line("alpha"),
            hash_line("beta")
        );
        let set = TokenSet::parse(&file).unwrap();
        assert!(set.accepts("alpha"));
        assert!(set.accepts("beta"));
        assert!(!set.accepts("gamma"));
        assert!(!set.accepts(""));
        assert!(!set.accepts("alpha "));
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = TokenSet::parse("sha256:abcd\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 1"), "{e:#}");
        let e = TokenSet::parse("# c\nmd5:00\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        assert!(TokenSet::parse("# only comments\n").is_err());
    }

    #[test]
    fn reload_swaps_the_set_or_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, hash_line("old")).unwrap();
        let store = TokenStore::load(&path).unwrap();
        assert!(store.current().accepts("old"));

        std::fs::write(&path, "garbage\n").unwrap();
        let e = store.reload().unwrap_err();
        assert!(format!("{e:#}").contains("line 1"), "{e:#}");
        assert!(
            store.current().accepts("old"),
            "a bad file keeps the old set"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(store.reload().is_err());
        assert!(
            store.current().accepts("old"),
            "a missing file keeps the old set"
        );

        std::fs::write(
            &path,
            format!("{}\n{}\n", hash_line("new"), hash_line("two")),
        )
        .unwrap();
        assert_eq!(store.reload().unwrap(), 2);
        assert!(store.current().accepts("new"));
        assert!(!store.current().accepts("old"));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
