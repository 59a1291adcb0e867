//! The L0 document's test vectors (§3.7) byte for byte, envelope checks with their typed errors,
//! property tests (decode ∘ encode = id, check ∘ sign = ok, any flipped byte is caught), and the
//! anchor format including its worked example, recomputed from the spec with plain SHA-256.

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::anchor::{ANCHOR_MAGIC, Anchor, AnchorError};
use super::codec::*;
use super::encoding::{AccUrl, DecodeError};
use super::json::*;
use crate::types::{BlockHeader, Hash, Keypair, PublicKey, merkle_root};

fn url(s: &str) -> AccUrl {
    AccUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(&s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn h(s: &str) -> Hash {
    Hash::from_slice(&unhex(s)).unwrap_or_else(|e| panic!("{e}"))
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn sha2(a: &[u8], b: &[u8]) -> [u8; 32] {
    let mut x = Sha256::new();
    x.update(a);
    x.update(b);
    x.finalize().into()
}

/// One of the document's vectors: inputs and every published intermediate.
struct Vector {
    seed: u8,
    timestamp: u64,
    memo: &'static str,
    metadata: &'static str,
    parts: &'static [&'static str],
    public_key: &'static str,
    sig_metadata: &'static str,
    initiator: &'static str,
    header: &'static str,
    header_hash: &'static str,
    body: &'static str,
    entry_hash: &'static str,
    body_hash: &'static str,
    tx_hash: &'static str,
    signing_digest: &'static str,
    signature: &'static str,
    sig_message_hash: &'static str,
    tx_len: usize,
    sig_len: usize,
}

const VECTOR_A: Vector = Vector {
    seed: 1,
    timestamp: 1_700_000_000_000_000,
    memo: "",
    metadata: "",
    parts: &["68656c6c6f"],
    public_key: "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    sig_metadata: "010202208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c
                   04196163633a2f2f616363756d656e2e61636d652f626f6f6b2f310501068080f9c0c1c48203",
    initiator: "fa939f2d446ae4dff9a9aa361223687ca86c3f206b806a4cd2354221d15ecbcd",
    header: "011a6163633a2f2f616363756d656e2e61636d652f616e63686f727302
             fa939f2d446ae4dff9a9aa361223687ca86c3f206b806a4cd2354221d15ecbcd",
    header_hash: "c8737687ac31fa33e2cb55f1aa5a61f1ca19148b783354d199260dc47128201c",
    body: "010502090103020568656c6c6f",
    entry_hash: "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50",
    body_hash: "6ae57c708ad5d5db29fa144f3de1d71682ccc1083624f0f7f2293474914a8dcb",
    tx_hash: "e0456e0eef2c64e6662164853794e02963f240cbcbee466af3c6ab37e078b749",
    signing_digest: "4c21d719d9ae8cfcefc52e10e94db01cce5e87ad4aea0fe20fe346a91712daf8",
    signature: "06aa558bdbb180ad93626439e5e63f9af2223cf5412b2fc39373fe7fd175a496
                82180b0d476a2a606f34debb1c075f80759ca49e87545943e10de2173b794a0c",
    sig_message_hash: "43a96b020fa129e1afb1c5262c41fc7608ffc1ea1d52495d170e4b5387ba271c",
    tx_len: 78,
    sig_len: 173,
};

const VECTOR_B: Vector = Vector {
    seed: 2,
    timestamp: 1_735_689_600_000,
    memo: "accumen anchor 42",
    metadata: "7b22686569676874223a34327d",
    parts: &[
        "f13c15be4a69cd402099909f64427b8578ef9092962b61c064d210c80975979a",
        "616363756d656e2f7631",
    ],
    public_key: "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    sig_metadata: "010202208139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394
                   04196163633a2f2f616363756d656e2e61636d652f626f6f6b2f3105010680f8a5f9c132",
    initiator: "b461ec19568e8e0c33b37d3c103167ba1c684b6b76f591e22a3d10ebafea9144",
    header: "011a6163633a2f2f616363756d656e2e61636d652f616e63686f727302
             b461ec19568e8e0c33b37d3c103167ba1c684b6b76f591e22a3d10ebafea9144
             0311616363756d656e20616e63686f72203432040d7b22686569676874223a34327d",
    header_hash: "fa85f0947c287aad7698651bb252ee09a47a301e94dceeb8a23955a69e3b844b",
    body: "0105023001030220f13c15be4a69cd402099909f64427b8578ef9092962b61c064d210c8
           0975979a020a616363756d656e2f7631",
    entry_hash: "4b93cf4832c4ed122e47b6557882a1decf86b24bb3a409f9c810f05d83a2f510",
    body_hash: "7c8d3e8dd30c7c67010fbced8df9650a372e18eb8ddeeb0de7e7ebb35aea04ad",
    tx_hash: "06c85d5d27c599671154ee89bc0a9179e5f2712811a2f83b5013a5dce2f177a9",
    signing_digest: "6ffc55a06d611dd86fbf7319a259ea0b67474c40005721152074d1ce3e52d70c",
    signature: "37812826811088a25afe19e92c71cd80103861a209171848d263508fe5ded178
                1a01880f0c233dfd56c22ca80c7a668484cbb44f3beef30599c66c00f4cff70c",
    sig_message_hash: "db277199846759255421e1fa8827e195cdbeaa764ee7a3870866f08fa77d1bfd",
    tx_len: 151,
    sig_len: 171,
};

fn request(v: &Vector) -> WriteDataRequest {
    WriteDataRequest {
        principal: url("acc://accumen.acme/anchors"),
        signer: url("acc://accumen.acme/book/1"),
        signer_version: 1,
        timestamp: v.timestamp,
        memo: v.memo.to_string(),
        metadata: unhex(v.metadata),
        parts: v.parts.iter().map(|p| unhex(p)).collect(),
    }
}

fn sign_vector(v: &Vector) -> SignedWriteData {
    let key = L0Key::from_seed([v.seed; 32]);
    sign_write_data(&key, &request(v)).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_vector(v: &Vector) {
    let s = sign_vector(v);
    let (tx, sig) = (&s.transaction, &s.signature);
    assert_eq!(sig.public_key.to_hex(), v.public_key);
    assert_eq!(sig.metadata(), unhex(v.sig_metadata), "signature metadata");
    assert_eq!(sig.initiator(), h(v.initiator), "initiator");
    assert_eq!(tx.header.initiator, h(v.initiator));
    assert_eq!(tx.header.encode(), unhex(v.header), "header");
    assert_eq!(tx.header.hash(), h(v.header_hash), "header hash");
    assert_eq!(tx.body.encode(), unhex(v.body), "body");
    assert_eq!(tx.body.entry.hash(), h(v.entry_hash), "entry hash");
    assert_eq!(tx.body.hash(), h(v.body_hash), "body hash");
    assert_eq!(tx.hash(), h(v.tx_hash), "transaction hash");
    assert_eq!(sig.signing_digest(&tx.hash()), h(v.signing_digest));
    assert_eq!(sig.signature.0.to_vec(), unhex(v.signature), "signature");
    assert_eq!(sig.message_hash(), h(v.sig_message_hash), "signature id");
    assert_eq!(tx.encode().len(), v.tx_len);
    assert_eq!(sig.encode().len(), v.sig_len);
    let checked = s.check().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.entry_hash, h(v.entry_hash));
    assert_eq!(checked.tx_id.hash, h(v.tx_hash));
    assert_eq!(checked.signature_id.hash, h(v.sig_message_hash));
    assert_eq!(checked.key_hash, Hash(sha(&unhex(v.public_key))));
    // §5: both vectors cost 10 units.
    assert_eq!(checked.fee_units, 10);
    // Decoding the published bytes gives back the same values and bytes.
    assert_eq!(
        TransactionHeader::decode(&unhex(v.header)),
        Ok(tx.header.clone())
    );
    assert_eq!(WriteData::decode(&unhex(v.body)), Ok(tx.body.clone()));
    assert_eq!(Transaction::decode(&tx.encode()), Ok(tx.clone()));
    assert_eq!(Ed25519Signature::decode(&sig.encode()), Ok(sig.clone()));
}

#[test]
fn vector_a_matches_byte_for_byte() {
    assert_vector(&VECTOR_A);
    let s = sign_vector(&VECTOR_A);
    assert_eq!(
        s.transaction.body.entry.encode(),
        unhex("0103020568656c6c6f")
    );
}

#[test]
fn vector_b_matches_byte_for_byte() {
    assert_vector(&VECTOR_B);
    let s = sign_vector(&VECTOR_B);
    assert_eq!(
        s.transaction.id().to_string(),
        "acc://06c85d5d27c599671154ee89bc0a9179e5f2712811a2f83b5013a5dce2f177a9@accumen.acme/anchors"
    );
    assert_eq!(
        s.signature.id().to_string(),
        "acc://db277199846759255421e1fa8827e195cdbeaa764ee7a3870866f08fa77d1bfd@accumen.acme/book/1"
    );
}

/// The request of §2.1, verbatim.
const SUBMIT_B: &str = r#"{
  "envelope": {
    "signatures": [
      {
        "type": "ed25519",
        "publicKey": "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        "signature": "37812826811088a25afe19e92c71cd80103861a209171848d263508fe5ded1781a01880f0c233dfd56c22ca80c7a668484cbb44f3beef30599c66c00f4cff70c",
        "signer": "acc://accumen.acme/book/1",
        "signerVersion": 1,
        "timestamp": 1735689600000,
        "transactionHash": "06c85d5d27c599671154ee89bc0a9179e5f2712811a2f83b5013a5dce2f177a9"
      }
    ],
    "transaction": [
      {
        "header": {
          "principal": "acc://accumen.acme/anchors",
          "initiator": "b461ec19568e8e0c33b37d3c103167ba1c684b6b76f591e22a3d10ebafea9144",
          "memo": "accumen anchor 42",
          "metadata": "7b22686569676874223a34327d"
        },
        "body": {
          "type": "writeData",
          "entry": {
            "type": "doubleHash",
            "data": [
              "f13c15be4a69cd402099909f64427b8578ef9092962b61c064d210c80975979a",
              "616363756d656e2f7631"
            ]
          }
        }
      }
    ]
  }
}"#;

fn json_value(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn vector_b_json_is_the_documents_submit_request() {
    let s = sign_vector(&VECTOR_B);
    let req = SubmitRequest {
        envelope: s.envelope(),
        verify: None,
        wait: None,
    };
    let ours = serde_json::to_value(&req).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours, json_value(SUBMIT_B));
    // And back: the stand-in's path, JSON → envelope → check.
    let parsed: SubmitRequest = serde_json::from_str(SUBMIT_B).unwrap_or_else(|e| panic!("{e}"));
    let back = SignedWriteData::from_envelope(&parsed.envelope).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, s);
    assert!(back.check().is_ok());
    // A single object instead of a list is accepted (Go `JsonList`), `type` in params ignored.
    let mut v = json_value(SUBMIT_B);
    v["type"] = "submitRequest".into();
    let env = &mut v["envelope"];
    env["signatures"] = env["signatures"][0].clone();
    env["transaction"] = env["transaction"][0].clone();
    let single: SubmitRequest = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(single.envelope, s.envelope());
}

