//! Per-client rate limits on the API listener (`api.rate_limit.*`): a token bucket per client
//! IP, one table for writes (`POST /v1/tx`, `POST /v1/txs`) and one for everything else.
//!
//! Role: [`ClientLimiter`] is the actix-free logic (unit tested here); [`limit`] is the
//! middleware that asks it before the request reaches the body guards or a handler, and answers
//! 429 `rate_limited` with `Retry-After` (counted in `accumen_api_refused_total{reason=
//! "rate_limited"}`) without reading the body.
//!
//! Invariants:
//! - The table holds at most `api.rate_limit.max_clients` clients, whatever the number of
//!   source addresses: a new client arriving at a full table first drops every client whose
//!   bucket has refilled (it would start full anyway, so nothing is forgotten), then, if none
//!   has, the client seen longest ago. Eviction only ever forgets a client's debt (it gets a
//!   fresh, full bucket), never denies a client that has tokens. The scan is O(max_clients) and
//!   runs only when the table is full.
//! - A refused request costs one table lookup: no body is read, nothing else is charged.
//! - The client is the TCP peer address: behind a reverse proxy every client is the proxy, so
//!   the limits are off by default (RUNBOOK "API security").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

use super::{ApiError, State};
use crate::settings::RateSettings;

/// Metric reason and error code of a refusal.
pub const RATE_LIMITED: &str = "rate_limited";

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per client IP, bounded in number.
#[derive(Debug)]
pub struct ClientLimiter {
    per_second: f64,
    burst: f64,
    max_clients: usize,
    table: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ClientLimiter {
    /// `None` when the limit is off (`per_second` 0).
    pub fn new(rate: &RateSettings, max_clients: usize) -> Option<Self> {
        if rate.per_second == 0 {
            return None;
        }
        Some(ClientLimiter {
            per_second: rate.per_second as f64,
            burst: rate.burst.max(1) as f64,
            max_clients: max_clients.max(1),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token for `client` at `now`: `Ok(())`, or `Err(wait)` until one is available.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&client) && table.len() >= self.max_clients {
            self.evict(&mut table, now);
        }
        let b = table.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = self.refilled(b, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }

    /// Clients in the table now.
    pub fn clients(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + dt * self.per_second).min(self.burst)
    }

    /// Makes room for one client: drops the refilled ones, else the one seen longest ago.
    fn evict(&self, table: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        table.retain(|_, b| self.refilled(b, now) < self.burst);
        if table.len() >= self.max_clients
            && let Some(oldest) = table.iter().min_by_key(|(_, b)| b.at).map(|(ip, _)| *ip)
        {
            table.remove(&oldest);
        }
    }
}

/// The two tables of the API listener; a `None` limit is off.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub writes: Option<Arc<ClientLimiter>>,
    pub reads: Option<Arc<ClientLimiter>>,
}

impl Limits {
    pub fn from_settings(s: &crate::settings::RateLimitSettings) -> Self {
        Limits {
            writes: ClientLimiter::new(&s.writes, s.max_clients).map(Arc::new),
            reads: ClientLimiter::new(&s.reads, s.max_clients).map(Arc::new),
        }
    }

    fn for_request(&self, method: &Method, path: &str) -> Option<&ClientLimiter> {
        let write = method == Method::POST && (path == "/v1/tx" || path == "/v1/txs");
        if write {
            self.writes.as_deref()
        } else {
            self.reads.as_deref()
        }
    }
}

/// Whole seconds for `Retry-After`: rounded up, at least 1 (0 would invite an immediate retry).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

/// The middleware: 429 `rate_limited` with `Retry-After` once a client's bucket is empty.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    limits: Limits,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limiter = limits.for_request(req.method(), req.path());
    if let (Some(l), Some(peer)) = (limiter, req.peer_addr())
        && let Err(wait) = l.check(peer.ip(), Instant::now())
    {
        let secs = retry_after_secs(wait);
        if let Some(state) = req.app_data::<State>() {
            state.metrics.count_api_refusal(RATE_LIMITED);
        }
        let mut err = ApiError::new(
            429,
            RATE_LIMITED,
            format!("too many requests from this client; retry in {secs} s"),
        );
        err.retry_after = Some(secs);
        // A body the client already sends is not read: close instead of draining it.
        if req.method() == Method::POST {
            err = err.closing();
        }
        let res = actix_web::ResponseError::error_response(&err);
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    fn limiter(per_second: u32, burst: u32, max_clients: usize) -> ClientLimiter {
        ClientLimiter::new(&RateSettings { per_second, burst }, max_clients).unwrap()
    }

    #[test]
    fn off_when_zero() {
        assert!(
            ClientLimiter::new(
                &RateSettings {
                    per_second: 0,
                    burst: 5
                },
                10
            )
            .is_none()
        );
    }

    #[test]
    fn burst_then_refused_then_refilled() {
        let l = limiter(2, 3, 10);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip(1), t).is_ok());
        }
        let wait = l.check(ip(1), t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Another client has its own bucket.
        assert!(l.check(ip(2), t).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t + Duration::from_millis(500);
        assert!(l.check(ip(1), t1).is_ok());
        assert!(l.check(ip(1), t1).is_err());
        // Refill never exceeds the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check(ip(1), t2).is_ok());
        }
        assert!(l.check(ip(1), t2).is_err());
    }

    #[test]
    fn table_bounded_under_many_addresses() {
        let l = limiter(1, 1, 100);
        let t = Instant::now();
        for n in 0..10_000 {
            let _ = l.check(ip(n), t + Duration::from_micros(u64::from(n)));
            assert!(l.clients() <= 100);
        }
    }

    #[test]
    fn eviction_drops_refilled_first_and_keeps_debtors() {
        let l = limiter(1, 2, 2);
        let t = Instant::now();
        // Client 1 is in debt, client 2 used one token long ago and has refilled.
        assert!(l.check(ip(2), t).is_ok());
        let t1 = t + Duration::from_secs(10);
        assert!(l.check(ip(1), t1).is_ok());
        assert!(l.check(ip(1), t1).is_ok());
        // A new client evicts the refilled one, not the debtor.
        assert!(l.check(ip(3), t1).is_ok());
        assert!(l.check(ip(1), t1).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
