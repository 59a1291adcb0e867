//! Mempool actor and its logic; the actor itself is added later.

pub mod pool;