#[test]
fn json_refuses_members_that_would_change_the_hash() {
    let mut v = json_value(SUBMIT_B);
    v["envelope"]["transaction"][0]["header"]["expire"] =
        json_value(r#"{"atTime":"2030-01-01T00:00:00Z"}"#);
    assert!(serde_json::from_value::<SubmitRequest>(v).is_err());
    let mut v = json_value(SUBMIT_B);
    v["envelope"]["transaction"][0]["body"]["type"] = "writeDataTo".into();
    assert!(serde_json::from_value::<SubmitRequest>(v).is_err());
    let mut v = json_value(SUBMIT_B);
    v["envelope"]["transaction"][0]["body"]["entry"]["type"] = "accumulate".into();
    assert!(serde_json::from_value::<SubmitRequest>(v).is_err());
    let mut v = json_value(SUBMIT_B);
    v["envelope"]["signatures"][0]["signer"] = "acc://accumen.acme/book 1".into();
    assert!(serde_json::from_value::<SubmitRequest>(v).is_err());
}

#[test]
fn submit_results_parse_as_the_document_shows() {
    let failure = r#"[
    {
      "status": { "txID": "acc://06c85d5d27c599671154ee89bc0a9179e5f2712811a2f83b5013a5dce2f177a9@accumen.acme/anchors", "code": "ok", "codeNum": 200 },
      "message": "envelope(1/insufficientCredits) insufficient credits: have 0.00, want 0.01;"
    },
    {
      "status": {
        "txID": "acc://db277199846759255421e1fa8827e195cdbeaa764ee7a3870866f08fa77d1bfd@accumen.acme/book/1",
        "code": "insufficientCredits", "delivered": true, "failed": true, "codeNum": 402,
        "error": { "message": "insufficient credits: have 0.00, want 0.01", "code": "insufficientCredits", "codeID": 402 }
      },
      "message": "envelope(1/insufficientCredits) insufficient credits: have 0.00, want 0.01;"
    }]"#;
    let subs: Vec<Submission> = serde_json::from_str(failure).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !subs[0].success && !subs[1].success,
        "a missing success is false"
    );
    assert_eq!(subs[1].status.code, Some(Status::InsufficientCredits));
    assert_eq!(subs[1].status.code_num, Some(402));
    let err = subs[1].status.error.as_ref().map(|e| e.code.clone());
    assert_eq!(err, Some(Some(Status::InsufficientCredits)));
    // Round trip keeps the omitted members omitted.
    let again = serde_json::to_value(&subs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, json_value(failure));
}

