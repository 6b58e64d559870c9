//! Regression tests of the security review, part 1 (issue 13): replay state that survives
//! restarts and files that cannot be turned against their owner. Each test is named after
//! the finding it covers (`item_NN_...`). The Redis findings are in tests/replay_redis.rs,
//! the command line's in tests/cli.rs.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use getrandom::SysRng;
use rand_core::UnwrapErr;
use rpcseal::replay::file::FileReplayStore;
use rpcseal::replay::{MemoryReplayConfig, MemoryReplayStore, ReplayStore};
use rpcseal::{
    ErrorKind, Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig,
};

const T0: u64 = 1_800_000_000;

fn opener(me: &Identity, trust: &Identity, store: Arc<dyn ReplayStore>) -> Opener {
    Opener::builder()
        .identity(me)
        .trust(trust.public())
        .replay_store(store)
        .build()
        .unwrap()
}

fn sealer(from: &Identity, to: &Identity, config: SealerConfig) -> Sealer {
    Sealer::new(from, &[Recipient::from(to.public())], config).unwrap()
}

fn seal(s: &mut Sealer, payload: &[u8], now: u64) -> Vec<u8> {
    s.seal_deterministic(payload, &Metadata::new(), now, &mut UnwrapErr(SysRng))
        .unwrap()
}

fn kind(r: Result<rpcseal::Opened, rpcseal::Error>) -> Result<Vec<u8>, ErrorKind> {
    r.map(|o| o.payload).map_err(|e| e.kind())
}

/// A private directory for state files (the store refuses ones others can write).
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

fn file_store(path: &Path) -> Arc<dyn ReplayStore> {
    Arc::new(FileReplayStore::open(path).unwrap())
}

/// Item 1: a state file restored from an older copy cannot prove it is the latest, so the
/// message accepted after the copy was taken is not accepted again 100 s later.
#[test]
fn item_01_a_state_file_restored_from_a_copy_does_not_accept_a_replay() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let dir = private_dir();
    let path = dir.path().join("replay.state");
    FileReplayStore::create(&path).unwrap();
    let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));
    let first = seal(&mut s, b"one", T0);
    let second = seal(&mut s, b"two", T0);

    let o = opener(&bob, &alice, file_store(&path));
    assert_eq!(kind(o.open_at(&first, T0)), Ok(b"one".to_vec()));
    let backup = dir.path().join("backup");
    fs::copy(&path, &backup).unwrap();
    assert_eq!(kind(o.open_at(&second, T0)), Ok(b"two".to_vec()));
    drop(o);

    // Restored from the copy (a new inode, the same bytes): the second message is not in it.
    fs::copy(&backup, &path).unwrap();
    let restarted = opener(&bob, &alice, file_store(&path));
    assert!(kind(restarted.open_at(&second, T0 + 100)).is_err());
    assert!(kind(restarted.open_at(&first, T0 + 100)).is_err());
    // A message sealed after the loss margin is accepted: the store fails closed, not shut.
    // The watermark is T0 + 100 + 300: dated after it, accepted.
    let later = seal(&mut s, b"three", T0 + 401);
    assert_eq!(
        kind(restarted.open_at(&later, T0 + 401)),
        Ok(b"three".to_vec())
    );
}

/// Item 1: an older state file moved back into place (the same inode: a hard link kept
/// aside) cannot prove it is the latest either: the lock file holds a newer generation.
#[test]
fn item_01_an_older_state_file_moved_back_does_not_accept_a_replay() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let dir = private_dir();
    let path = dir.path().join("replay.state");
    FileReplayStore::create(&path).unwrap();
    let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Mac));
    let first = seal(&mut s, b"one", T0);
    let second = seal(&mut s, b"two", T0);
    let o = opener(&bob, &alice, file_store(&path));
    assert_eq!(kind(o.open_at(&first, T0)), Ok(b"one".to_vec()));
    let aside = dir.path().join("aside");
    fs::hard_link(&path, &aside).unwrap();
    assert_eq!(kind(o.open_at(&second, T0)), Ok(b"two".to_vec()));
    fs::rename(&aside, &path).unwrap();
    assert!(kind(o.open_at(&second, T0 + 100)).is_err());
    let restarted = opener(&bob, &alice, file_store(&path));
    assert!(kind(restarted.open_at(&second, T0 + 100)).is_err());
}

