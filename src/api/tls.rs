//! TLS on the API listener (`api.tls.cert_file` + `api.tls.key_file`): rustls with the ring
//! provider, the certificate served through a resolver whose key can be swapped while the node
//! runs (SIGHUP, see `node::systemd`).
//!
//! Invariants:
//! - Only the API listener speaks TLS. Health, metrics and admin stay plain HTTP: they are bound
//!   to loopback or a management network, and probes and scrapers expect plain HTTP there.
//! - A [`CertStore`] always holds a certificate chain whose leaf matches its private key: loading
//!   checks the pair before anything is served, and a reload that fails (unreadable file, no
//!   certificate, no key, key of another certificate) changes nothing, so the node keeps serving
//!   the certificate it had. A swap is atomic for new handshakes; established connections keep
//!   the certificate they negotiated with.
//! - Files are read with a size bound ([`MAX_PEM_BYTES`]): pointing the key at a log file by
//!   mistake cannot make the node read gigabytes.
//! - The provider is ring, passed explicitly (stack-notes §2): the server config never depends
//!   on a process-wide default being installed.
//! - What one client can cost during a handshake is bounded by the listener
//!   (`api::bind`): `api.tls.handshake_timeout` per handshake, [`MAX_CONCURRENT_HANDSHAKES`] per
//!   HTTP worker, and the connection cap `api.max_connections`, which counts connections still
//!   in their handshake.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Largest certificate or key file read (a chain of a few certificates is a few KiB).
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// TLS handshakes one HTTP worker runs at once; further accepted connections wait for a slot.
/// A handshake costs a signature (~1 ms with ring): this bounds the CPU a crowd of new
/// connections can take from the workers serving requests.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 64;

/// Why TLS material cannot be used. Each names the setting and file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {}: larger than {MAX_PEM_BYTES} bytes; is it the right file?", path.display())]
    TooLarge { key: &'static str, path: PathBuf },
    #[error("api.tls.cert_file {}: {message}", path.display())]
    Certificate { path: PathBuf, message: String },
    #[error("api.tls.key_file {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error(
        "api.tls.key_file {} does not fit api.tls.cert_file {}: {message}",
        key.display(), cert.display()
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// The ring provider this node's TLS uses, server and client alike.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate's DER, the fingerprint `openssl x509 -fingerprint -sha256` prints
/// (as lowercase hex without colons): logged on load and reload so an operator can tell which
/// certificate is live.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(accumen_actors::types::sha256(cert.as_ref()).0)
}

/// The API listener's certificate and key, reloadable.
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl CertStore {
    /// Reads and checks the pair; the error names the file and what is wrong with it.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        let key = read_pair(cert_file, key_file, &provider)?;
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Reads the files again; swaps the certificate in only if the new pair is good. Returns
    /// the new leaf's fingerprint; on error the old certificate stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = read_pair(&self.cert_file, &self.key_file, &self.provider)?;
        let new = Arc::new(key);
        let fp = leaf_fingerprint(&new);
        // A poisoned lock only means a panic while swapping an Arc: the value is still whole.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(fp)
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The live leaf certificate's fingerprint.
    pub fn fingerprint(&self) -> String {
        leaf_fingerprint(&self.current())
    }

    /// The server configuration for the API listener: TLS 1.2 and 1.3 (rustls' safe defaults),
    /// no client certificates, the certificate from this store at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        // HTTP/1.1 only (actix-web is built without http2); actix adds it to ALPN itself too.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn leaf_fingerprint(key: &CertifiedKey) -> String {
    key.end_entity_cert()
        .map(fingerprint)
        .unwrap_or_else(|_| "none".to_owned())
}

/// Hands the store's current certificate to every handshake (SNI is not consulted: one
/// certificate per node, whatever name the client asked for).
#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// A private key others can read is worth a warning, not a refusal: some deployments (secret
/// mounts) cannot set the mode, and the node cannot know who else is in the group.
fn warn_if_exposed(key_file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(key_file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                key_file = %key_file.display(),
                mode = format!("{mode:o}"),
                "api.tls.key_file can be read by users other than its owner: chmod 600 it"
            );
        }
    }
}