#[test]
fn statuses_map_to_json_rpc_codes() {
    assert_eq!(Status::NotFound.json_rpc_code(), Some(-33_404));
    assert_eq!(
        Status::from_json_rpc_code(-33_400),
        Some(Status::BadRequest)
    );
    assert_eq!(Status::from_json_rpc_code(-32_601), None);
    assert_eq!(Status::from_name("notReady"), Status::NotReady);
    assert_eq!(
        Status::from_name("somethingNew"),
        Status::Other("somethingNew".into())
    );
    assert!(Status::Delivered.is_success() && !Status::BadTimestamp.is_success());
}

#[test]
fn merkle_vector_matches() {
    let mut parts: Vec<Vec<u8>> = vec![b"test data entry".to_vec()];
    parts.extend((0..10).map(|i| format!("extid {i}").into_bytes()));
    let leaves: Vec<Hash> = parts.iter().map(|p| Hash(sha(p))).collect();
    assert_eq!(
        accumulate_merkle_root(&leaves),
        h("29f613df53d1e38dcfea87b2582985cae5265699ef8fc5c500b0bee8f32974ed")
    );
    assert_eq!(
        DoubleHashEntry::new(parts).hash(),
        h("3e9846e75a51e55f230fc77641f013923719386fc395d8ac28927f530edbbe6d")
    );
}

#[test]
fn accumulate_merkle_shapes() {
    let l = |b: u8| Hash([b; 32]);
    let n = |a: Hash, b: Hash| Hash(sha2(&a.0, &b.0));
    assert_eq!(accumulate_merkle_root(&[]), Hash::ZERO);
    assert_eq!(accumulate_merkle_root(&[l(1)]), l(1));
    assert_eq!(accumulate_merkle_root(&[l(1), l(2)]), n(l(1), l(2)));
    assert_eq!(
        accumulate_merkle_root(&[l(1), l(2), l(3)]),
        n(n(l(1), l(2)), l(3))
    );
    // Seven leaves, as the anchor docs spell out.
    let ls: Vec<Hash> = (0..7).map(l).collect();
    let want = n(
        n(n(ls[0], ls[1]), n(ls[2], ls[3])),
        n(n(ls[4], ls[5]), ls[6]),
    );
    assert_eq!(accumulate_merkle_root(&ls), want);
}

