//! Generator and verifier of the interop test vectors in `vectors/` (issue 4). Hidden: the
//! file format is documented in `vectors/README.md`, not here.
//!
//! Positive vectors are produced by the real [`crate::Sealer`] through its hidden
//! deterministic hook (a fixed clock and an RNG that hands out named values in the order of
//! spec §5.2); negative vectors are crafted with [`crate::forge`]-style building blocks, each
//! valid except for the one defect it is named after. Verification re-runs every case from
//! the inputs written in its file alone and compares the result byte for byte.
#![allow(missing_docs)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::keyring::{Keyring, TrustedKey};
use crate::keys::{GroupKey, Identity, KeyId, PublicIdentity, SymmetricKey};
use crate::open::{Opener, Policy};
use crate::suite::{Mode, Suite};

mod keyringtext;
mod keystrings;
mod negative;
mod positive;
mod sealer;

/// The format tag of every vector file.
pub(crate) const FORMAT: &str = "rpcseal-vectors/1";
/// The clock of the vectors: 2027-01-15T08:00:00Z.
pub(crate) const T0: u64 = 1_800_000_000;

/// One named check: a vector case, run on its own.
pub struct Check {
    pub name: String,
    run: Box<dyn FnOnce() -> Result<(), String> + Send>,
}

impl Check {
    pub fn run(self) -> Result<(), String> {
        (self.run)()
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    /// (check name, why it failed)
    pub failures: Vec<(String, String)>,
}

/// Every file the generator writes, as (path relative to the vectors directory, bytes).
pub fn generated_files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, v) in positive::files() {
        files.push((
            PathBuf::from(format!("v3/positive/{name}.json")),
            to_bytes(&v),
        ));
    }
    let negatives = negative::files();
    files.push((
        PathBuf::from("v3/negative/INDEX.md"),
        negative::index(&negatives),
    ));
    for (name, v) in negatives {
        files.push((
            PathBuf::from(format!("v3/negative/{name}.json")),
            to_bytes(&v),
        ));
    }
    files.push((
        PathBuf::from("v3/pq/keys/key-strings.json"),
        to_bytes(&keystrings::pq_file()),
    ));
    files.push((
        PathBuf::from("v3/pq/positive/suite-2.json"),
        to_bytes(&positive::pq_file()),
    ));
    files.push((
        PathBuf::from("v3/pq/negative/suite-2.json"),
        to_bytes(&negative::pq_file()),
    ));
    files.push((
        PathBuf::from("v3/reconfigure/keyring-changes.json"),
        to_bytes(&negative::reconfigure_file()),
    ));
    files.push((
        PathBuf::from("v3/sealer/refusals.json"),
        to_bytes(&sealer::file()),
    ));
    files.push((
        PathBuf::from("v3/keys/keyring-text.json"),
        to_bytes(&keyringtext::file()),
    ));
    files.push((
        PathBuf::from("v3/keys/key-strings.json"),
        to_bytes(&keystrings::file()),
    ));
    files
}

/// Writes the v3 vectors under `dir` (`dir/v3/...`). The primitive vectors under
/// `dir/primitives` are copied from their RFCs and are not touched.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, bytes) in generated_files() {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

fn to_bytes(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).expect("JSON values serialize");
    s.push('\n');
    s.into_bytes()
}

