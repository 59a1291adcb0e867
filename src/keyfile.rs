//! Key files: the one reader and the one creator of ed25519 seed files (hex seed and a newline),
//! for the node's sequencer key and the CLI's signing keys alike.
//!
//! Invariants:
//! - A key file is created owner-only in the same `open` that creates it, so it is never
//!   readable by others, not even for an instant, and never overwrites an existing file.
//! - Reading is bounded (a key file is 65 bytes; `--key /dev/zero` must not eat memory) and
//!   every failure names the file and says whether it could not be read or holds no valid key.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use accumen_actors::types::Keypair;
use anyhow::anyhow;

/// Longest key file read; a valid one is 65 bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Reads a key file (as written by `accumen key generate` or the node's first start).
pub fn read(path: &Path) -> anyhow::Result<Keypair> {
    let text = read_bounded(path, MAX_KEY_FILE_BYTES)
        .and_then(|b| {
            String::from_utf8(b).map_err(|_| io::Error::other("the file is not UTF-8 text"))
        })
        .map_err(|e| anyhow!("cannot read key file {}: {e}", path.display()))?;
    Keypair::from_seed_hex(&text)
        .map_err(|e| anyhow!("key file {} does not hold a valid key: {e}", path.display()))
}

/// Whether group or others may read or write the file (a key should be `chmod 600`).
pub fn open_to_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Creates `path` (failing with `AlreadyExists` if it exists), owner-only, holding `key`'s seed,
/// written durably. A partly written file is removed so a failed run leaves nothing half-made.
pub fn create(path: &Path, key: &Keypair) -> io::Result<()> {
    create_secret_file(path, format!("{}\n", key.seed_hex()).as_bytes())
}

fn create_secret_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Reads at most `limit` bytes of a file; a longer file is an error, not silently cut.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::other(format!(
            "file is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_read_back_and_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = Keypair::from_seed([7; 32]);
        create(&path, &key).unwrap();
        assert_eq!(read(&path).unwrap().public(), key.public());
        assert!(!open_to_others(&path));
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 65);
        // Never overwritten: the existing key stays.
        let e = create(&path, &Keypair::from_seed([8; 32])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(read(&path).unwrap().public(), key.public());
    }

    #[test]
    fn bad_key_files_are_named_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let e = read(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.key") && e.contains("cannot read"), "{e}");

        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex\n").unwrap();
        let e = read(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.key") && e.contains("valid key"), "{e}");

        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; 5000]).unwrap();
        let e = read(&big).unwrap_err().to_string();
        assert!(e.contains("larger than 4096 bytes"), "{e}");

        let binary = dir.path().join("bin.key");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        let e = read(&binary).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let open = dir.path().join("open.key");
            create(&open, &Keypair::from_seed([9; 32])).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(open_to_others(&open));
        }
    }
}
