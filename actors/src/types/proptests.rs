//! Property tests: every chain type survives encode/decode (binary and JSON) unchanged, and
//! arbitrary or mutated bytes from outside decode to a typed error, never a panic.

use proptest::prelude::*;

use super::*;

fn arb_hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes)
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        arb_bytes(300).prop_map(|code| Action::Deploy { code }),
        (any::<[u8; 32]>(), "[a-z_]{1,20}", arb_bytes(100)).prop_map(|(c, entry, args)| {
            Action::Call {
                contract: Address(c),
                entry,
                args,
            }
        }),
    ]
}

prop_compose! {
    fn arb_signed_tx()(
        chain_id in "[a-z0-9-]{0,20}",
        seed in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        gas_limit in any::<u64>(),
        priority in any::<u64>(),
        expiry in proptest::option::of(any::<u64>()),
        action in arb_action(),
    ) -> SignedTx {
        let kp = Keypair::from_seed(seed);
        kp.sign(Tx { chain_id, sender: kp.public(), nonce, gas_limit, priority, expiry, action })
    }
}

fn arb_status() -> impl Strategy<Value = ReceiptStatus> {
    prop_oneof![
        Just(ReceiptStatus::Success),
        ".{0,40}".prop_map(|message| ReceiptStatus::Reverted { message }),
        Just(ReceiptStatus::OutOfGas),
        "[a-z ]{0,20}".prop_map(|kind| ReceiptStatus::Trapped { kind }),
    ]
}

prop_compose! {
    fn arb_receipt()(
        tx_id in arb_hash(),
        contract in any::<[u8; 32]>(),
        status in arb_status(),
        gas_used in any::<u64>(),
        output in arb_bytes(64),
        events in proptest::collection::vec((arb_bytes(16), arb_bytes(32)), 0..4),
        logs in proptest::collection::vec(".{0,30}", 0..3),
    ) -> Receipt {
        Receipt {
            tx_id,
            contract: Address(contract),
            status,
            gas_used,
            output,
            events: events
                .into_iter()
                .map(|(topic, data)| Event { contract: Address(contract), topic, data })
                .collect(),
            logs,
        }
    }
}

proptest! {
    #[test]
    fn signed_tx_round_trips(stx in arb_signed_tx()) {
        let bytes = stx.encode();
        prop_assert_eq!(SignedTx::decode(&bytes), Ok(stx.clone()));
        let json = serde_json::to_string(&stx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: SignedTx = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &stx);
        prop_assert_eq!(back.tx.id(), stx.tx.id());
    }

    #[test]
    fn receipt_round_trips(r in arb_receipt()) {
        prop_assert_eq!(decode_canonical::<Receipt>(&encode(&r), usize::MAX), Ok(r.clone()));
        let json = serde_json::to_string(&r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Receipt = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, r);
    }

    #[test]
    fn block_round_trips(txs in proptest::collection::vec(arb_signed_tx(), 0..4), h in any::<u64>(), t in any::<u64>()) {
        let kp = Keypair::from_seed([1; 32]);
        let header = BlockHeader {
            height: h,
            parent_hash: Hash([2; 32]),
            timestamp_ms: t,
            tx_root: tx_root(&txs),
            receipts_root: merkle_root(&[]),
            state_root: Hash([3; 32]),
            sequencer: PublicKey::ZERO,
        };
        let block = Block::seal(header, txs, &kp);
        prop_assert_eq!(Block::decode(&block.encode()), Ok(block.clone()));
        prop_assert_eq!(block.verify(), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedTx::decode(&bytes);
        let _ = Block::decode(&bytes);
        let _ = decode_canonical::<Receipt>(&bytes, usize::MAX);
        let _ = decode_canonical::<WriteSet>(&bytes, usize::MAX);
        let _ = serde_json::from_slice::<SignedTx>(&bytes);
    }

    #[test]
    fn mutated_tx_is_refused_or_changes_identity(stx in arb_signed_tx(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = stx.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A flipped bit either fails to decode or decodes to a different transaction, which
        // then fails signature verification unless only the signature bytes changed validity.
        if let Ok(decoded) = SignedTx::decode(&bytes) {
            prop_assert_ne!(&decoded, &stx);
            if decoded.tx.check_shape().is_ok() && stx.tx.check_shape().is_ok() {
                prop_assert!(decoded.verify().is_err());
            }
        }
    }

    /// `hash_of` and the canonical check stream the encoding (no buffer): they must give
    /// exactly what hashing and comparing `encode`'s bytes gives, for every chain type, with
    /// values from a few bytes to past the hasher's buffer, and for bytes that differ in one
    /// place, are cut short or run on.
    #[test]
    fn streamed_encoding_hashes_and_compares_as_the_bytes_do(
        stx in arb_signed_tx(),
        r in arb_receipt(),
        storage in proptest::collection::btree_map((arb_hash(), arb_bytes(80)), proptest::option::of(arb_bytes(300)), 0..6),
        nonces in proptest::collection::btree_map(any::<[u8; 32]>(), any::<u64>(), 0..6),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let writes = WriteSet {
            storage: storage.into_iter().map(|((a, k), v)| ((Address(a.0), k), v)).collect(),
            nonces: nonces.into_iter().map(|(k, n)| (PublicKey(k), n)).collect(),
            ..WriteSet::default()
        };
        prop_assert_eq!(hash_of(&stx), sha256(&encode(&stx)));
        prop_assert_eq!(hash_of(&stx.tx), sha256(&encode(&stx.tx)));
        prop_assert_eq!(hash_of(&r), sha256(&encode(&r)));
        prop_assert_eq!(hash_of(&writes), sha256(&encode(&writes)));
        let bytes = encode(&stx);
        prop_assert_eq!(SignedTx::decode(&bytes), Ok(stx.clone()));
        let mut flipped = bytes.clone();
        let i = pos.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let mut longer = bytes.clone();
        longer.push(0);
        for other in [flipped, longer, bytes[..i].to_vec()] {
            if let Ok(decoded) = SignedTx::decode(&other) {
                prop_assert_eq!(encode(&decoded), other);
            }
        }
        let wbytes = encode(&writes);
        prop_assert_eq!(decode_canonical::<WriteSet>(&wbytes, usize::MAX), Ok(writes));
    }
}
