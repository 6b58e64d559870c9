//! The segment store as a user meets it: round trips, the queue's flag, and every attack
//! on the files (tampering, wrong key, moving, reordering, truncation) ending in a typed
//! error with nothing unauthenticated returned; rotation and revocation.

use std::fs;
use std::path::Path;

use rpcseal_store::{AtRestErrorKind, MasterKey, Store, StoreConfig, StoreError};

fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("message {i} {}", "x".repeat(i % 300)).into_bytes())
        .collect()
}

/// Writes `n` records in batches of 7 into `queue`, small segments so there are several.
fn fill(store: &Store, queue: &str, encrypted: bool, recs: &[Vec<u8>]) {
    let mut w = store.writer(queue, encrypted).unwrap();
    for chunk in recs.chunks(7) {
        let refs: Vec<&[u8]> = chunk.iter().map(|r| r.as_slice()).collect();
        w.append(&refs).unwrap();
    }
    w.close().unwrap();
}

fn read(store: &Store, queue: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    store.read_queue(queue, |_, _, b| out.push(b.to_vec()))?;
    Ok(out)
}

fn cfg(keys: &[&MasterKey]) -> StoreConfig {
    StoreConfig::new("test", keys.iter().map(|k| (*k).clone()).collect()).segment_bytes(2000)
}

fn seg(dir: &Path, queue: &str, seq: u64, ext: &str) -> std::path::PathBuf {
    dir.join(queue).join(format!("{seq:016x}.{ext}"))
}

fn kind(r: Result<Vec<Vec<u8>>, StoreError>) -> AtRestErrorKind {
    match r {
        Err(e) => e
            .kind()
            .unwrap_or_else(|| panic!("not a format error: {e}")),
        Ok(v) => panic!("accepted {} records", v.len()),
    }
}

#[test]
fn round_trip_encrypted_and_plain() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k])).unwrap();
    let recs = records(100);
    fill(&store, "enc", true, &recs);
    fill(&store, "plain", false, &recs);
    assert!(store.segments("enc").unwrap().len() > 3);
    assert_eq!(read(&store, "enc").unwrap(), recs);
    assert_eq!(read(&store, "plain").unwrap(), recs);
    // The encrypted queue's files hold none of the plaintext; the plain one's do.
    let needle = b"message 42";
    let has = |q: &str| {
        fs::read_dir(dir.path().join(q)).unwrap().any(|e| {
            let b = fs::read(e.unwrap().path()).unwrap();
            b.windows(needle.len()).any(|w| w == needle)
        })
    };
    assert!(!has("enc"));
    assert!(has("plain"));
}

#[test]
fn flag_switched_on_keeps_old_plain_records_readable() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k])).unwrap();
    let recs = records(40);
    fill(&store, "q", false, &recs[..20]);
    fill(&store, "q", true, &recs[20..]);
    assert_eq!(read(&store, "q").unwrap(), recs);
    // A reader that requires encryption refuses the old plain segments.
    let strict = Store::open(dir.path(), cfg(&[&k]).require_encrypted(true)).unwrap();
    assert_eq!(kind(read(&strict, "q")), AtRestErrorKind::ModeMismatch);
}

#[test]
fn any_flipped_byte_of_a_segment_is_an_error_and_nothing_after_it_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k])).unwrap();
    let recs = records(60);
    fill(&store, "q", true, &recs);
    // Segment 0 is finished and not the newest: every change to it must be noticed. (The
    // newest segment may end in a torn write, spec/at-rest.md §8.)
    assert!(store.segments("q").unwrap().len() > 1);
    let data = seg(dir.path(), "q", 0, "seg");
    let orig = fs::read(&data).unwrap();
    for i in (0..orig.len()).step_by(3) {
        let mut bad = orig.clone();
        bad[i] ^= 0x10;
        fs::write(&data, &bad).unwrap();
        let mut got = Vec::new();
        let r = store.read_queue("q", |_, _, b| got.push(b.to_vec()));
        assert!(r.is_err(), "flip at {i} accepted");
        // Whatever was handed out before the error is a genuine prefix.
        assert_eq!(&got[..], &recs[..got.len()]);
    }
    fs::write(&data, &orig).unwrap();
    let hdr = seg(dir.path(), "q", 0, "hdr");
    let orig = fs::read(&hdr).unwrap();
    for i in 0..orig.len() {
        let mut bad = orig.clone();
        bad[i] ^= 0x01;
        fs::write(&hdr, &bad).unwrap();
        assert!(read(&store, "q").is_err(), "header flip at {i} accepted");
    }
}