/// One check per vector case in `dir` (`primitives/*.json`, `v3/positive/*.json`,
/// `v3/negative/*.json`), named `FILE::CASE`.
pub fn checks(dir: &Path) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    for (sub, kind) in [
        ("primitives", Kind::Primitive),
        ("v3/positive", Kind::Positive),
        ("v3/negative", Kind::Negative),
        ("v3/keys", Kind::KeyString),
        ("v3/reconfigure", Kind::Negative),
        ("v3/sealer", Kind::Sealer),
        ("v3/pq/keys", Kind::KeyString),
        ("v3/pq/positive", Kind::Positive),
        ("v3/pq/negative", Kind::Negative),
    ] {
        let folder = dir.join(sub);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|e| format!("{}: {e}", folder.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        for path in names {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let file: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
            let fname = format!(
                "{sub}/{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            );
            let file = std::sync::Arc::new(file);
            let cases = match kind {
                Kind::Primitive => file["vectors"].as_array(),
                _ => file["cases"].as_array(),
            }
            .ok_or_else(|| format!("{fname}: no case list"))?;
            for (i, case) in cases.iter().enumerate() {
                let cname = case["name"]
                    .as_str()
                    .or_else(|| case["section"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("#{i}"));
                let file = file.clone();
                let stem = fname.clone();
                let run: Box<dyn FnOnce() -> Result<(), String> + Send> = Box::new(move || {
                    let case = &file_cases(&file)[i];
                    match kind {
                        Kind::Primitive => primitive(&stem, &file, case),
                        Kind::Positive => positive::verify_case(&file, case),
                        Kind::Negative => negative::verify_case(&file, case),
                        Kind::KeyString if stem.ends_with("keyring-text.json") => {
                            keyringtext::verify_case(case)
                        }
                        Kind::KeyString => keystrings::verify_case(case),
                        Kind::Sealer => sealer::verify_case(&file, case),
                    }
                });
                out.push(Check {
                    name: format!("{fname}::{}", cname.replace(' ', "_")),
                    run,
                });
            }
        }
    }
    Ok(out)
}

fn file_cases(file: &Value) -> &Vec<Value> {
    file["cases"]
        .as_array()
        .or_else(|| file["vectors"].as_array())
        .expect("checked when listing")
}

#[derive(Clone, Copy)]
enum Kind {
    Primitive,
    Positive,
    Negative,
    KeyString,
    Sealer,
}

/// The name (`FILE::CASE`) of every check under `dir`, in the order [`verify`] runs them.
pub fn check_names(dir: &Path) -> Result<Vec<String>, String> {
    Ok(checks(dir)?.into_iter().map(|c| c.name).collect())
}

/// Runs every check under `dir`, catching panics so one broken case cannot hide the others.
pub fn verify(dir: &Path) -> Report {
    verify_with(dir, None)
}

/// [`verify`] with a deliberately broken receiver (`tests/mutants.rs`): the report's
/// failures are the vectors that catch it.
pub fn verify_with(dir: &Path, mutant: Option<crate::mutant::Mutant>) -> Report {
    verify_matching(dir, mutant, |_| true)
}

/// [`verify_with`] on the checks whose name (`FILE::CASE`) `keep` accepts.
pub fn verify_matching(
    dir: &Path,
    mutant: Option<crate::mutant::Mutant>,
    keep: impl Fn(&str) -> bool,
) -> Report {
    let mut report = Report::default();
    let checks = match checks(dir) {
        Ok(c) => c,
        Err(e) => {
            report.failures.push((dir.display().to_string(), e));
            return report;
        }
    };
    for check in checks.into_iter().filter(|c| keep(&c.name)) {
        let name = check.name.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::mutant::with(mutant, || check.run())
        })) {
            Ok(Ok(())) => report.passed += 1,
            Ok(Err(e)) => report.failures.push((name, e)),
            Err(_) => report.failures.push((name, "panicked".into())),
        }
    }
    report
}

