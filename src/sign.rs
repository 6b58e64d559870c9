//! Ed25519 `Sign` and `Verify` of spec/envelope-v3.md §1: pure Ed25519 (RFC 8032 §5.1), and
//! strict verification. Every signature the format makes or checks goes through here (the
//! session block signature of §5.3, the per-message signatures of §6.1 and §6.3), and so do
//! the RFC 8032 §7.1 test vectors (`vectors/primitives/rfc8032-ed25519.json`), so the vectors
//! test the code path the envelopes use.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// `Sign(sk, m)`: the 64-byte signature `R ‖ S`.
pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    key.sign(message).to_bytes()
}

/// `Verify(pk, m, sig)`, strict (spec §1): rejects `S ≥ L`, small-order `A` or `R`, and uses
/// the cofactorless equation.
pub(crate) fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    /// RFC 8032 §7.1 through the signer the envelopes use.
    #[test]
    fn sign_and_verify_match_rfc8032_7_1() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/vectors/primitives/rfc8032-ed25519.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = v["vectors"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for case in cases {
            let seed: [u8; 32] = hex(&case["secret_key"]).try_into().unwrap();
            let key = SigningKey::from_bytes(&seed);
            assert_eq!(
                key.verifying_key().to_bytes().to_vec(),
                hex(&case["public_key"])
            );
            let message = hex(&case["message"]);
            let signature = sign(&key, &message);
            assert_eq!(
                signature.to_vec(),
                hex(&case["signature"]),
                "{}",
                case["name"]
            );
            assert!(verify(&key.verifying_key(), &message, &signature));
            let mut bad = signature;
            bad[0] ^= 1;
            assert!(!verify(&key.verifying_key(), &message, &bad));
        }
    }
}