#[test]
fn wrong_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k])).unwrap();
    fill(&store, "q", true, &records(10));
    let other = Store::open(dir.path(), cfg(&[&MasterKey::generate()])).unwrap();
    assert_eq!(kind(read(&other, "q")), AtRestErrorKind::UnknownKey);
    let impostor = MasterKey::with_id(k.key_id(), &[7; 32]);
    let other = Store::open(dir.path(), cfg(&[&impostor])).unwrap();
    assert_eq!(kind(read(&other, "q")), AtRestErrorKind::WrongKey);
    // Same key, another store name: another KEK.
    let other = Store::open(dir.path(), StoreConfig::new("other", vec![k.clone()])).unwrap();
    assert_eq!(kind(read(&other, "q")), AtRestErrorKind::WrongKey);
}

#[test]
fn moved_reordered_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k])).unwrap();
    fill(&store, "q", true, &records(100));
    assert!(store.segments("q").unwrap().len() >= 4);
    let p = |s, e| seg(dir.path(), "q", s, e);
    let backup = |s, e| fs::read(p(s, e)).unwrap();
    // Segment 2 (header and data) renamed into segment 1's place.
    let (h1, d1) = (backup(1, "hdr"), backup(1, "seg"));
    fs::write(p(1, "hdr"), backup(2, "hdr")).unwrap();
    fs::write(p(1, "seg"), backup(2, "seg")).unwrap();
    assert_eq!(kind(read(&store, "q")), AtRestErrorKind::Misplaced);
    // Only the data moved: the records are another asset's.
    fs::write(p(1, "hdr"), &h1).unwrap();
    assert_eq!(kind(read(&store, "q")), AtRestErrorKind::Misplaced);
    fs::write(p(1, "seg"), &d1).unwrap();
    assert!(read(&store, "q").is_ok());
    // The final record cut off a finished segment.
    fs::write(p(1, "seg"), &d1[..d1.len() - 40]).unwrap();
    assert_eq!(kind(read(&store, "q")), AtRestErrorKind::Truncated);
    // A whole record more cut off.
    let first_len = 40 + u32::from_be_bytes(d1[4..8].try_into().unwrap()) as usize;
    fs::write(p(1, "seg"), &d1[..first_len]).unwrap();
    assert_eq!(kind(read(&store, "q")), AtRestErrorKind::Truncated);
    fs::write(p(1, "seg"), &d1).unwrap();
    // A middle segment deleted.
    fs::remove_file(p(1, "hdr")).unwrap();
    assert_eq!(kind(read(&store, "q")), AtRestErrorKind::Truncated);
    fs::write(p(1, "hdr"), &h1).unwrap();
    // Two records swapped inside a segment.
    let mut recs = Vec::new();
    let mut at = 0;
    while at + 40 <= d1.len() {
        let l = 40 + u32::from_be_bytes(d1[at + 4..at + 8].try_into().unwrap()) as usize;
        recs.push(d1[at..at + l].to_vec());
        at += l;
    }
    let mut swapped = recs.clone();
    swapped.swap(0, 1);
    fs::write(p(1, "seg"), swapped.concat()).unwrap();
    assert_eq!(kind(read(&store, "q")), AtRestErrorKind::Misplaced);
    fs::write(p(1, "seg"), &d1).unwrap();
    assert_eq!(read(&store, "q").unwrap(), records(100));
}

#[test]
fn a_crash_mid_write_is_recovered_and_never_reuses_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k]).segment_bytes(1 << 20)).unwrap();
    let recs = records(10);
    {
        let mut w = store.writer("q", true).unwrap();
        let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
        w.append(&refs).unwrap();
        // Dropped without close: as if the process died.
    }
    // A torn write: half a record at the end.
    let d = seg(dir.path(), "q", 0, "seg");
    let mut bytes = fs::read(&d).unwrap();
    let before = bytes.len();
    bytes.extend_from_within(..30);
    fs::write(&d, &bytes).unwrap();
    // The newest segment may be open: the whole records are read, the torn one is not.
    assert_eq!(read(&store, "q").unwrap(), recs);
    // The next writer finishes it (cutting the torn record) and starts segment 1.
    let mut w = store.writer("q", true).unwrap();
    w.append(&[b"after".as_slice()]).unwrap();
    w.close().unwrap();
    assert_eq!(fs::read(&d).unwrap().len(), before + 40);
    let mut all = recs.clone();
    all.push(b"after".to_vec());
    assert_eq!(read(&store, "q").unwrap(), all);
}

#[test]
fn a_complete_but_forged_record_at_the_tail_is_not_taken_for_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let k = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&k])).unwrap();
    drop(
        store
            .writer("q", true)
            .unwrap()
            .append(&[b"one".as_slice()]),
    );
    let d = seg(dir.path(), "q", 0, "seg");
    let mut bytes = fs::read(&d).unwrap();
    let l = bytes.len();
    bytes[l - 1] ^= 1;
    fs::write(&d, &bytes).unwrap();
    assert_eq!(
        store.writer("q", true).unwrap_err().kind(),
        Some(AtRestErrorKind::Tampered)
    );
}

