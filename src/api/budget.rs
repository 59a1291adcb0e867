//! The request-body budget: how many bytes of request bodies the API holds at once.
//!
//! Role: one counting semaphore, in bytes, shared by every API worker. A body reserves what has
//! actually arrived, chunk by chunk, and gives it back when its request is done (the
//! [`Reservation`] is dropped, whatever the path: answer, error, timeout, client gone).
//!
//! Invariants:
//! - The bytes reserved never exceed the budget: a chunk that does not fit is refused at once
//!   (never waited for), so a flood of bodies gets 503s instead of memory.
//! - Only received bytes are reserved, not announced lengths: a client that announces 4 MiB and
//!   sends nothing holds nothing but its connection.
//! - `in_flight` (exported as `accumen_api_body_bytes_in_flight`) equals the bytes reserved.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    in_flight: Gauge,
}

/// The part of the budget one request holds; released on drop.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    in_flight: Gauge,
}

impl BodyBudget {
    /// A budget of `bytes` (at most `u32::MAX` is usable by one reservation step).
    pub fn new(bytes: usize, in_flight: Gauge) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            in_flight,
        }
    }

    /// An empty reservation to grow as a body arrives.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            permit: None,
            in_flight: self.in_flight.clone(),
        }
    }

    /// Bytes not reserved by anyone.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Adds `bytes` to `r`, or leaves it unchanged and returns false if they do not fit now.
    pub fn grow(&self, r: &mut Reservation, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else {
            return false;
        };
        match self.permits.clone().try_acquire_many_owned(n) {
            Ok(more) => {
                match &mut r.permit {
                    Some(p) => p.merge(more),
                    None => r.permit = Some(more),
                }
                r.in_flight.inc_by(i64::from(n));
                true
            }
            Err(_) => false,
        }
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let held = i64::try_from(self.bytes()).unwrap_or(i64::MAX);
        self.in_flight.dec_by(held);
        // The permit itself returns its bytes to the semaphore as it drops.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_budget_and_return_on_drop() {
        let gauge = Gauge::default();
        let b = BodyBudget::new(100, gauge.clone());
        let mut r1 = b.reservation();
        assert!(b.grow(&mut r1, 60));
        assert!(b.grow(&mut r1, 0));
        let mut r2 = b.reservation();
        assert!(!b.grow(&mut r2, 41), "41 + 60 > 100");
        assert_eq!(r2.bytes(), 0, "a refused step reserves nothing");
        assert!(b.grow(&mut r2, 40));
        assert_eq!((r1.bytes(), r2.bytes(), b.available()), (60, 40, 0));
        assert_eq!(gauge.get(), 100);
        drop(r1);
        assert_eq!(b.available(), 60);
        assert_eq!(gauge.get(), 40);
        assert!(b.grow(&mut r2, 60));
        assert_eq!(r2.bytes(), 100);
        drop(r2);
        assert_eq!((b.available(), gauge.get()), (100, 0));
    }

    #[test]
    fn more_than_the_budget_or_u32_is_refused() {
        let b = BodyBudget::new(10, Gauge::default());
        let mut r = b.reservation();
        assert!(!b.grow(&mut r, 11));
        assert!(!b.grow(&mut r, usize::MAX));
        assert_eq!(b.available(), 10);
    }
}