/// Item 1: a missing state file is an error, never an empty store; a new one is made only
/// on request, and one made beside the lock of a lost one starts with a watermark.
#[test]
fn item_01_a_missing_state_file_fails_closed() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let dir = private_dir();
    let path = dir.path().join("replay.state");
    assert!(FileReplayStore::open(&path).is_err());
    FileReplayStore::create(&path).unwrap();
    let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));
    let env = seal(&mut s, b"once", T0);
    let o = opener(&bob, &alice, file_store(&path));
    assert_eq!(kind(o.open_at(&env, T0)), Ok(b"once".to_vec()));
    assert_eq!(kind(o.open_at(&env, T0 + 1)), Err(ErrorKind::Replayed));

    fs::remove_file(&path).unwrap();
    // The running opener's store refuses: its file is gone.
    assert_eq!(
        kind(o.open_at(&env, T0 + 100)),
        Err(ErrorKind::ReplayUnavailable)
    );
    assert!(FileReplayStore::open(&path).is_err());
    // Declared new, but the lock file remembers a lost predecessor: still no replay.
    FileReplayStore::create(&path).unwrap();
    let again = opener(&bob, &alice, file_store(&path));
    assert!(kind(again.open_at(&env, T0 + 100)).is_err());
}

/// Item 1: the in-memory store's start watermark, for services that restart and cannot
/// share a store: a new process refuses what the old one may have accepted.
#[test]
fn item_01_a_memory_store_with_a_start_watermark_refuses_what_a_previous_process_accepted() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));
    let env = seal(&mut s, b"x", T0);
    let first = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
    assert_eq!(kind(first.open_at(&env, T0)), Ok(b"x".to_vec()));

    // The default: one process lifetime (documented), a new process accepts it again.
    let plain = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
    assert!(plain.open_at(&env, T0 + 100).is_ok());

    let restarted = opener(
        &bob,
        &alice,
        Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
            start_watermark: true,
            ..MemoryReplayConfig::default()
        })),
    );
    assert_eq!(
        kind(restarted.open_at(&env, T0 + 100)),
        Err(ErrorKind::ReplayUnavailable)
    );
    let later = seal(&mut s, b"y", T0 + 401);
    assert_eq!(kind(restarted.open_at(&later, T0 + 401)), Ok(b"y".to_vec()));
}

/// Item 5 (for every store that reports a loss margin): an opener whose skew is larger than
/// its store's loss margin is refused, so the watermark always covers the skew.
#[test]
fn item_05_an_opener_refuses_a_store_whose_loss_margin_is_below_its_skew() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let store = MemoryReplayStore::default(); // loss margin 300 s
    let built = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().clock_skew(Duration::from_secs(600)))
        .replay_store(Arc::new(store))
        .build();
    let e = built.err().expect("refused");
    assert!(e.to_string().contains("loss margin"), "{e}");
    // The default store follows the skew.
    Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().clock_skew(Duration::from_secs(600)))
        .build()
        .unwrap();
}

#[cfg(unix)]
fn victim(dir: &Path) -> (std::path::PathBuf, &'static [u8]) {
    let v = dir.join("victim");
    let text: &'static [u8] = b"precious data, not replay state\n";
    fs::write(&v, text).unwrap();
    (v, text)
}

/// Item 6: planted `FILE.tmp` and `FILE.lock` symlinks to a victim file: the victim stays
/// unchanged, whatever the store does.
#[cfg(unix)]
#[test]
fn item_06_planted_tmp_and_lock_symlinks_leave_the_victim_unchanged() {
    use std::os::unix::fs::symlink;
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));

    // FILE.tmp -> victim: create and every write go elsewhere.
    let dir = private_dir();
    let (v, text) = victim(dir.path());
    let path = dir.path().join("state");
    symlink(&v, dir.path().join("state.tmp")).unwrap();
    let _ = FileReplayStore::create(&path);
    let o = opener(
        &bob,
        &alice,
        Arc::new(FileReplayStore::open(&path).unwrap()),
    );
    assert!(o.open_at(&seal(&mut s, b"a", T0), T0).is_ok());
    assert_eq!(fs::read(&v).unwrap(), text);

    // FILE.lock -> victim: refused, not followed.
    let dir = private_dir();
    let (v, text) = victim(dir.path());
    let path = dir.path().join("state");
    symlink(&v, dir.path().join("state.lock")).unwrap();
    assert!(FileReplayStore::create(&path).is_err());
    assert_eq!(fs::read(&v).unwrap(), text);

    // Planted after the store was opened: the same.
    let dir = private_dir();
    let (v, text) = victim(dir.path());
    let path = dir.path().join("state");
    let store = Arc::new(FileReplayStore::create(&path).unwrap());
    fs::remove_file(dir.path().join("state.lock")).unwrap();
    symlink(&v, dir.path().join("state.lock")).unwrap();
    symlink(&v, dir.path().join("state.tmp")).unwrap();
    let o = opener(&bob, &alice, store);
    assert!(o.open_at(&seal(&mut s, b"b", T0), T0).is_err());
    assert_eq!(fs::read(&v).unwrap(), text);
}

/// Item 6: a state directory that other users can write to is refused.
#[cfg(unix)]
#[test]
fn item_06_a_state_directory_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o777, 0o1777, 0o770] {
        let dir = private_dir();
        let path = dir.path().join("state");
        FileReplayStore::create(&path).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
        let e = FileReplayStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("writable by other users"), "{e}");
        assert!(FileReplayStore::create(dir.path().join("other")).is_err());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    }
}

