//! Per-connection bookkeeping on the API listener: the open-connection gauge and the idle
//! watchdog that closes connections actix's own timers leave open.
//!
//! actix-http times out only the *first* request head of a connection (`client_request_timeout`)
//! and the pause *between* requests (`keep_alive`). A client can still hold a connection for
//! ever by sending a later request head byte by byte, by never reading an answer, or by
//! trickling a chunked body after its request was refused (actix drains it without a timer).
//! With a connection cap, such clients would lock out everyone else.
//!
//! Invariants:
//! - Every API connection has one [`Conn`], created when the connection is accepted and dropped
//!   when actix drops the connection; `accumen_api_connections` counts the live ones.
//! - A connection is *busy* while at least one of its requests is inside the handler stack
//!   (each request holds a [`Busy`] guard; dropping the request's future releases it). Handlers
//!   bound their own waits (body timeout, actor timeouts), so busy time is bounded too.
//! - A connection that has not been busy for `idle_timeout` is shut down (both directions, on a
//!   duplicate of its socket, which is the only way to act on a socket actix owns), counted as
//!   `accumen_api_refused_total{reason="idle_timeout"}`. The watchdog task ends as soon as the
//!   connection does, so closed connections leave nothing behind.

use std::any::Any;
use std::cell::Cell;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use accumen_actors::metrics::NodeMetrics;
use actix_web::dev::Extensions;
use tokio::sync::oneshot;

/// Refusal reason counted when the watchdog closes a connection.
pub const IDLE_TIMEOUT: &str = "idle_timeout";

/// One API connection.
#[derive(Debug)]
pub struct Conn {
    /// A duplicate of the connection's socket, used only to shut it down. `None` if it could not
    /// be duplicated (no file descriptors left): actix's own timers still apply then.
    socket: Option<std::net::TcpStream>,
    busy: Cell<u32>,
    idle_since: Cell<Instant>,
    metrics: NodeMetrics,
    /// Dropped with the connection: wakes the watchdog so it ends at once.
    _closed: oneshot::Sender<()>,
}

impl Conn {
    /// How long the connection has not been busy, or `None` while it is.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        (self.busy.get() == 0).then(|| now.saturating_duration_since(self.idle_since.get()))
    }

    fn shut_down(&self) {
        if let Some(s) = &self.socket {
            // Fails only if the socket is already closed, which is the goal anyway.
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.metrics.api_connections.dec();
    }
}

/// Held by a request while it is in the handler stack.
#[derive(Debug)]
pub struct Busy(Rc<Conn>);

impl Busy {
    pub fn new(conn: &Rc<Conn>) -> Self {
        conn.busy.set(conn.busy.get().saturating_add(1));
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let c = &self.0;
        c.busy.set(c.busy.get().saturating_sub(1));
        c.idle_since.set(Instant::now());
    }
}

/// The `on_connect` hook of the API listener: registers the connection and starts its
/// watchdog. Runs on the HTTP worker that owns the connection.
pub fn on_connect(io: &dyn Any, ext: &mut Extensions, idle_timeout: Duration, m: &NodeMetrics) {
    // Plain or TLS: the watchdog acts on the TCP socket under either.
    let socket = super::tls::tcp_of(io)
        .and_then(|s| s.as_fd().try_clone_to_owned().ok())
        .map(std::net::TcpStream::from);
    if socket.is_none() {
        tracing::warn!("cannot duplicate an API connection's socket; its idle watchdog is off");
    }
    let (closed_tx, closed_rx) = oneshot::channel();
    let conn = Rc::new(Conn {
        socket,
        busy: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        metrics: m.clone(),
        _closed: closed_tx,
    });
    m.api_connections.inc();
    actix_web::rt::spawn(watch(Rc::downgrade(&conn), closed_rx, idle_timeout));
    ext.insert(conn);
}

/// Closes the connection once it has been idle for `idle_timeout`; ends when it closes.
async fn watch(conn: Weak<Conn>, mut closed: oneshot::Receiver<()>, idle_timeout: Duration) {
    loop {
        let wait = {
            let Some(c) = conn.upgrade() else { return };
            match c.idle_for(Instant::now()) {
                Some(idle) if idle >= idle_timeout => {
                    c.shut_down();
                    c.metrics.count_api_refusal(IDLE_TIMEOUT);
                    return;
                }
                Some(idle) => idle_timeout - idle,
                // Busy: the earliest it can time out is a full period after it stops.
                None => idle_timeout,
            }
        };
        tokio::select! {
            _ = &mut closed => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Rc<Conn> {
        let (tx, _rx) = oneshot::channel();
        Rc::new(Conn {
            socket: None,
            busy: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
            metrics: NodeMetrics::default(),
            _closed: tx,
        })
    }

    #[test]
    fn idle_only_while_no_request_is_in_the_handlers() {
        let c = conn();
        let t0 = c.idle_since.get();
        let later = t0 + Duration::from_secs(3);
        assert_eq!(c.idle_for(later), Some(Duration::from_secs(3)));
        let a = Busy::new(&c);
        let b = Busy::new(&c);
        assert_eq!(c.idle_for(later), None);
        drop(a);
        assert_eq!(c.idle_for(later), None, "one request still in flight");
        drop(b);
        // Idle again, counted from when the last request left.
        let left = c.idle_since.get();
        assert!(left >= t0);
        assert_eq!(
            c.idle_for(left + Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
    }
}
