//! Ed25519 `Sign` and `Verify` of spec/envelope-v3.md §1: pure Ed25519 (RFC 8032 §5.1), and
//! strict verification. Every signature the format makes or checks goes through here (the
//! session block signature of §5.3, the per-message signatures of §6.1 and §6.3), and so do
//! the RFC 8032 §7.1 test vectors (`vectors/primitives/rfc8032-ed25519.json`), so the vectors
//! test the code path the envelopes use.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// `Sign(sk, m)`: the 64-byte signature `R ‖ S`.
pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    #[cfg(feature = "vectors")]
    hook::enter();
    key.sign(message).to_bytes()
}

/// A function every signature runs first (tests only, hidden feature `vectors`): lets a
/// test park a thread inside signing and show what else can proceed meanwhile, with
/// barriers instead of timing. One relaxed atomic load per signature when unset.
#[cfg(feature = "vectors")]
pub mod hook {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, RwLock};

    type Hook = Arc<dyn Fn() + Send + Sync>;

    static SET: AtomicBool = AtomicBool::new(false);
    static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

    /// Sets (or with `None` clears) the function every signature calls first, on the
    /// signing thread, before it signs. Process-wide: the function decides by itself
    /// (for example by the thread's name) which calls to hold.
    pub fn set_sign_hook(f: Option<Hook>) {
        let mut h = HOOK.write().unwrap_or_else(|p| p.into_inner());
        SET.store(f.is_some(), Ordering::SeqCst);
        *h = f;
    }

    pub(crate) fn enter() {
        if !SET.load(Ordering::Relaxed) {
            return;
        }
        let f = HOOK.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(f) = f {
            f();
        }
    }
}

/// `Verify(pk, m, sig)`, strict (spec §1): rejects `S ≥ L`, small-order `A` or `R`, and uses
/// the cofactorless equation.
pub(crate) fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    #[cfg(feature = "vectors")]
    if crate::mutant::is(crate::mutant::Mutant::LenientSignatures) {
        return verify_cofactored_lenient(key, message, signature);
    }
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

/// A deliberately wrong verifier (tests only): `[8]([S]B - R - [k]A) = 0` with `S` reduced
/// mod L and `R` decoded however it is encoded: what cofactored or batch verification
/// accepts (RFC 8032 §5.1.7 allows the cofactored check; spec §1 does not).
#[cfg(feature = "vectors")]
fn verify_cofactored_lenient(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity;
    use sha2::{Digest, Sha512};
    let mut rb = [0u8; 32];
    rb.copy_from_slice(&signature[..32]);
    let mut sb = [0u8; 32];
    sb.copy_from_slice(&signature[32..]);
    let Some(r) = CompressedEdwardsY(rb).decompress() else {
        return false;
    };
    let s = Scalar::from_bytes_mod_order(sb);
    let mut h = Sha512::new();
    h.update(rb);
    h.update(key.as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    (EdwardsPoint::mul_base(&s) - r - key.to_edwards() * k)
        .mul_by_cofactor()
        .is_identity()
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
