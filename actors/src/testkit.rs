//! Test transactions: one builder for unit tests, benchmarks and the whole-node tests.
//!
//! Role: a [`Signer`] is a key with a nonce counter that builds, signs and (where asked)
//! verifies deploy and call transactions, so every test builds a transaction the same way and a
//! change to `Tx` is made here once. Compiled only for this crate's tests and under the
//! `test-hooks` feature (benches and the shell's tests enable it); never in a node binary.
//!
//! Invariants: a signer never reuses a nonce unless told to (`sign_at`/`body` take an explicit
//! one and leave the counter alone); a transaction that fails to verify panics, because in a test
//! that is a bug in the test.

use crate::types::{Action, Address, Bytes, Keypair, PublicKey, SignedTx, Tx, VerifiedTx};

/// The chain id test nodes and unit tests use.
pub const CHAIN: &str = "accumen-test";
/// Gas of [`Signer::deploy`]: enough for any test contract's deploy.
pub const DEPLOY_GAS: u64 = 50_000_000;
/// Gas of [`Signer::call`]: enough for a counter increment many times over.
pub const CALL_GAS: u64 = 1_000_000;

/// A key with its next nonce on one chain.
#[derive(Debug)]
pub struct Signer {
    pub key: Keypair,
    /// The nonce the next counted transaction gets.
    pub nonce: u64,
    pub chain_id: String,
}

impl Signer {
    /// The key made from `[seed; 32]`, nonce 0, on [`CHAIN`].
    pub fn new(seed: u8) -> Self {
        Signer {
            key: Keypair::from_seed([seed; 32]),
            nonce: 0,
            chain_id: CHAIN.into(),
        }
    }

    /// The same signer on another chain.
    pub fn on_chain(mut self, chain_id: impl Into<String>) -> Self {
        self.chain_id = chain_id.into();
        self
    }

    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// The unsigned transaction at an explicit nonce, priority 0 and no expiry (set fields on it
    /// for other cases, then [`Signer::sign_tx`]). The counter is not touched.
    pub fn body(&self, nonce: u64, action: Action, gas_limit: u64) -> Tx {
        body(&self.chain_id, self.key.public(), nonce, action, gas_limit)
    }

    /// Signs `tx` with this key, whatever its fields say.
    pub fn sign_tx(&self, tx: Tx) -> SignedTx {
        self.key.sign(tx)
    }

    /// Signs `action` at an explicit nonce and priority. The counter is not touched.
    pub fn sign_at(&self, nonce: u64, priority: u64, action: Action, gas_limit: u64) -> SignedTx {
        let mut tx = self.body(nonce, action, gas_limit);
        tx.priority = priority;
        self.key.sign(tx)
    }

    /// Signs `action` at the next nonce.
    pub fn sign(&mut self, action: Action, gas_limit: u64) -> SignedTx {
        let tx = self.body(self.nonce, action, gas_limit);
        self.nonce += 1;
        self.key.sign(tx)
    }

    /// [`Signer::sign`], verified.
    pub fn verified(&mut self, action: Action, gas_limit: u64) -> VerifiedTx {
        verified(self.sign(action, gas_limit))
    }

    /// A deploy of `code` at the next nonce with [`DEPLOY_GAS`], and the contract's address.
    pub fn deploy(&mut self, code: Vec<u8>) -> (SignedTx, Address) {
        let t = self.sign(Action::Deploy { code: Bytes(code) }, DEPLOY_GAS);
        let addr = t.tx.target();
        (t, addr)
    }

    /// A call at the next nonce with [`CALL_GAS`].
    pub fn call(&mut self, contract: Address, entry: &str, args: &[u8]) -> SignedTx {
        self.sign(call(contract, entry, args), CALL_GAS)
    }
}

/// An unsigned transaction of `sender` on `chain_id`, priority 0 and no expiry.
pub fn body(chain_id: &str, sender: PublicKey, nonce: u64, action: Action, gas_limit: u64) -> Tx {
    Tx {
        chain_id: chain_id.into(),
        sender,
        nonce,
        gas_limit,
        priority: 0,
        expiry: None,
        action,
    }
}

/// A call action.
pub fn call(contract: Address, entry: &str, args: &[u8]) -> Action {
    Action::Call {
        contract,
        entry: entry.into(),
        args: Bytes(args.to_vec()),
    }
}

/// A deploy action.
pub fn deploy(code: Vec<u8>) -> Action {
    Action::Deploy { code: Bytes(code) }
}

/// Verifies a test transaction; panics (a bug in the test) if it does not verify.
pub fn verified(tx: SignedTx) -> VerifiedTx {
    tx.verify()
        .unwrap_or_else(|e| panic!("a test transaction does not verify: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nonces_and_signs_what_it_says() {
        let mut s = Signer::new(3);
        let (d, addr) = s.deploy(vec![0, 97, 115, 109, 1, 0, 0, 0]);
        assert_eq!(
            (d.tx.nonce, d.tx.gas_limit, d.tx.target()),
            (0, DEPLOY_GAS, addr)
        );
        let c = s.call(addr, "increment", &[1]);
        assert_eq!((c.tx.nonce, c.tx.gas_limit), (1, CALL_GAS));
        assert_eq!(c.tx.action, call(addr, "increment", &[1]));
        let at = s.sign_at(9, 4, call(addr, "x", &[]), 7);
        assert_eq!((at.tx.nonce, at.tx.priority, s.nonce), (9, 4, 2));
        let v = s
            .on_chain("other")
            .verified(deploy(vec![0, 97, 115, 109, 1, 0, 0, 0]), 5);
        assert_eq!(v.tx().chain_id, "other");
        assert_eq!(v.tx().sender, Keypair::from_seed([3; 32]).public());
    }
}
