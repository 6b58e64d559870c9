//! Domain-separated hashing, spec/envelope-v3.md §4.
//!
//! Every hash in the format is BLAKE3 in `derive_key` mode with one of the context strings
//! below, so no two uses of the hash can ever be confused. Per-recipient MAC tags use BLAKE3
//! in keyed mode (§7.2).

/// `H_keyid`: key ids (§2.3).
pub(crate) const CTX_KEY_ID: &str = "rpcseal 2026-11-26 v3 key id";
/// `H_checksum`: key string checksums (§2.4).
pub(crate) const CTX_KEY_CHECKSUM: &str = "rpcseal 2026-11-26 v3 key string checksum";
/// `H_header`: the session header hash (§5.3).
pub(crate) const CTX_HEADER: &str = "rpcseal 2026-11-26 v3 session header";
/// `H_recipients`: the hash of the encoded recipient list (§5.3).
pub(crate) const CTX_RECIPIENTS: &str = "rpcseal 2026-11-26 v3 session recipients";
/// `H_commit`: the commitment to EK (§5.2).
pub(crate) const CTX_EK_COMMIT: &str = "rpcseal 2026-11-26 v3 ek commitment";
/// `H_mackey`: per-recipient MAC keys derived from SK (§5.4).
pub(crate) const CTX_MAC_KEY: &str = "rpcseal 2026-11-26 v3 mac key";
/// `H_listkey`: the key of the MAC list's integrity tag, derived from EK (§7.2).
pub(crate) const CTX_LIST_KEY: &str = "rpcseal 2026-11-26 v3 mac list key";
/// `H_symcommit`: the key commitment of a symmetric wrap (§5.4).
pub(crate) const CTX_SYM_COMMIT: &str = "rpcseal 2026-11-26 v3 symmetric wrap commitment";
/// `H_symwrap`: the key of a symmetric wrap (§5.4).
pub(crate) const CTX_SYM_WRAP: &str = "rpcseal 2026-11-26 v3 symmetric wrap key";
/// `H_message`: the per-message transcript hash (§7.1).
pub(crate) const CTX_MESSAGE: &str = "rpcseal 2026-11-26 v3 message";

/// The label prefixed to the session block hash before the identity signs it (§5.3).
pub(crate) const SIG_LABEL_SESSION: &[u8] = b"rpcseal v3 session block signature\n";
/// The label prefixed to the message hash before the session key signs it (§7.2).
pub(crate) const SIG_LABEL_MESSAGE: &[u8] = b"rpcseal v3 message signature\n";
/// The HPKE `info` string of every wrap (§5.4).
pub(crate) const HPKE_INFO: &[u8] = b"rpcseal v3 session wrap";

/// BLAKE3 derive_key-mode hash of the concatenation of `parts` under `context`.
pub(crate) fn h(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for p in parts {
        hasher.update(p);
    }
    *hasher.finalize().as_bytes()
}