/// Reads a file of at most [`MAX_PEM_BYTES`].
fn read_bounded(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut buf = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(read)?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(buf)
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1)
/// and checks that the key is the leaf's.
fn read_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_bounded("api.tls.cert_file", cert_file)?;
    let key_pem = read_bounded("api.tls.key_file", key_file)?;
    warn_if_exposed(key_file);
    let certs = parse_certs(&cert_pem).map_err(|message| TlsError::Certificate {
        path: cert_file.to_path_buf(),
        message,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key_file.to_path_buf(),
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (expected BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .to_owned()
            }
            e => format!("not a PEM private key: {e}"),
        },
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_file.to_path_buf(),
            key: key_file.to_path_buf(),
            message: e.to_string(),
        },
        rustls::Error::General(_) => TlsError::Key {
            path: key_file.to_path_buf(),
            message: format!("unsupported private key: {e}"),
        },
        e => TlsError::Certificate {
            path: cert_file.to_path_buf(),
            message: format!("unusable certificate: {e}"),
        },
    })
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (expected BEGIN CERTIFICATE, leaf first)".to_owned());
    }
    Ok(certs)
}

/// The TCP socket under an API connection, plain or TLS, for the idle watchdog (`conn`).
pub fn tcp_of(io: &dyn std::any::Any) -> Option<&actix_web::rt::net::TcpStream> {
    use actix_tls::accept::rustls_0_23::TlsStream;
    io.downcast_ref::<actix_web::rt::net::TcpStream>()
        .or_else(|| {
            io.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>()
                .map(|s| s.get_ref().0)
        })
}

/// Test certificates, made with rcgen at test time: no private key is committed.
#[cfg(test)]
pub(crate) mod testcert {
    /// A self-signed certificate for `localhost` and 127.0.0.1: (cert PEM, key PEM, cert DER).
    pub fn self_signed() -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_a_pair_and_reports_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, der) = testcert::self_signed();
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let store = Arc::new(CertStore::load(&c, &k).unwrap());
        assert_eq!(store.fingerprint(), fingerprint(&CertificateDer::from(der)));
        assert!(store.server_config().is_ok());
    }

    #[test]
    fn bad_material_is_refused_with_the_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = testcert::self_signed();
        let (other_cert, _, _) = testcert::self_signed();
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let other = write(dir.path(), "other.pem", &other_cert);
        let junk = write(dir.path(), "junk.pem", "hello\n");
        let missing = dir.path().join("missing.pem");
        let msg = |r: Result<CertStore, TlsError>| r.unwrap_err().to_string();

        let e = msg(CertStore::load(&missing, &k));
        assert!(
            e.contains("api.tls.cert_file") && e.contains("missing.pem"),
            "{e}"
        );
        let e = msg(CertStore::load(&c, &missing));
        assert!(e.contains("api.tls.key_file"), "{e}");
        let e = msg(CertStore::load(&junk, &k));
        assert!(
            e.contains("api.tls.cert_file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = msg(CertStore::load(&c, &junk));
        assert!(
            e.contains("api.tls.key_file") && e.contains("no PEM private key"),
            "{e}"
        );
        // The key file given a certificate.
        let e = msg(CertStore::load(&c, &c));
        assert!(e.contains("api.tls.key_file"), "{e}");
        // A key that belongs to another certificate.
        let e = msg(CertStore::load(&other, &k));
        assert!(e.contains("does not fit"), "{e}");

        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_PEM_BYTES as usize + 1]).unwrap();
        let e = msg(CertStore::load(&big, &k));
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = testcert::self_signed();
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let store = CertStore::load(&c, &k).unwrap();
        let before = store.fingerprint();

        std::fs::write(&c, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
        assert!(store.reload().is_err());
        assert_eq!(store.fingerprint(), before);

        let (cert2, key2, der2) = testcert::self_signed();
        std::fs::write(&c, &cert2).unwrap();
        // Certificate replaced but not yet its key: refused, old pair kept.
        assert!(matches!(store.reload(), Err(TlsError::Mismatch { .. })));
        assert_eq!(store.fingerprint(), before);
        std::fs::write(&k, &key2).unwrap();
        let fp = store.reload().unwrap();
        assert_eq!(fp, fingerprint(&CertificateDer::from(der2)));
        assert_eq!(store.fingerprint(), fp);
    }
}