/// The primitive vectors, through the project's own code paths.
fn primitive(file: &str, _all: &Value, case: &Value) -> Result<(), String> {
    if file.contains("rfc8032") {
        let seed: [u8; 32] = fixed(&case["secret_key"])?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        expect_eq(
            "public_key",
            &key.verifying_key().to_bytes(),
            &bytes(&case["public_key"])?,
        )?;
        let message = bytes(&case["message"])?;
        let sig = crate::sign::sign(&key, &message);
        expect_eq("signature", &sig, &bytes(&case["signature"])?)?;
        if !crate::sign::verify(&key.verifying_key(), &message, &sig) {
            return Err("the signature does not verify".into());
        }
        Ok(())
    } else if file.contains("rfc9180") {
        if case["mode"].as_u64() != Some(0) {
            // Only base mode is what rpcseal uses; the other modes are kept for reference.
            return Ok(());
        }
        let (sk_r, pk_r) = crate::session::hpke_derive_keypair(&bytes(&case["ikmR"])?);
        let info = bytes(&case["info"])?;
        for e in case["encryptions"].as_array().ok_or("no encryptions")? {
            let mut rng = ScriptRng::new(vec![("ikm_e".into(), bytes(&case["ikmE"])?)]);
            let (enc, ct) = crate::session::hpke_seal(
                &pk_r,
                &info,
                &bytes(&e["aad"])?,
                &bytes(&e["pt"])?,
                &mut rng,
            )
            .map_err(|_| "hpke seal failed")?;
            expect_eq("pkEm", &enc, &bytes(&case["pkEm"])?)?;
            expect_eq("ct", &ct, &bytes(&e["ct"])?)?;
            let secret = crate::session::hpke_private(&x25519_dalek::StaticSecret::from(sk_r));
            let pt = crate::session::hpke_open(&secret, &enc, &info, &bytes(&e["aad"])?, &ct)
                .map_err(|_| "hpke open failed")?;
            expect_eq("pt", &pt, &bytes(&e["pt"])?)?;
        }
        Ok(())
    } else if file.contains("xwing-draft") {
        // draft-connolly-cfrg-xwing-kem-10 Appendix C: the key derivation of spec §2.5 and
        // the kind-3 wrap (its enc is X-Wing's ciphertext for the scripted eseed).
        let seed: [u8; 32] = fixed(&case["seed"])?;
        let pk = crate::xwing::xwing_public_from_seed(&seed);
        expect_eq("pk", &pk, &bytes(&case["pk"])?)?;
        crate::keys::XWingPublic::parse(&pk).map_err(|e| format!("pk: {e}"))?;
        let mut rng = ScriptRng::new(vec![("eseed".into(), bytes(&case["eseed"])?)]);
        let (enc, ct) = crate::xwing::xwing_seal(&pk, b"", b"", b"", &mut rng)
            .map_err(|_| "X-Wing wrap failed")?;
        expect_eq("ct", &enc[..], &bytes(&case["ct"])?)?;
        expect_eq(
            "ss",
            &crate::xwing::xwing_shared_secret(&seed, &enc[..])?,
            &bytes(&case["ss"])?,
        )?;
        crate::xwing::xwing_open(&crate::xwing::xwing_private(&seed), &enc[..], b"", b"", &ct)
            .map_err(|_| "X-Wing open failed")?;
        Ok(())
    } else if file.contains("hpke-pq-xwing") {
        // draft-ietf-hpke-pq, KEM 0x647a / HKDF-SHA256 / ChaCha20Poly1305, base mode, through
        // the kind-3 wrap: the first encryption is what a single-shot seal produces.
        let seed: [u8; 32] = fixed(&case["skRm"])?;
        let pk = crate::xwing::xwing_public_from_seed(&seed);
        expect_eq("pkRm", &pk, &bytes(&case["pkRm"])?)?;
        let info = bytes(&case["info"])?;
        let e = &case["encryptions"][0];
        let mut rng = ScriptRng::new(vec![("eseed".into(), bytes(&case["ikmE"])?)]);
        let (enc, ct) =
            crate::xwing::xwing_seal(&pk, &info, &bytes(&e["aad"])?, &bytes(&e["pt"])?, &mut rng)
                .map_err(|_| "X-Wing wrap failed")?;
        expect_eq("enc", &enc[..], &bytes(&case["enc"])?)?;
        expect_eq("ct", &ct, &bytes(&e["ct"])?)?;
        expect_eq(
            "shared_secret",
            &crate::xwing::xwing_shared_secret(&seed, &enc[..])?,
            &bytes(&case["shared_secret"])?,
        )?;
        let pt = crate::xwing::xwing_open(
            &crate::xwing::xwing_private(&seed),
            &enc[..],
            &info,
            &bytes(&e["aad"])?,
            &ct,
        )
        .map_err(|_| "X-Wing open failed")?;
        expect_eq("pt", &pt, &bytes(&e["pt"])?)?;
        Ok(())
    } else {
        Err(format!("{file}: no verifier for this primitive"))
    }
}

// ---- hex and JSON helpers -------------------------------------------------------------

pub(crate) fn hx(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub(crate) fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex string of {} digits", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).ok_or("non-ASCII hex")?, 16)
                .map_err(|_| format!("bad hex at {i}"))
        })
        .collect()
}

pub(crate) fn bytes(v: &Value) -> Result<Vec<u8>, String> {
    unhex(
        v.as_str()
            .ok_or_else(|| format!("expected a hex string, got {v}"))?,
    )
}

pub(crate) fn fixed<const N: usize>(v: &Value) -> Result<[u8; N], String> {
    bytes(v)?
        .try_into()
        .map_err(|_| format!("expected {N} bytes of hex"))
}

pub(crate) fn num(v: &Value) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("expected an unsigned integer, got {v}"))
}

fn expect_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {}, expected {}", hx(got), hx(want)))
    }
}

/// The first place where two JSON values differ, as a path.
pub(crate) fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(&format!("{path}.{k}"), w, v) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{path}.{k}: missing in the recomputation")),
                }
            }
            a.keys()
                .find(|k| !b.contains_key(*k))
                .map(|k| format!("{path}.{k}: recomputed but not in the file"))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!(
                    "{path}: {} items recomputed, {} in the file",
                    a.len(),
                    b.len()
                ));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y))
        }
        _ if got == want => None,
        _ => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.len() > 120 {
                    format!("{}...", &s[..120])
                } else {
                    s
                }
            };
            Some(format!(
                "{path}: recomputed {}, file has {}",
                short(got),
                short(want)
            ))
        }
    }
}

// ---- deterministic inputs ---------------------------------------------------------------

