//! `GET /admin/backup`: a running node's database, copied consistently (`Storage::backup_to`,
//! one read transaction) and streamed to the caller as a redb file that `accumen restore`
//! takes. Meant for the admin listener only (`configure` mounts it there): a backup costs disk
//! and I/O and hands out the whole chain state.
//!
//! Invariants:
//! - One backup at a time, from copy to last byte streamed: a second request meanwhile is 409
//!   `backup_running`, so a client cannot make the node hold several copies.
//! - Never blocks an HTTP worker or the block producer: the copy and every chunk read run on
//!   actix's blocking pool, and redb's read transaction does not hold commits back.
//! - Nothing is left on disk: the copy is written under `data_dir` (same disk budget as the
//!   database; not /tmp, which may be small), unlinked as soon as it is opened for streaming,
//!   and removed if the copy fails; a client that goes away drops the stream and the file.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::SizedStream;
use actix_web::{HttpResponse, web};
use futures_util::stream;

use super::{ApiError, ApiResult, AppState};

/// Bytes read from the copy per chunk streamed.
const CHUNK: usize = 1 << 20;

/// Set while a backup runs (copy and streaming). One per process, like the node: the admin
/// app is built once per worker, so a gate in app data could be per worker.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Holds `RUNNING` until dropped (the stream ends, fails, or the client goes away).
struct Held;

impl Held {
    fn try_hold() -> Option<Held> {
        RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// Mounts `GET /admin/backup`: call it for the admin listener only.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/backup", web::get().to(backup));
}

/// Where the copy is written: a fresh hidden name next to the database file.
fn scratch(state: &AppState) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = match state.storage.path().and_then(|p| p.parent()) {
        Some(d) => d.to_path_buf(),
        // An in-memory node may have no data dir at all.
        None => std::env::temp_dir(),
    };
    dir.join(format!(".backup-{}-{nanos}.redb", std::process::id()))
}

async fn backup(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let held = Held::try_hold().ok_or_else(|| {
        ApiError::new(
            409,
            "backup_running",
            "a backup is already running; wait for it to finish",
        )
    })?;
    let path = scratch(&state);
    let storage = state.storage.clone();
    let made = web::block(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let stats = storage
            .backup_to(&path)
            .map_err(|e| super::error::with_causes(&e))?;
        let file = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()));
        // Unlinked now: the open file streams on, and nothing is left behind whatever happens.
        let _ = std::fs::remove_file(&path);
        file.map(|f| (f, stats))
    })
    .await
    .map_err(|e| ApiError::internal(format!("backup task: {e}")))?
    .map_err(|e| ApiError::internal(format!("backup failed: {e}")))?;
    let (file, stats) = made;
    tracing::info!(
        head_height = stats.head_height,
        bytes = stats.bytes,
        elapsed_ms = stats.elapsed.as_millis() as u64,
        "backup taken for /admin/backup"
    );
    let chunks = stream::unfold(Some((file, held)), |st| async move {
        let (mut file, held) = st?;
        let read = web::block(move || {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => None,
            Ok(Ok((file, buf))) => Some((Ok(web::Bytes::from(buf)), Some((file, held)))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("x-accumen-head-height", stats.head_height.to_string()))
        .insert_header(("x-accumen-head-hash", stats.head_hash.to_string()))
        .body(SizedStream::new(stats.bytes, chunks)))
}

#[cfg(test)]
mod tests {
    use accumen_actors::health::Role;
    use accumen_actors::storage::Storage;
    use actix_web::App;
    use actix_web::test as web_test;

    use super::*;

    #[actix_web::test]
    async fn a_second_backup_while_one_runs_is_409_and_changes_nothing() {
        let state = crate::api::tests::state(Role::Sequencer, None);
        let app =
            web_test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
        let held = Held::try_hold().unwrap();
        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri("/admin/backup")
                .to_request(),
        )
        .await;
        assert_eq!(res.status().as_u16(), 409);
        let body: serde_json::Value = web_test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "backup_running");
        drop(held);
        assert!(Held::try_hold().is_some(), "released");
    }

    #[actix_web::test]
    async fn get_admin_backup_streams_a_database_that_opens_at_the_node_head() {
        let state = crate::api::tests::state(Role::Sequencer, None);
        let app =
            web_test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri("/admin/backup")
                .to_request(),
        )
        .await;
        assert_eq!(res.status().as_u16(), 200);
        let head = state.storage.head().unwrap();
        assert_eq!(
            res.headers()
                .get("x-accumen-head-hash")
                .unwrap()
                .to_str()
                .unwrap(),
            head.hash().to_string()
        );
        let body = web_test::read_body(res).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("got.redb");
        std::fs::write(&file, &body).unwrap();
        let copy = Storage::open_existing(&file).unwrap();
        assert_eq!(copy.head().unwrap(), head);
        assert_eq!(copy.params(), state.storage.params());
    }
}