/// Item 13: [corrupted copy of E1, E1, E2 by reference]: the by-reference envelope opens,
/// as it does when the three are opened one by one.
#[test]
fn item_13_a_by_reference_envelope_opens_when_a_later_carrier_of_its_block_was_accepted() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        let mut s = sealer(
            &alice,
            &bob,
            SealerConfig::new(mode).inline(Inline::FirstMessage),
        );
        let e1 = seal(&mut s, b"first", T0);
        let e2 = seal(&mut s, b"second", T0);
        let mut bad = e1.clone();
        *bad.last_mut().unwrap() ^= 1;

        let one_by_one = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
        let sequential: Vec<_> = [&bad, &e1, &e2]
            .iter()
            .map(|e| kind(one_by_one.open_at(e, T0)))
            .collect();
        let batch = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
        let batched: Vec<_> = batch
            .open_batch_at(&[&bad, &e1, &e2], T0)
            .into_iter()
            .map(kind)
            .collect();
        assert!(sequential[0].is_err());
        assert_eq!(sequential[2], Ok(b"second".to_vec()), "{mode}");
        assert_eq!(batched, sequential, "{mode}");
    }
}

/// Item 14: the receiver caps a session's lifetime (24 hours) and message count (2^32)
/// by default.
#[test]
fn item_14_sessions_longer_or_larger_than_the_policy_allows_are_refused() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = opener(&bob, &alice, Arc::new(MemoryReplayStore::default()));
    let mut long = sealer(
        &alice,
        &bob,
        SealerConfig::new(Mode::Signed).lifetime(Duration::from_secs(24 * 3600 + 1)),
    );
    assert_eq!(
        kind(o.open_at(&seal(&mut long, b"x", T0), T0)),
        Err(ErrorKind::SessionLimit)
    );
    let mut day = sealer(
        &alice,
        &bob,
        SealerConfig::new(Mode::Signed).lifetime(Duration::from_secs(24 * 3600)),
    );
    assert!(o.open_at(&seal(&mut day, b"x", T0), T0).is_ok());
    let mut many = sealer(
        &alice,
        &bob,
        SealerConfig::new(Mode::Mac).max_messages((1 << 32) + 1),
    );
    assert_eq!(
        kind(o.open_at(&seal(&mut many, b"x", T0), T0)),
        Err(ErrorKind::SessionLimit)
    );
    // Raised by policy, accepted.
    let lenient = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(
            Policy::default()
                .max_session_lifetime(Duration::from_secs(48 * 3600))
                .max_session_messages(1 << 40),
        )
        .build()
        .unwrap();
    assert!(lenient.open_at(&seal(&mut long, b"y", T0), T0).is_ok());
    assert!(lenient.open_at(&seal(&mut many, b"y", T0), T0).is_ok());
}

/// Item 15: one message accepted while the receiver's clock (and its sender's) was far
/// ahead does not make every live session look expired until real time catches up: the
/// stores stop trusting a clock reading far ahead of `now`, and fail closed for about the
/// loss margin instead.
#[test]
fn item_15_a_far_ahead_clock_does_not_poison_the_stores() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let dir = private_dir();
    let path = dir.path().join("state");
    FileReplayStore::create(&path).unwrap();
    let stores: Vec<Arc<dyn ReplayStore>> = vec![
        // One shard, so that both sessions meet the poisoned clock.
        Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
            shards: 1,
            ..MemoryReplayConfig::default()
        })),
        Arc::new(FileReplayStore::open(&path).unwrap()),
    ];
    for store in stores {
        let o = opener(&bob, &alice, store);
        let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));
        let ahead = T0 + 365 * 86_400;
        assert!(o.open_at(&seal(&mut s, b"future", ahead), ahead).is_ok());
        // Back to real time: a session sealed now opens once the loss margin has passed.
        let mut fresh = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));
        let env = seal(&mut fresh, b"now", T0);
        assert!(o.open_at(&env, T0).is_err());
        let env = seal(&mut fresh, b"later", T0 + 400);
        assert_eq!(kind(o.open_at(&env, T0 + 400)), Ok(b"later".to_vec()));
        assert_eq!(kind(o.open_at(&env, T0 + 401)), Err(ErrorKind::Replayed));
    }
}

/// Item 20: a message the store cannot prove new (below a watermark) is reported as the
/// store's failure ("cannot prove"), not as a message seen before, with what to do.
#[test]
fn item_20_below_the_watermark_is_cannot_prove_not_replayed() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let o = opener(
        &bob,
        &alice,
        Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
            start_watermark: true,
            ..MemoryReplayConfig::default()
        })),
    );
    let mut s = sealer(&alice, &bob, SealerConfig::new(Mode::Signed));
    let e = o.open_at(&seal(&mut s, b"x", T0), T0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReplayUnavailable);
    let text = e.to_string();
    assert!(text.contains("cannot prove"), "{text}");
    assert!(text.contains("seal this one again"), "{text}");
}
