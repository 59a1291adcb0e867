//! Request bodies: actix-web reads them, this module adds the two bounds actix has no setting
//! for, and turns every refusal into our JSON error.
//!
//! Role: handlers take the body as actix's `web::Bytes` extractor, whose `web::PayloadConfig`
//! limit is `api.max_body_bytes` (actix refuses an announced oversized body before reading it
//! and a streamed one as it passes the limit). Actix has no setting for a byte budget shared by
//! all requests nor for a deadline on the whole body (`client_request_timeout` covers the head
//! only), so [`guard_bodies`] wraps each request's payload stream in a [`Guarded`] stream that
//! charges every chunk to the body budget as it arrives and ends the body at `api.body_timeout`.
//! [`accept`] maps what the extractor reports to 413 `body_too_large`, 503
//! `body_budget_exhausted` and 408 `body_timeout` (counted in `accumen_api_refused_total`,
//! connection closed), or 400 `bad_body`.
//!
//! Invariants:
//! - Only received bytes are charged, not announced lengths; the charge is held until the
//!   handler has finished with the body (the middleware owns it), whatever the path.
//! - A refused body is not read further: the answer closes the connection.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::budget::{BodyBudget, Reservation};
use super::handlers::{budget_exhausted, refuse};
use super::{ApiError, ApiResult, State};

/// Why [`Guarded`] ended a body; carried to [`accept`] inside `PayloadError::Io`, the one
/// payload error that can hold our own cause.
#[derive(Debug, thiserror::Error)]
enum BodyRefusal {
    #[error("the request body does not fit api.max_body_bytes_in_flight")]
    Budget,
    #[error("the request body did not arrive within api.body_timeout")]
    Timeout,
}

/// A request's payload, charged to the body budget chunk by chunk and cut at its deadline.
struct Guarded {
    inner: Payload,
    budget: web::Data<BodyBudget>,
    held: Rc<RefCell<Reservation>>,
    deadline: Instant,
    /// Armed on the first wait, so a request whose body is never read costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Guarded {
    fn refuse(&mut self, why: BodyRefusal) -> Poll<Option<Result<web::Bytes, PayloadError>>> {
        self.done = true;
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::other(why)))))
    }
}

impl Stream for Guarded {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // Checked on every step, not only while waiting: a body trickling in just fast enough
        // never to wait still ends at its deadline.
        if Instant::now() >= this.deadline {
            return this.refuse(BodyRefusal::Timeout);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if this.budget.grow(&mut this.held.borrow_mut(), chunk.len()) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    this.refuse(BodyRefusal::Budget)
                }
            }
            Poll::Ready(other) => {
                this.done = other.is_none();
                Poll::Ready(other)
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return this.refuse(BodyRefusal::Timeout);
                }
                Poll::Pending
            }
        }
    }
}

/// Middleware: wraps the request's payload in a [`Guarded`] stream (deadline
/// `body_timeout` from now) and holds the body's budget charge until the handler is done.
pub async fn guard_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
    body_timeout: Duration,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(budget) = req.app_data::<web::Data<BodyBudget>>().cloned() else {
        return Err(ApiError::internal("no body budget configured").into());
    };
    let held = Rc::new(RefCell::new(budget.reservation()));
    let guarded = Guarded {
        inner: req.take_payload(),
        budget,
        held: held.clone(),
        deadline: Instant::now() + body_timeout,
        sleep: None,
        done: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(guarded),
    });
    let res = next.call(req).await;
    drop(held);
    res
}

/// The body as read by actix's `web::Bytes` extractor, or the refusal in our JSON format.
pub fn accept(state: &State, body: Result<web::Bytes, actix_web::Error>) -> ApiResult<web::Bytes> {
    let e = match body {
        Ok(b) => return Ok(b),
        Err(e) => e,
    };
    let api = &state.settings.api;
    Err(match e.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => refuse(
            state,
            413,
            "body_too_large",
            format!(
                "request body exceeds api.max_body_bytes = {} bytes",
                api.max_body_bytes
            ),
        )
        .closing(),
        Some(PayloadError::Io(io)) => match io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<BodyRefusal>())
        {
            Some(BodyRefusal::Budget) => budget_exhausted(state).closing(),
            Some(BodyRefusal::Timeout) => refuse(
                state,
                408,
                "body_timeout",
                format!(
                    "the request body did not arrive within api.body_timeout = {}",
                    humantime::format_duration(api.body_timeout)
                ),
            )
            .closing(),
            None => ApiError::bad_request("bad_body", e.to_string()),
        },
        _ => ApiError::bad_request("bad_body", e.to_string()),
    })
}