#[test]
fn rotation_rewraps_headers_only_and_revokes_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let store = Store::open(dir.path(), cfg(&[&old])).unwrap();
    let recs = records(60);
    fill(&store, "a", true, &recs);
    fill(&store, "b", true, &recs);
    fill(&store, "p", false, &recs[..5]);
    let data_before: Vec<Vec<u8>> = store
        .segments("a")
        .unwrap()
        .iter()
        .map(|&s| fs::read(seg(dir.path(), "a", s, "seg")).unwrap())
        .collect();
    let r = store.rotate(&new).unwrap();
    let segs = store.segments("a").unwrap().len() + store.segments("b").unwrap().len();
    assert!(segs >= 4 && r.rewrapped as usize == segs, "{r:?}");
    assert_eq!(r.plain, 1);
    assert_eq!(r.already, 0);
    // Records untouched, byte for byte.
    let data_after: Vec<Vec<u8>> = store
        .segments("a")
        .unwrap()
        .iter()
        .map(|&s| fs::read(seg(dir.path(), "a", s, "seg")).unwrap())
        .collect();
    assert_eq!(data_before, data_after);
    // Readable with the new key alone; nothing with the old key alone.
    let with_new = Store::open(dir.path(), cfg(&[&new])).unwrap();
    let with_old = Store::open(dir.path(), cfg(&[&old])).unwrap();
    for q in ["a", "b"] {
        assert_eq!(read(&with_new, q).unwrap(), recs);
        assert_eq!(kind(read(&with_old, q)), AtRestErrorKind::UnknownKey);
        for s in with_old.segments(q).unwrap() {
            let h = fs::read(seg(dir.path(), q, s, "hdr")).unwrap();
            assert!(!h.windows(16).any(|w| w == old.key_id().as_bytes()));
        }
    }
    // Running it again changes nothing.
    let again = with_new.rotate(&new).unwrap();
    assert_eq!(again.rewrapped, 0);
    assert_eq!(again.already, r.rewrapped);
    assert!(fs::read_dir(dir.path().join("a")).unwrap().all(|e| !e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[test]
fn master_key_strings() {
    let k = MasterKey::generate();
    let s = k.to_secret_string();
    assert!(s.starts_with("RPCSEAL-SECRET-MASTER:"));
    let back = MasterKey::from_secret_string(&s).unwrap();
    assert_eq!(back.key_id(), k.key_id());
    assert!(!format!("{k:?}").contains(&s[22..]));
    // Another kind of key is named, not mis-parsed.
    let sym = rpcseal::SymmetricKey::generate().to_secret_string();
    let e = MasterKey::from_secret_string(&sym).unwrap_err().to_string();
    assert!(e.contains("symmetric"), "{e}");
    let mut bad = s.to_string();
    bad.pop();
    assert!(MasterKey::from_secret_string(&bad).is_err());
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), format!("  {}\n", &*s)).unwrap();
    assert_eq!(MasterKey::from_file(f.path()).unwrap().key_id(), k.key_id());
}

#[test]
fn master_keys_from_the_environment_and_files_are_never_echoed() {
    let k = MasterKey::generate();
    let s = k.to_secret_string();
    let var = "RPCSEAL_STORE_TEST_MASTER_KEY";
    std::env::set_var(var, &*s);
    assert_eq!(MasterKey::from_env(var).unwrap().key_id(), k.key_id());
    // A damaged key: the error names the problem, never the value.
    let mut bad = s.to_string();
    bad.replace_range(40..41, if &bad[40..41] == "A" { "B" } else { "A" });
    std::env::set_var(var, &bad);
    let e = MasterKey::from_env(var).unwrap_err().to_string();
    assert!(!e.contains(&bad[22..60]), "{e}");
    std::env::remove_var(var);
    assert!(MasterKey::from_env(var).is_err());
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), &bad).unwrap();
    let e = MasterKey::from_file(f.path()).unwrap_err().to_string();
    assert!(!e.contains(&bad[22..60]), "{e}");
}

#[test]
fn the_master_key_is_never_written_into_the_store() {
    let (a_bytes, b_bytes) = ([0x3cu8; 32], [0xa7u8; 32]);
    let (a, b) = (
        MasterKey::from_bytes(&a_bytes),
        MasterKey::from_bytes(&b_bytes),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), cfg(&[&a, &b])).unwrap();
    fill(&store, "q", true, &records(60));
    store.rotate(&b).unwrap();
    let (sa, sb) = (a.to_secret_string(), b.to_secret_string());
    let mut files = 0;
    for q in fs::read_dir(dir.path()).unwrap() {
        for f in fs::read_dir(q.unwrap().path()).unwrap() {
            let bytes = fs::read(f.unwrap().path()).unwrap();
            files += 1;
            for needle in [
                &a_bytes[..],
                &b_bytes[..],
                sa[22..].as_bytes(),
                sb[22..].as_bytes(),
            ] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle));
            }
        }
    }
    assert!(files > 4, "{files}");
}
