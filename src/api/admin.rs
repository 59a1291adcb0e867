//! The admin listener's routes (`admin_addr`, under `/admin/...`): what an operator does to a
//! running node beyond reading it. Other admin routes (backup, ...) mount here through
//! [`configure`].
//!
//! - `GET /admin/actors`: every supervised actor with its state (supervisor's `ListActors`).
//! - `POST /admin/actors/{name}/restart`: the supervisor's own replacement of one actor
//!   (`RestartActor`), counted in `accumen_actor_restarts_total{reason="operator"}`.
//!
//! Invariants:
//! - The listener has no authentication, so settings refuse a non-loopback `admin_addr` unless
//!   `admin_allow_non_loopback` is set; these routes assume whoever reaches them is the operator.
//! - Every answer waits at most `SUPERVISOR_TIMEOUT` for the supervisor; a supervisor that has
//!   stopped (the node is stopping) or is not answering gives 503, never a hung request.
//! - A refused restart (unknown name, restart already in progress, node stopping) changes
//!   nothing.

use std::time::Duration;

use accumen_actors::supervisor::{ListActors, RestartActor, RestartError};
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, ApiResult, State};

/// Longest an admin request waits for the supervisor (it answers between heartbeat rounds,
/// which are short; only a stopping or wedged process makes it wait this long).
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(5);

/// Mounts the admin routes (the admin listener's `App` calls this).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/actors", web::get().to(actors))
        .route("/admin/actors/{name}/restart", web::post().to(restart));
}

fn supervisor_error(e: actix::MailboxError) -> ApiError {
    match e {
        actix::MailboxError::Closed => {
            ApiError::unavailable("stopping", "the node is stopping: supervision has ended")
        }
        actix::MailboxError::Timeout => ApiError::unavailable(
            "supervisor_timeout",
            format!(
                "the supervisor did not answer within {}",
                humantime::format_duration(SUPERVISOR_TIMEOUT)
            ),
        ),
    }
}

async fn actors(state: State) -> ApiResult<HttpResponse> {
    let list = state
        .supervisor
        .send(ListActors)
        .timeout(SUPERVISOR_TIMEOUT)
        .await
        .map_err(supervisor_error)?;
    Ok(HttpResponse::Ok().json(json!({ "actors": list })))
}

async fn restart(state: State, name: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = name.into_inner();
    let answer = state
        .supervisor
        .send(RestartActor { name })
        .timeout(SUPERVISOR_TIMEOUT)
        .await
        .map_err(supervisor_error)?;
    match answer {
        Ok(info) => Ok(HttpResponse::Ok().json(json!({ "restarted": info }))),
        Err(e @ RestartError::Unknown { .. }) => {
            Err(ApiError::new(404, "unknown_actor", e.to_string()))
        }
        Err(e @ RestartError::InProgress { .. }) => {
            Err(ApiError::new(409, "restart_in_progress", e.to_string()))
        }
        Err(e @ RestartError::Stopping) => Err(ApiError::unavailable("stopping", e.to_string())),
    }
}