#[test]
fn check_names_each_failure() {
    let good = sign_vector(&VECTOR_B);
    let tx_hash = good.transaction.hash();

    let mut s = good.clone();
    s.signature.signature.0[0] ^= 1;
    assert_eq!(s.check(), Err(CheckError::InvalidSignature));
    assert_eq!(
        CheckError::InvalidSignature.status(),
        Status::Unauthenticated
    );

    let mut s = good.clone();
    s.transaction.header.memo.push('!');
    assert!(
        matches!(s.check(), Err(CheckError::TransactionHash { signature, .. }) if signature == tx_hash)
    );

    // Signed correctly, but its metadata is not the header's initiator: a secondary signature.
    let key = L0Key::from_seed([2; 32]);
    let mut s = good.clone();
    s.signature.memo = "second".into();
    let digest = s.signature.signing_digest(&tx_hash);
    let sk = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    s.signature.signature =
        crate::types::Signature(ed25519_dalek::Signer::sign(&sk, &digest.0).to_bytes());
    assert!(
        matches!(s.check(), Err(CheckError::Initiator { header, .. }) if header == good.transaction.header.initiator)
    );
    // Changing the metadata without re-signing breaks the signature first (the node's order).
    let mut s = good.clone();
    s.signature.timestamp += 1;
    assert_eq!(s.check(), Err(CheckError::InvalidSignature));

    let mut s = good.clone();
    s.transaction.header.initiator = Hash::ZERO;
    s.signature.transaction_hash = s.transaction.hash();
    assert_eq!(s.check(), Err(CheckError::NoInitiator));

    let mut req = request(&VECTOR_B);
    req.timestamp = 0;
    assert_eq!(sign_write_data(&key, &req), Err(CheckError::ZeroTimestamp));
    assert_eq!(CheckError::ZeroTimestamp.status(), Status::BadTimestamp);

    let mut req = request(&VECTOR_B);
    req.parts = vec![vec![0]; MAX_DATA_ENTRY_PARTS + 1];
    assert_eq!(
        sign_write_data(&key, &req),
        Err(CheckError::TooManyParts {
            got: MAX_DATA_ENTRY_PARTS + 1
        })
    );
    let mut req = request(&VECTOR_B);
    req.parts = vec![vec![0; MAX_TRANSACTION_BYTES]];
    assert!(matches!(
        sign_write_data(&key, &req),
        Err(CheckError::TooLarge {
            what: "data entry",
            ..
        })
    ));

    // A key that signed for another key's public key.
    let mut s = good.clone();
    s.signature.public_key = L0Key::from_seed([3; 32]).public();
    s.transaction.header.initiator = s.signature.initiator();
    s.signature.transaction_hash = s.transaction.hash();
    assert_eq!(s.check(), Err(CheckError::InvalidSignature));
    // Not a curve point at all.
    s.signature.public_key = PublicKey([0xff; 32]);
    s.transaction.header.initiator = s.signature.initiator();
    s.signature.transaction_hash = s.transaction.hash();
    assert_eq!(s.check(), Err(CheckError::InvalidSignature));

    // Envelope shape.
    let mut env = good.envelope();
    env.tx_hash = Some(Hash([9; 32]));
    assert!(matches!(
        SignedWriteData::from_envelope(&env),
        Err(CheckError::EnvelopeTxHash { computed, .. }) if computed == tx_hash
    ));
    let empty = Envelope {
        signatures: vec![],
        transaction: vec![],
        tx_hash: None,
    };
    assert_eq!(
        SignedWriteData::from_envelope(&empty),
        Err(CheckError::NoTransaction)
    );
    let mut env = good.envelope();
    env.signatures.clear();
    assert_eq!(
        SignedWriteData::from_envelope(&env),
        Err(CheckError::NoSignature)
    );
    env.signatures = vec![good.signature.clone(); 2];
    assert_eq!(
        SignedWriteData::from_envelope(&env),
        Err(CheckError::TooManySignatures(2))
    );
}

#[test]
fn deprecated_merkle_initiator_is_accepted_by_check() {
    let key = L0Key::from_seed([2; 32]);
    let mut s = sign_write_data(&key, &request(&VECTOR_B)).unwrap_or_else(|e| panic!("{e}"));
    s.transaction.header.initiator = s.signature.merkle_initiator();
    let tx_hash = s.transaction.hash();
    s.signature.transaction_hash = tx_hash;
    // The message signed is still SHA256(SHA256(metadata) || txHash) (§3.3 rule 7).
    let digest = s.signature.signing_digest(&tx_hash);
    let sk = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    s.signature.signature =
        crate::types::Signature(ed25519_dalek::Signer::sign(&sk, &digest.0).to_bytes());
    assert!(s.check().is_ok());
}