/// Deterministic bytes for the vectors: BLAKE3 derive_key mode with this context, over
/// `label`, extended to `n` bytes (XOF). Only a way to pick fixed values; nothing in the
/// format depends on it.
pub(crate) fn det(label: &str, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new_derive_key("rpcseal 2026-11-26 test vector values")
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

pub(crate) fn det32(label: &str) -> [u8; 32] {
    det(label, 32).try_into().expect("32")
}

pub(crate) fn det16(label: &str) -> [u8; 16] {
    det(label, 16).try_into().expect("16")
}

/// An RNG that hands out a script of named values, in order, and fails loudly when the
/// code asks for anything else: the vectors' check of the draw order of spec §5.2.
pub(crate) struct ScriptRng {
    draws: std::collections::VecDeque<(String, Vec<u8>)>,
}

impl ScriptRng {
    pub(crate) fn new(draws: Vec<(String, Vec<u8>)>) -> ScriptRng {
        ScriptRng {
            draws: draws.into(),
        }
    }

    pub(crate) fn left(&self) -> Vec<String> {
        self.draws.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl ScriptRng {
    fn next_u32(&mut self) -> u32 {
        panic!("the RNG script has no u32 draws")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("the RNG script has no u64 draws")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let (name, v) = self.draws.pop_front().unwrap_or_else(|| {
            panic!(
                "a draw of {} bytes past the end of the RNG script",
                dest.len()
            )
        });
        assert_eq!(
            v.len(),
            dest.len(),
            "the RNG script's next value {name} has {} bytes, the code asks for {}",
            v.len(),
            dest.len()
        );
        dest.copy_from_slice(&v);
    }
}
impl rand_core::TryRng for ScriptRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for ScriptRng {}

// ---- the cast of keys -------------------------------------------------------------------

/// A named key of the vectors' cast. A handful exist; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum CastKey {
    Identity(Identity),
    Group(GroupKey),
    Symmetric(SymmetricKey),
}

/// The keys every vector file lists (same values in every file).
pub(crate) fn cast() -> Vec<(&'static str, CastKey)> {
    let id = |n: &str| {
        CastKey::Identity(Identity::from_parts(
            &det32(&format!("{n} ed25519 seed")),
            &det32(&format!("{n} x25519 secret")),
        ))
    };
    let vault = det32("vault symmetric key");
    let stale = det32("vault stale symmetric key");
    let vault_id = KeyId::of(crate::keys::TAG_SYMMETRIC, &vault);
    vec![
        ("alice", id("alice")),
        ("bob", id("bob")),
        ("carol", id("carol")),
        ("dave", id("dave")),
        ("mallory", id("mallory")),
        (
            "team",
            CastKey::Group(GroupKey::from_secret_bytes(&det32("team group secret"))),
        ),
        (
            "vault",
            CastKey::Symmetric(SymmetricKey::with_id(vault_id, &vault)),
        ),
        (
            "vault-stale",
            CastKey::Symmetric(SymmetricKey::with_id(vault_id, &stale)),
        ),
    ]
}

pub(crate) fn cast_identity(name: &str) -> Identity {
    match cast().into_iter().find(|(n, _)| *n == name) {
        Some((_, CastKey::Identity(i))) => i,
        _ => panic!("no identity {name} in the cast"),
    }
}

pub(crate) fn cast_key(name: &str) -> CastKey {
    cast()
        .into_iter()
        .chain(pq_cast())
        .find(|(n, _)| *n == name)
        .map(|(_, k)| k)
        .unwrap_or_else(|| panic!("no key {name} in the cast"))
}

/// The post-quantum keys of the suite-2 vectors (`v3/pq/`, issue 15): bob and carol with an
/// X-Wing key added to their classical keys (same sender ids, same X25519 keys), and a
/// group key with one. Listed only in the files of `v3/pq/`, so the older files keep their
/// keys table.
pub(crate) fn pq_cast() -> Vec<(&'static str, CastKey)> {
    let id = |n: &str| {
        CastKey::Identity(Identity::from_parts_post_quantum(
            &det32(&format!("{n} ed25519 seed")),
            &det32(&format!("{n} x25519 secret")),
            &det32(&format!("{n} xwing seed")),
        ))
    };
    vec![
        ("bob-pq", id("bob")),
        ("carol-pq", id("carol")),
        (
            "team-pq",
            CastKey::Group(GroupKey::from_secret_bytes_post_quantum(
                &det32("team group secret"),
                &det32("team xwing seed"),
            )),
        ),
    ]
}

/// The `keys` table of the files of `v3/pq/`: every key of [`keys_json`] and the
/// post-quantum ones, whose entries add `xwing_seed`, `xwing_public` and
/// `xwing_recipient_id` (spec §2.5, §2.3) and whose `public_string` is the `-xwing` form.
pub(crate) fn keys_json_pq() -> Value {
    let mut m = match keys_json() {
        Value::Object(m) => m,
        _ => unreachable!("keys_json is an object"),
    };
    for (name, key) in pq_cast() {
        let v = match key {
            CastKey::Identity(i) => {
                let w = i.xwing_secret().expect("a post-quantum identity");
                json!({
                    "type": "identity",
                    "ed25519_seed": hx(i.signing_key().as_bytes()),
                    "ed25519_public": hx(&i.public().ed25519_bytes()),
                    "sender_id": hx(i.key_id().as_bytes()),
                    "x25519_secret": hx(&i.x25519_secret().to_bytes()),
                    "x25519_public": hx(&i.public().x25519_bytes()),
                    "recipient_id": hx(i.public().recipient_key_id().as_bytes()),
                    "xwing_seed": hx(w.seed()),
                    "xwing_public": hx(w.public().as_bytes()),
                    "xwing_recipient_id": hx(w.public().key_id().as_bytes()),
                    "public_string": i.public().to_string(),
                })
            }
            CastKey::Group(g) => {
                let w = g.xwing_secret().expect("a post-quantum group key");
                json!({
                    "type": "group",
                    "x25519_secret": hx(&g.x25519_secret().to_bytes()),
                    "x25519_public": hx(x25519_dalek::PublicKey::from(g.x25519_secret()).as_bytes()),
                    "recipient_id": hx(g.public().key_id().as_bytes()),
                    "xwing_seed": hx(w.seed()),
                    "xwing_public": hx(w.public().as_bytes()),
                    "xwing_recipient_id": hx(w.public().key_id().as_bytes()),
                    "public_string": g.public().to_string(),
                })
            }
            CastKey::Symmetric(_) => unreachable!("no symmetric key in the post-quantum cast"),
        };
        m.insert(name.into(), v);
    }
    Value::Object(m)
}

/// The `keys` table of a vector file.
pub(crate) fn keys_json() -> Value {
    let mut m = Map::new();
    for (name, key) in cast() {
        let v = match key {
            CastKey::Identity(i) => json!({
                "type": "identity",
                "ed25519_seed": hx(i.signing_key().as_bytes()),
                "ed25519_public": hx(&i.public().ed25519_bytes()),
                "sender_id": hx(i.key_id().as_bytes()),
                "x25519_secret": hx(&i.x25519_secret().to_bytes()),
                "x25519_public": hx(&i.public().x25519_bytes()),
                "recipient_id": hx(i.public().recipient_key_id().as_bytes()),
                "public_string": i.public().to_string(),
            }),
            CastKey::Group(g) => json!({
                "type": "group",
                "x25519_secret": hx(&g.x25519_secret().to_bytes()),
                "x25519_public": hx(x25519_dalek::PublicKey::from(g.x25519_secret()).as_bytes()),
                "recipient_id": hx(g.public().key_id().as_bytes()),
                "public_string": g.public().to_string(),
            }),
            CastKey::Symmetric(k) => json!({
                "type": "symmetric",
                "key": hx(k.secret()),
                "key_id": hx(k.key_id().as_bytes()),
            }),
        };
        m.insert(name.into(), v);
    }
    Value::Object(m)
}

/// Reads a key of the file's `keys` table (from the file, not from the cast).
pub(crate) fn file_key(file: &Value, name: &str) -> Result<CastKey, String> {
    let k = &file["keys"][name];
    match k["type"].as_str() {
        Some("identity") if !k["xwing_seed"].is_null() => {
            Ok(CastKey::Identity(Identity::from_parts_post_quantum(
                &fixed(&k["ed25519_seed"])?,
                &fixed(&k["x25519_secret"])?,
                &fixed(&k["xwing_seed"])?,
            )))
        }
        Some("identity") => Ok(CastKey::Identity(Identity::from_parts(
            &fixed(&k["ed25519_seed"])?,
            &fixed(&k["x25519_secret"])?,
        ))),
        Some("group") if !k["xwing_seed"].is_null() => {
            Ok(CastKey::Group(GroupKey::from_secret_bytes_post_quantum(
                &fixed(&k["x25519_secret"])?,
                &fixed(&k["xwing_seed"])?,
            )))
        }
        Some("group") => Ok(CastKey::Group(GroupKey::from_secret_bytes(&fixed(
            &k["x25519_secret"],
        )?))),
        Some("symmetric") => Ok(CastKey::Symmetric(SymmetricKey::with_id(
            KeyId::from_bytes(fixed(&k["key_id"])?),
            &fixed(&k["key"])?,
        ))),
        _ => Err(format!("no key named {name} in the file's keys table")),
    }
}

// ---- receivers --------------------------------------------------------------------------

/// A receiver's configuration, as written in the vectors (`receiver` objects).
#[derive(Clone)]
pub(crate) struct Receiver {
    pub identities: Vec<&'static str>,
    pub group_keys: Vec<&'static str>,
    pub symmetric_keys: Vec<&'static str>,
    pub trusted: Vec<&'static str>,
    pub suites: Vec<u64>,
    pub modes: Vec<Mode>,
    pub skew: u64,
    pub max_payload: u64,
    pub max_recipients: u64,
    pub max_metadata_entries: u64,
    pub max_metadata_bytes: u64,
    /// spec/envelope-v3.md §8 step 7: the longest session lifetime, seconds.
    pub max_session_lifetime: u64,
    /// spec/envelope-v3.md §8 step 7: the largest `max_messages` of a session.
    pub max_session_messages: u64,
    pub mac_via_group: bool,
    /// `dangerous_accept_unauthenticated_legacy_v2` (spec/legacy-v2.md §3).
    pub accept_legacy: bool,
    /// Trusted senders' key validity: (name, valid_from, valid_until) (spec/keyring.md §2).
    pub validity: Vec<(&'static str, Option<u64>, Option<u64>)>,
    /// Revoked sender keys, by name (spec/keyring.md §2).
    pub revoked: Vec<&'static str>,
    /// Issue 15: written only when set (the files of `v3/pq/`): trusted senders held to
    /// post-quantum sessions (keyring.md `require=pq`) and the post-quantum recipient limit
    /// (spec §7.3).
    pub pq: Option<PqReceiver>,
}

/// The receiver fields of the files of `v3/pq/`.
#[derive(Clone)]
pub(crate) struct PqReceiver {
    pub require_pq: Vec<&'static str>,
    pub max_pq_recipients: u64,
}

impl Receiver {
    /// Default policy, one identity, trusting alice.
    pub(crate) fn new(me: &'static str) -> Receiver {
        Receiver {
            identities: vec![me],
            group_keys: vec![],
            symmetric_keys: vec![],
            trusted: vec!["alice"],
            suites: vec![1],
            modes: vec![Mode::Signed, Mode::Mac, Mode::SignOnly],
            skew: 120,
            max_payload: crate::seal::DEFAULT_MAX_PAYLOAD as u64,
            max_recipients: crate::seal::DEFAULT_MAX_RECIPIENTS as u64,
            max_metadata_entries: 64,
            max_metadata_bytes: 8192,
            max_session_lifetime: crate::open::DEFAULT_MAX_SESSION_LIFETIME.as_secs(),
            max_session_messages: crate::open::DEFAULT_MAX_SESSION_MESSAGES,
            mac_via_group: false,
            accept_legacy: false,
            validity: vec![],
            revoked: vec![],
            pq: None,
        }
    }

    /// A receiver of the `v3/pq/` files: suites 1 and 2, the post-quantum fields written.
    pub(crate) fn new_pq(me: &'static str) -> Receiver {
        let mut r = Receiver::new(me);
        r.suites = vec![1, 2];
        r.pq = Some(PqReceiver {
            require_pq: vec![],
            max_pq_recipients: crate::session::MAX_PQ_RECIPIENTS as u64,
        });
        r
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut validity = Map::new();
        for (name, from, until) in &self.validity {
            validity.insert(
                (*name).into(),
                json!({"valid_from": from, "valid_until": until}),
            );
        }
        let mut v = json!({
            "identities": self.identities,
            "group_keys": self.group_keys,
            "symmetric_keys": self.symmetric_keys,
            "trusted_senders": self.trusted,
            "sender_validity": validity,
            "revoked_senders": self.revoked,
            "policy": {
                "suites": self.suites,
                "modes": self.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "clock_skew": self.skew,
                "max_envelope_bytes": self.max_payload + ENVELOPE_SLACK,
                "max_payload": self.max_payload,
                "max_recipients": self.max_recipients,
                "max_metadata_entries": self.max_metadata_entries,
                "max_metadata_bytes": self.max_metadata_bytes,
                "max_session_lifetime": self.max_session_lifetime,
                "max_session_messages": self.max_session_messages,
                "dangerous_accept_mac_via_group_key": self.mac_via_group,
                "dangerous_accept_unauthenticated_legacy_v2": self.accept_legacy,
            },
            "replay_store": {"type": "memory", "window": crate::replay::WINDOW_SIZE},
        });
        if let Some(pq) = &self.pq {
            v["sender_require_pq"] = json!(pq.require_pq);
            v["policy"]["max_pq_recipients"] = json!(pq.max_pq_recipients);
        }
        v
    }
}

/// The reference implementation's envelope limit is the payload limit plus this.
const ENVELOPE_SLACK: u64 = 1024 * 1024;

/// The list of key names in `r[field]` (absent: empty).
fn names_in(r: &Value, field: &str) -> Result<Vec<String>, String> {
    match &r[field] {
        Value::Null => Ok(vec![]),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(format!("{field}: not a name"))
            })
            .collect(),
        _ => Err(format!("{field}: expected a list of key names")),
    }
}

/// The keyring of a `receiver` object (or of a reconfiguration step's `keyring`):
/// `trusted_senders`, `sender_validity`, `revoked_senders`.
pub(crate) fn keyring_from_json(file: &Value, r: &Value) -> Result<Keyring, String> {
    let public = |n: &str| -> Result<PublicIdentity, String> {
        let s = file["keys"][n]["public_string"]
            .as_str()
            .ok_or(format!("{n}: no public_string"))?;
        PublicIdentity::parse(s).map_err(|e| format!("{n}: {e}"))
    };
    let mut ring = Keyring::new();
    let require_pq = names_in(r, "sender_require_pq")?;
    for n in names_in(r, "trusted_senders")? {
        let mut t = TrustedKey::new(&n, public(&n)?);
        if require_pq.contains(&n) {
            t = t.require_post_quantum();
        }
        let v = &r["sender_validity"][&n];
        if let Some(from) = v["valid_from"].as_u64() {
            t = t.valid_from(from);
        }
        if let Some(until) = v["valid_until"].as_u64() {
            t = t.valid_until(until);
        }
        ring.add(t);
    }
    for n in names_in(r, "revoked_senders")? {
        ring.revoke(public(&n)?.key_id());
    }
    Ok(ring)
}

/// Builds an [`Opener`] from a `receiver` object of a vector file.
pub(crate) fn opener_from_json(file: &Value, r: &Value) -> Result<Opener, String> {
    let names = |field: &str| -> Result<Vec<String>, String> {
        match &r[field] {
            Value::Null => Ok(vec![]),
            Value::Array(a) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or(format!("{field}: not a name"))
                })
                .collect(),
            _ => Err(format!("{field}: expected a list of key names")),
        }
    };
    let mut b = Opener::builder();
    for n in names("identities")? {
        match file_key(file, &n)? {
            CastKey::Identity(i) => b = b.identity(&i),
            _ => return Err(format!("{n} is not an identity")),
        }
    }
    for n in names("group_keys")? {
        match file_key(file, &n)? {
            CastKey::Group(g) => b = b.group_key(&g),
            _ => return Err(format!("{n} is not a group key")),
        }
    }
    for n in names("symmetric_keys")? {
        match file_key(file, &n)? {
            CastKey::Symmetric(k) => b = b.symmetric_key(&k),
            _ => return Err(format!("{n} is not a symmetric key")),
        }
    }
    b = b.keyring(keyring_from_json(file, r)?);
    let p = &r["policy"];
    let suites = p["suites"]
        .as_array()
        .ok_or("policy.suites")?
        .iter()
        .map(|s| Suite::from_id(num(s)?).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let modes = p["modes"]
        .as_array()
        .ok_or("policy.modes")?
        .iter()
        .map(|m| {
            m.as_str()
                .ok_or("mode")?
                .parse::<Mode>()
                .map_err(str::to_owned)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let max_payload = num(&p["max_payload"])?;
    if num(&p["max_envelope_bytes"])? != max_payload + ENVELOPE_SLACK {
        return Err("this implementation derives max_envelope_bytes from max_payload".into());
    }
    let usize_of = |v: &Value| -> Result<usize, String> {
        usize::try_from(num(v)?).map_err(|_| "limit too large".to_string())
    };
    let mut policy = Policy::default()
        .suites(&suites)
        .modes(&modes)
        .clock_skew(std::time::Duration::from_secs(num(&p["clock_skew"])?))
        .max_payload(usize_of(&p["max_payload"])?)
        .max_recipients(usize_of(&p["max_recipients"])?)
        .max_metadata(
            usize_of(&p["max_metadata_entries"])?,
            usize_of(&p["max_metadata_bytes"])?,
        )
        .max_session_lifetime(std::time::Duration::from_secs(num(
            &p["max_session_lifetime"]
        )?))
        .max_session_messages(num(&p["max_session_messages"])?);
    if p["dangerous_accept_mac_via_group_key"].as_bool() == Some(true) {
        policy = policy.dangerous_accept_mac_via_group_key();
    }
    if !p["max_pq_recipients"].is_null() {
        policy = policy.max_pq_recipients(usize_of(&p["max_pq_recipients"])?);
    }
    if p["dangerous_accept_unauthenticated_legacy_v2"].as_bool() == Some(true) {
        policy = policy.dangerous_accept_unauthenticated_legacy_v2();
    }
    match r["replay_store"]["type"].as_str() {
        None | Some("memory") => {}
        Some(other) => return Err(format!("unknown replay store {other}")),
    }
    if let Some(store) = mutant_store(num(&p["clock_skew"])?) {
        b = b.replay_store(store);
    }
    b.policy(policy).build().map_err(|e| e.to_string())
}

/// The deliberately broken replay stores of `tests/mutants.rs` (crate::mutant).
fn mutant_store(skew: u64) -> Option<std::sync::Arc<dyn crate::replay::ReplayStore>> {
    use crate::mutant::Mutant;
    use crate::replay::{MemoryReplayStore, ReplayError, ReplayItem, ReplayStore};
    use std::collections::HashMap;
    use std::sync::Mutex;
    type SessionKey = ([u8; 16], [u8; 16]);
    type NonceKey = ([u8; 16], [u8; 16], [u8; 16]);
    struct Broken {
        inner: MemoryReplayStore,
        mutant: Mutant,
        skew: u64,
        tops: Mutex<HashMap<SessionKey, u64>>,
        nonces: Mutex<std::collections::HashSet<NonceKey>>,
    }
    impl Broken {
        fn item(&self, i: &ReplayItem) -> ReplayItem {
            let mut i = *i;
            if self.mutant == Mutant::StoreExpiresWithoutSkew {
                i.expires_at = i.expires_at.saturating_sub(self.skew);
            }
            i
        }
        /// The one-shot mutants: `Some` when they decide instead of the real store.
        fn one_shot(&self, i: &ReplayItem, mark: bool) -> Option<Result<(), ReplayError>> {
            if !i.one_shot {
                return None;
            }
            match self.mutant {
                Mutant::OneShotNotTracked => Some(Ok(())),
                Mutant::OneShotByNonce => {
                    let mut seen = self.nonces.lock().expect("not poisoned");
                    let key = (i.sender, i.session_id, i.nonce);
                    Some(if seen.contains(&key) {
                        Err(ReplayError::Replayed)
                    } else {
                        if mark {
                            seen.insert(key);
                        }
                        Ok(())
                    })
                }
                _ => None,
            }
        }
        fn window64(&self, i: &ReplayItem) -> Result<(), ReplayError> {
            let tops = self.tops.lock().expect("not poisoned");
            match tops.get(&(i.sender, i.session_id)) {
                Some(&top)
                    if self.mutant == Mutant::Window64 && i.seq <= top && top - i.seq >= 64 =>
                {
                    Err(ReplayError::OutsideWindow)
                }
                _ => Ok(()),
            }
        }
    }
    impl ReplayStore for Broken {
        fn check(&self, i: &ReplayItem, now: u64) -> Result<(), ReplayError> {
            if matches!(
                self.mutant,
                Mutant::NoReadOnlyReplayCheck | Mutant::NoReplayCheck
            ) {
                return Ok(());
            }
            if let Some(r) = self.one_shot(i, false) {
                return r;
            }
            self.window64(i)?;
            self.inner.check(&self.item(i), now)
        }
        fn check_and_mark(&self, i: &ReplayItem, now: u64) -> Result<(), ReplayError> {
            if self.mutant == Mutant::NoReplayCheck {
                return Ok(());
            }
            if let Some(r) = self.one_shot(i, true) {
                return r;
            }
            self.window64(i)?;
            self.inner.check_and_mark(&self.item(i), now)?;
            let mut tops = self.tops.lock().expect("not poisoned");
            let top = tops.entry((i.sender, i.session_id)).or_insert(i.seq);
            *top = (*top).max(i.seq);
            Ok(())
        }
    }
    let mutant = crate::mutant::active()?;
    matches!(
        mutant,
        Mutant::StoreExpiresWithoutSkew
            | Mutant::Window64
            | Mutant::NoReadOnlyReplayCheck
            | Mutant::OneShotByNonce
            | Mutant::OneShotNotTracked
            | Mutant::NoReplayCheck
    )
    .then(|| {
        std::sync::Arc::new(Broken {
            inner: MemoryReplayStore::default(),
            mutant,
            skew,
            tops: Mutex::new(HashMap::new()),
            nonces: Mutex::new(Default::default()),
        }) as std::sync::Arc<dyn ReplayStore>
    })
}

/// The outcome of opening, as the vectors write it: `ok` or the failure class.
pub(crate) fn outcome(r: &Result<crate::Opened, crate::Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

/// The outcome through the one entry point for every version (`Opener::open_any`):
/// `ok`, `ok_unauthenticated_legacy`, or the failure class.
pub(crate) fn outcome_any(r: &Result<crate::Received, crate::Error>) -> &'static str {
    match r {
        Ok(crate::Received::Verified(_)) => "ok",
        Ok(crate::Received::UnauthenticatedLegacy(_)) => "ok_unauthenticated_legacy",
        Err(e) => e.kind().as_str(),
    }
}