#[test]
fn key_from_project_keypair_is_the_same_key() {
    let kp = Keypair::from_seed([2; 32]);
    let key = L0Key::from_keypair(&kp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(key.public(), kp.public());
    assert_eq!(key.public().to_hex(), VECTOR_B.public_key);
}

#[test]
fn decode_refuses_non_canonical_and_unsupported() {
    let body = unhex(VECTOR_A.body);
    // Explicit zero `scratch` is not canonical.
    let mut b = body.clone();
    b.extend_from_slice(&[0x03, 0x00]);
    assert_eq!(
        WriteData::decode(&b),
        Err(DecodeError::NonCanonical {
            object: "writeData body"
        })
    );
    // Another body type.
    let mut b = body.clone();
    b[1] = 0x06;
    assert!(matches!(
        WriteData::decode(&b),
        Err(DecodeError::UnsupportedType { got: 6, .. })
    ));
    // The old `accumulate` entry type.
    assert!(matches!(
        DoubleHashEntry::decode(&unhex("0102020568656c6c6f")),
        Err(DecodeError::UnsupportedType { got: 2, .. })
    ));
    // Header field 5 (`expire`) is outside the subset.
    let mut hd = unhex(VECTOR_A.header);
    hd.extend_from_slice(&[0x05, 0x02, 0x01, 0x01]);
    assert!(matches!(
        TransactionHeader::decode(&hd),
        Err(DecodeError::UnsupportedField { field: 5, .. })
    ));
    // A URL that is not canonical (trailing slash) decodes but does not re-encode the same.
    let mut w = super::encoding::Writer::new();
    w.string(1, "acc://accumen.acme/anchors/");
    assert!(matches!(
        TransactionHeader::decode(&w.finish()),
        Err(DecodeError::NonCanonical { .. })
    ));
    // Missing principal.
    assert!(matches!(
        TransactionHeader::decode(&[0x80]),
        Err(DecodeError::MissingField { field: 1, .. })
    ));
    // A public key of the wrong length.
    let sig = sign_vector(&VECTOR_A).signature.encode();
    let mut bad = sig.clone();
    bad[3] = 0x1f;
    assert!(Ed25519Signature::decode(&bad).is_err());
    // Truncated anywhere: inside a value it is an error; on a field boundary it is a shorter,
    // different signature (which `check` then refuses), never the original.
    let original = sign_vector(&VECTOR_A).signature;
    for cut in 0..sig.len() {
        if let Ok(v) = Ed25519Signature::decode(&sig[..cut]) {
            assert!(v != original && v.encode() == sig[..cut], "cut at {cut}");
        }
    }
    // Inside the 64-byte signature value.
    assert!(matches!(
        Ed25519Signature::decode(&sig[..80]),
        Err(DecodeError::Truncated { .. })
    ));
}

fn arb_url() -> impl Strategy<Value = AccUrl> {
    (
        "[a-z0-9]{1,12}\\.acme",
        prop::collection::vec("[a-zA-Z0-9_.-]{1,8}", 0..3),
    )
        .prop_map(|(authority, path)| {
            let mut s = format!("acc://{authority}");
            for seg in path {
                s.push('/');
                s.push_str(&seg);
            }
            url(&s)
        })
}

fn arb_request() -> impl Strategy<Value = WriteDataRequest> {
    (
        arb_url(),
        arb_url(),
        1u64..u64::MAX,
        1u64..u64::MAX,
        "[ -~]{0,40}",
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..8),
    )
        .prop_map(
            |(principal, signer, signer_version, timestamp, memo, metadata, parts)| {
                WriteDataRequest {
                    principal,
                    signer,
                    signer_version,
                    timestamp,
                    memo,
                    metadata,
                    parts,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encode_decode_same_bytes(req in arb_request(), seed in any::<[u8; 32]>()) {
        let s = sign_write_data(&L0Key::from_seed(seed), &req)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tx = s.transaction.encode();
        let back = Transaction::decode(&tx).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.encode(), tx);
        prop_assert_eq!(&back, &s.transaction);
        let sig = s.signature.encode();
        let back = Ed25519Signature::decode(&sig).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.encode(), sig);
        // JSON round trip too.
        let json = serde_json::to_string(&s.envelope()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let env: Envelope = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(SignedWriteData::from_envelope(&env), Ok(s.clone()));
        prop_assert!(s.check().is_ok());
    }

    /// Any single flipped bit of the encoded transaction or signature either fails to decode or
    /// decodes to an envelope the check refuses with the error for what changed.
    #[test]
    fn flipped_byte_is_caught(req in arb_request(), seed in any::<[u8; 32]>(), which in any::<bool>(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let s = sign_write_data(&L0Key::from_seed(seed), &req)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut bytes = if which { s.transaction.encode() } else { s.signature.encode() };
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let tampered = if which {
            Transaction::decode(&bytes).map(|transaction| SignedWriteData { transaction, signature: s.signature.clone() })
        } else {
            Ed25519Signature::decode(&bytes).map(|signature| SignedWriteData { transaction: s.transaction.clone(), signature })
        };
        if let Ok(t) = tampered {
            let err = t.check().err();
            prop_assert!(err.is_some(), "flip at {} accepted", i);
            // A changed transaction no longer has the hash the signature names; a changed
            // signature no longer verifies, or names another transaction.
            let ok_kind = match err {
                Some(CheckError::TransactionHash { .. }) => true,
                Some(CheckError::InvalidSignature) => !which,
                _ => false,
            };
            prop_assert!(ok_kind, "flip at {} gave {:?}", i, err);
        }
    }
}

// ---- anchor ----

fn chain(n: u64) -> Vec<BlockHeader> {
    let mut headers = Vec::new();
    let mut parent = Hash([0xab; 32]);
    for height in 1..=n {
        let hd = BlockHeader {
            height,
            parent_hash: parent,
            timestamp_ms: 1_700_000_000_000 + height,
            tx_root: merkle_root(&[]),
            receipts_root: merkle_root(&[]),
            state_root: Hash([height as u8; 32]),
            sequencer: PublicKey([7; 32]),
        };
        parent = hd.hash();
        headers.push(hd);
    }
    headers
}

#[test]
fn anchor_from_headers_and_back() {
    let hs = chain(5);
    let a = Anchor::from_headers("accumen-test", &hs[1..4]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((a.first_height, a.last_height), (2, 4));
    assert_eq!(a.last_block_hash, hs[3].hash());
    let hashes: Vec<Hash> = hs[1..4].iter().map(BlockHeader::hash).collect();
    assert_eq!(a.blocks_root, merkle_root(&hashes));
    assert_eq!(a.state_root, hs[3].state_root);
    let parts = a.parts();
    assert_eq!(parts.len(), 7);
    assert_eq!(parts[0], ANCHOR_MAGIC);
    assert_eq!(parts[2], 2u64.to_be_bytes());
    assert_eq!(Anchor::parse(&parts), Ok(a.clone()));
    assert_eq!(
        Anchor::verify_entry(&parts, "accumen-test", &hs[1..4]),
        Ok(a.clone())
    );
    assert_eq!(a.entry_hash(), a.entry().hash());
    // One block is a valid batch.
    let one = Anchor::from_headers("accumen-test", &hs[..1]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one.blocks_root, merkle_root(&[hs[0].hash()]));
}

#[test]
fn anchor_builder_refuses_bad_runs() {
    let hs = chain(4);
    let id = "accumen-test";
    assert_eq!(Anchor::from_headers(id, &[]), Err(AnchorError::Empty));
    assert_eq!(Anchor::from_headers("", &hs), Err(AnchorError::BadChainId));
    assert_eq!(
        Anchor::from_headers(&"x".repeat(65), &hs),
        Err(AnchorError::BadChainId)
    );
    let gap = vec![hs[0].clone(), hs[2].clone()];
    assert_eq!(
        Anchor::from_headers(id, &gap),
        Err(AnchorError::Gap {
            previous: 1,
            next: 3
        })
    );
    let back = vec![hs[1].clone(), hs[0].clone()];
    assert_eq!(
        Anchor::from_headers(id, &back),
        Err(AnchorError::WrongOrder {
            previous: 2,
            next: 1
        })
    );
    let dup = vec![hs[1].clone(), hs[1].clone()];
    assert_eq!(
        Anchor::from_headers(id, &dup),
        Err(AnchorError::WrongOrder {
            previous: 2,
            next: 2
        })
    );
    let mut broken = hs.clone();
    broken[2].parent_hash = Hash([1; 32]);
    assert!(matches!(
        Anchor::from_headers(id, &broken),
        Err(AnchorError::BrokenLink { height: 3, expected, .. }) if expected == hs[1].hash()
    ));
    let mut genesis = hs[0].clone();
    genesis.height = 0;
    assert_eq!(
        Anchor::from_headers(id, &[genesis]),
        Err(AnchorError::Genesis)
    );
}

#[test]
fn anchor_parse_and_check_refuse_mismatches() {
    let hs = chain(3);
    let id = "accumen-test";
    let a = Anchor::from_headers(id, &hs).unwrap_or_else(|e| panic!("{e}"));
    let parts = a.parts();
    assert_eq!(Anchor::parse(&parts[..6]), Err(AnchorError::PartCount(6)));
    let mut p = parts.clone();
    p[0] = b"accumen-anchor/2".to_vec();
    assert_eq!(Anchor::parse(&p), Err(AnchorError::Magic));
    let mut p = parts.clone();
    p[1] = vec![0xff, 0xfe];
    assert_eq!(Anchor::parse(&p), Err(AnchorError::ChainIdUtf8));
    let mut p = parts.clone();
    p[2] = vec![0; 7];
    assert_eq!(
        Anchor::parse(&p),
        Err(AnchorError::PartLength {
            part: 2,
            expected: 8,
            got: 7
        })
    );
    let mut p = parts.clone();
    p[5].push(0);
    assert_eq!(
        Anchor::parse(&p),
        Err(AnchorError::PartLength {
            part: 5,
            expected: 32,
            got: 33
        })
    );
    let mut p = parts.clone();
    p[2] = 9u64.to_be_bytes().to_vec();
    assert_eq!(
        Anchor::parse(&p),
        Err(AnchorError::HeightRange { first: 9, last: 3 })
    );
    let mut p = parts.clone();
    p[2] = 0u64.to_be_bytes().to_vec();
    assert_eq!(Anchor::parse(&p), Err(AnchorError::Genesis));

    // Against other blocks or another chain.
    assert!(matches!(
        a.check("other", &hs),
        Err(AnchorError::Mismatch {
            field: "chain id",
            ..
        })
    ));
    assert!(matches!(
        a.check(id, &hs[..2]),
        Err(AnchorError::Mismatch {
            field: "last height",
            ..
        })
    ));
    let mut other = hs.clone();
    other[2].state_root = Hash([0xee; 32]);
    assert!(matches!(
        a.check(id, &other),
        Err(AnchorError::Mismatch {
            field: "last block hash",
            ..
        })
    ));
    let mut wrong_root = a.clone();
    wrong_root.blocks_root = Hash([0; 32]);
    assert!(matches!(
        wrong_root.check(id, &hs),
        Err(AnchorError::Mismatch {
            field: "blocks root",
            ..
        })
    ));
    let mut wrong_state = a.clone();
    wrong_state.state_root = Hash([0; 32]);
    assert!(matches!(
        wrong_state.check(id, &hs),
        Err(AnchorError::Mismatch {
            field: "state root",
            ..
        })
    ));
}

/// The worked example of the `anchor` module docs, recomputed from the spec with plain SHA-256
/// (no crate function): the values printed in the docs must be these.
#[test]
fn worked_example() {
    let (h1, h2, state) = ([0x11u8; 32], [0x22u8; 32], [0x33u8; 32]);
    // Part 5, project Merkle rule: leaves 0x00||h, node 0x01||l||r.
    let leaf1 = sha2(&[0x00], &h1);
    let leaf2 = sha2(&[0x00], &h2);
    let mut node = vec![0x01];
    node.extend_from_slice(&leaf1);
    node.extend_from_slice(&leaf2);
    let blocks_root = sha(&node);
    assert_eq!(Hash(blocks_root), merkle_root(&[Hash(h1), Hash(h2)]));

    let parts: Vec<Vec<u8>> = vec![
        b"accumen-anchor/1".to_vec(),
        b"accumen-example".to_vec(),
        1u64.to_be_bytes().to_vec(),
        2u64.to_be_bytes().to_vec(),
        h2.to_vec(),
        blocks_root.to_vec(),
        state.to_vec(),
    ];
    let p: Vec<[u8; 32]> = parts.iter().map(|x| sha(x)).collect();
    let a = sha2(&p[0], &p[1]);
    let b = sha2(&p[2], &p[3]);
    let c = sha2(&a, &b);
    let d = sha2(&p[4], &p[5]);
    let e = sha2(&d, &p[6]);
    let r = sha2(&c, &e);
    let entry_hash = sha(&r);

    let anchor = Anchor {
        chain_id: "accumen-example".into(),
        first_height: 1,
        last_height: 2,
        last_block_hash: Hash(h2),
        blocks_root: Hash(blocks_root),
        state_root: Hash(state),
    };
    assert_eq!(anchor.parts(), parts);
    assert_eq!(anchor.entry_hash(), Hash(entry_hash));
    assert_eq!(Anchor::parse(&parts), Ok(anchor));

    // The values printed in the module docs.
    let printed = [
        (
            leaf1,
            "4635e1fa62a599a7880a8d14a56f720a1d40f6e5448ab5a5e39bedc8bd87fa8e",
        ),
        (
            leaf2,
            "bc6f27de60abf5319d16ff4c98fe3c42022c84f6a7a2b207c8df19b0ec3d8d58",
        ),
        (
            blocks_root,
            "cc15b132263fd4fd2748c0e7cb9e1c4ad0afe70fcf9382ee644c4da8af0286a5",
        ),
        (
            p[0],
            "a17043278a75f5d47a7ec8972de4aa94bd2557a58dd4427182978c151650854e",
        ),
        (
            p[1],
            "77fc4f3d9c432392cc24f2065c98dada41f33ac32503ba785ed4c18f140a521a",
        ),
        (
            p[2],
            "cd2662154e6d76b2b2b92e70c0cac3ccf534f9b74eb5b89819ec509083d00a50",
        ),
        (
            p[3],
            "cd04a4754498e06db5a13c5f371f1f04ff6d2470f24aa9bd886540e5dce77f70",
        ),
        (
            p[4],
            "9f72ea0cf49536e3c66c787f705186df9a4378083753ae9536d65b3ad7fcddc4",
        ),
        (
            p[5],
            "9398421eb11f97142b8405781f606c566a480e149ccff39a971fb8aa3a54f736",
        ),
        (
            p[6],
            "deb0e38ced1e41de6f92e70e80c418d2d356afaaa99e26f5939dbc7d3ef4772a",
        ),
        (
            entry_hash,
            "56c218c74abeffa93aebed32d0e3ebbb830480f358cea9d8950eb0ba22d75064",
        ),
    ];
    for (value, doc) in printed {
        assert_eq!(hex::encode(value), doc);
    }
    assert_eq!(hex::encode(&parts[0]), "616363756d656e2d616e63686f722f31");
    assert_eq!(hex::encode(&parts[1]), "616363756d656e2d6578616d706c65");
}

#[test]
fn non_accept_initial_vote_is_refused() {
    let good = sign_vector(&VECTOR_B);
    let sk = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let mut s = good.clone();
    s.signature.vote = Vote::Reject;
    s.transaction.header.initiator = s.signature.initiator();
    let tx_hash = s.transaction.hash();
    s.signature.transaction_hash = tx_hash;
    let digest = s.signature.signing_digest(&tx_hash);
    s.signature.signature =
        crate::types::Signature(ed25519_dalek::Signer::sign(&sk, &digest.0).to_bytes());
    assert_eq!(s.check(), Err(CheckError::Vote(Vote::Reject)));
    // The vote is field 7 and survives both encodings.
    assert_eq!(
        Ed25519Signature::decode(&s.signature.encode()),
        Ok(s.signature.clone())
    );
    let json = serde_json::to_value(&s.signature).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["vote"], "reject");
}

/// The query shapes of §2.2 with vector B's values (the document abbreviates some hashes; here
/// they are whole), and the key page's `publicKeyHash` is `SHA256(publicKey)` of vector B.
#[test]
fn query_records_parse_and_round_trip() {
    let s = sign_vector(&VECTOR_B);
    let record = serde_json::json!({
        "recordType": "message",
        "id": s.transaction.id().to_string(),
        "message": { "type": "transaction", "transaction": serde_json::to_value(&s.transaction).unwrap_or_default() },
        "status": "delivered",
        "statusNo": 201,
        "result": {
            "type": "writeData",
            "entryHash": "4b93cf4832c4ed122e47b6557882a1decf86b24bb3a409f9c810f05d83a2f510",
            "accountUrl": "acc://accumen.acme/anchors",
            "accountID": "241165b0b34fdb7f8790a3989d2d497ef740b667999a961451471c7acd51b73a"
        },
        "received": 1523301,
        "produced": { "recordType": "range", "start": 0, "total": 0 },
        "lastBlockTime": "2025-01-01T00:00:03Z",
        "someFutureField": true
    });
    let m: MessageRecord = serde_json::from_value(record.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.status, Some(Status::Delivered));
    assert_eq!(
        m.message,
        Some(Message::Transaction {
            transaction: s.transaction.clone()
        })
    );
    assert_eq!(
        m.result.as_ref().and_then(|r| r.entry_hash),
        Some(s.transaction.body.entry.hash())
    );
    let range = serde_json::json!({
        "recordType": "range",
        "records": [{
            "recordType": "chainEntry", "name": "data", "type": "transaction", "index": 0,
            "entry": "4b93cf4832c4ed122e47b6557882a1decf86b24bb3a409f9c810f05d83a2f510",
            "value": record
        }],
        "start": 0, "total": 1, "lastBlockTime": "2025-01-01T00:00:03Z"
    });
    let r: RecordRange<ChainEntryRecord> =
        serde_json::from_value(range).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.records.len(), 1);
    assert_eq!(
        r.records[0].value.as_ref().map(|v| v.id.clone()),
        Some(s.transaction.id())
    );

    let page = serde_json::json!({
        "recordType": "account",
        "account": {
            "type": "keyPage", "keyBook": "acc://accumen.acme/book", "url": "acc://accumen.acme/book/1",
            "creditBalance": 100000, "acceptThreshold": 1, "version": 1,
            "keys": [{ "publicKeyHash": "6a3803d5f059902a1c6dafbc9ba4729212f7caac08634cc3ae76b27529f03827", "lastUsedOn": 1735689599000u64 }]
        },
        "pending": { "recordType": "range", "start": 0, "total": 0 }
    });
    let a: AccountRecord = serde_json::from_value(page.clone()).unwrap_or_else(|e| panic!("{e}"));
    let Account::KeyPage { keys, version, .. } = &a.account else {
        panic!("not a key page: {a:?}");
    };
    assert_eq!(*version, 1);
    assert_eq!(keys[0].public_key_hash, s.signature.key_hash());
    assert_eq!(serde_json::to_value(&a).unwrap_or_default(), page);

    let status = serde_json::json!({
        "oracle": { "price": 5000 },
        "globals": { "limits": { "dataEntryParts": 100 } },
        "network": { "networkName": "MainNet", "version": 12, "partitions": [{ "id": "Directory", "type": "directory" }] },
        "executorVersion": "v2-vandenberg", "directoryHeight": 22334455, "majorBlockHeight": 1234
    });
    let n: NetworkStatus = serde_json::from_value(status.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.oracle.price, 5000);
    assert_eq!(serde_json::to_value(&n).unwrap_or_default(), status);

    // Requests: params are always an object; no `type`.
    let q = QueryRequest {
        scope: "acc://accumen.acme/anchors".into(),
        query: Some(Query::Data {
            index: None,
            entry: None,
            range: Some(RangeOptions {
                start: Some(0),
                count: Some(10),
                ..Default::default()
            }),
        }),
    };
    assert_eq!(
        serde_json::to_value(&q).unwrap_or_default(),
        serde_json::json!({"scope":"acc://accumen.acme/anchors","query":{"queryType":"data","range":{"start":0,"count":10}}})
    );
    assert_eq!(
        serde_json::to_value(NetworkStatusRequest::default()).unwrap_or_default(),
        serde_json::json!({})
    );
}

#[test]
fn params_are_always_an_object_and_element_errors_are_kept() {
    let empty = params(&NetworkStatusRequest::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(empty.is_empty());
    assert!(matches!(params(&1u8), Err(ParamsError::NotAnObject(_))));
    let s = sign_vector(&VECTOR_B);
    let p = params(&SubmitRequest {
        envelope: s.envelope(),
        verify: None,
        wait: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(serde_json::Value::Object(p), json_value(SUBMIT_B));
    // The envelope's list elements report their own error.
    let mut v = json_value(SUBMIT_B);
    v["envelope"]["transaction"][0]["header"]["expire"] =
        serde_json::json!({"atTime": "2030-01-01T00:00:00Z"});
    let err = serde_json::from_value::<SubmitRequest>(v)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("unknown field `expire`"), "{err}");
}

#[test]
fn anchors_follow_each_other_without_gap_or_overlap() {
    let hs = chain(6);
    let id = "accumen-test";
    let anchor = |r: std::ops::Range<usize>| {
        Anchor::from_headers(id, &hs[r]).unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b, c) = (anchor(0..2), anchor(2..5), anchor(5..6));
    assert_eq!(a.check_follows(None), Ok(()));
    assert_eq!(b.check_follows(Some(&a)), Ok(()));
    assert_eq!(c.check_follows(Some(&b)), Ok(()));
    assert_eq!(
        b.check_follows(None),
        Err(AnchorError::NotContiguous {
            expected: 1,
            got: 3
        })
    );
    // Gap (c after a) and overlap (b again after b).
    assert_eq!(
        c.check_follows(Some(&a)),
        Err(AnchorError::NotContiguous {
            expected: 3,
            got: 6
        })
    );
    assert_eq!(
        b.check_follows(Some(&b)),
        Err(AnchorError::NotContiguous {
            expected: 6,
            got: 3
        })
    );
    let mut other = b.clone();
    other.chain_id = "other".into();
    assert!(matches!(
        other.check_follows(Some(&a)),
        Err(AnchorError::Mismatch {
            field: "chain id",
            ..
        })
    ));
}
