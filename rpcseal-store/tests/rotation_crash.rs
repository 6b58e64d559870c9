//! Master key rotation killed for real: a child process (`rpcseal-store rotate`) is sent
//! SIGKILL at random moments of its run, at least 50 times. After every kill, every record
//! of every queue is read back and compared with what was written, by a reader holding
//! both keys; then the rotation is restarted. Each time one completes, the store must read
//! with the new key alone and not at all with the old key alone, and the next rotation goes
//! back the other way. Bounded: 60 kills, at most 45 s of them, and the test fails if fewer than 50
//! kills happened or too few of them landed in the middle of a rotation.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use getrandom::SysRng;
use rand_core::{Rng, UnwrapErr};
use rpcseal_store::{AtRestErrorKind, MasterKey, Store, StoreConfig};

const QUEUES: usize = 4;
const RECORDS: usize = 100;

fn expected(q: usize) -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|i| format!("queue {q} record {i} {}", "z".repeat(i % 97)).into_bytes())
        .collect()
}

fn rotate_child(dir: &Path, from: &MasterKey, to: &MasterKey) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_rpcseal-store"))
        .args(["rotate", dir.to_str().unwrap(), "crash"])
        .env("RPCSEAL_MASTER_KEY", &*from.to_secret_string())
        .env("RPCSEAL_NEW_MASTER_KEY", &*to.to_secret_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rpcseal-store")
}

/// Reads everything with `keys`; returns how many segments each key id wraps.
fn verify_all(dir: &Path, keys: &[&MasterKey]) -> Result<(), AtRestErrorKind> {
    let store = Store::open(
        dir,
        StoreConfig::new("crash", keys.iter().map(|k| (*k).clone()).collect()),
    )
    .unwrap();
    for q in 0..QUEUES {
        let mut got = Vec::new();
        store
            .read_queue(&format!("q{q}"), |_, _, b| got.push(b.to_vec()))
            .map_err(|e| e.kind().unwrap_or_else(|| panic!("{e}")))?;
        assert_eq!(got, expected(q), "queue {q} differs");
    }
    Ok(())
}

fn headers_under(dir: &Path, key: &MasterKey) -> usize {
    let mut n = 0;
    for q in 0..QUEUES {
        for e in std::fs::read_dir(dir.join(format!("q{q}"))).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "hdr") {
                let h = std::fs::read(&p).unwrap();
                let info = rpcseal::at_rest::inspect_header(&h).expect("whole header");
                n += usize::from(info.master_key_id == Some(key.key_id()));
            }
        }
    }
    n
}

#[test]
fn rotation_survives_sigkill_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let a = MasterKey::generate();
    let b = MasterKey::generate();
    let store = Store::open(
        dir.path(),
        StoreConfig::new("crash", vec![a.clone()]).segment_bytes(300),
    )
    .unwrap();
    for q in 0..QUEUES {
        let mut w = store.writer(&format!("q{q}"), true).unwrap();
        for chunk in expected(q).chunks(5) {
            let refs: Vec<&[u8]> = chunk.iter().map(|r| r.as_slice()).collect();
            w.append(&refs).unwrap();
        }
        w.close().unwrap();
    }
    let total: usize = (0..QUEUES)
        .map(|q| store.segments(&format!("q{q}")).unwrap().len())
        .sum();
    assert!(total >= 50, "{total} segments");
    verify_all(dir.path(), &[&a]).unwrap();

    // How long one whole rotation takes here: the kill points are drawn from it.
    let t = Instant::now();
    let out = rotate_child(dir.path(), &a, &b).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = t.elapsed();
    assert_eq!(headers_under(dir.path(), &b), total);
    let (mut from, mut to) = (b.clone(), a.clone());

    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut kills, mut mid, mut completed) = (0u32, 0u32, 0u32);
    let (mut child_time, mut verify_time) = (Duration::ZERO, Duration::ZERO);
    while (kills < 60 || mid < 20) && Instant::now() < deadline {
        let t_child = Instant::now();
        let mut child = rotate_child(dir.path(), &from, &to);
        // A random moment in the first 30% of a whole rotation's time: each restart resumes
        // where the killed one stopped, so the kills walk through every stage of it.
        let wait_us = UnwrapErr(SysRng).next_u64() % (full.as_micros() as u64 * 3 / 10 + 1);
        std::thread::sleep(Duration::from_micros(wait_us));
        let killed = child.kill().is_ok(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        if killed && !status.success() {
            kills += 1;
        }
        child_time += t_child.elapsed();
        let t_verify = Instant::now();
        // Every header whole, every record readable by a reader holding both keys.
        verify_all(dir.path(), &[&from, &to])
            .unwrap_or_else(|k| panic!("after kill {kills} ({wait_us} us): {}", k.as_str()));
        let (n_to, n_from) = (
            headers_under(dir.path(), &to),
            headers_under(dir.path(), &from),
        );
        assert_eq!(n_to + n_from, total, "a header under neither key");
        if n_to > 0 && n_from > 0 {
            mid += 1;
        }
        if n_to == total {
            // Completed (by this child or an earlier one): the new key alone reads
            // everything, the old key alone nothing.
            completed += 1;
            verify_all(dir.path(), &[&to]).unwrap();
            assert_eq!(
                verify_all(dir.path(), &[&from]),
                Err(AtRestErrorKind::UnknownKey)
            );
            std::mem::swap(&mut from, &mut to);
        }
        verify_time += t_verify.elapsed();
    }
    eprintln!("children {child_time:?}, verification {verify_time:?}");
    eprintln!(
        "{kills} kills ({mid} with the store half rotated), {completed} rotations completed, \
         one rotation of {total} headers takes {full:?}"
    );
    // Finally a restart that is left to finish: the new key alone reads everything, the
    // old key alone nothing.
    let out = rotate_child(dir.path(), &from, &to)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_all(dir.path(), &[&to]).unwrap();
    assert_eq!(
        verify_all(dir.path(), &[&from]),
        Err(AtRestErrorKind::UnknownKey)
    );
    assert_eq!(headers_under(dir.path(), &to), total);
    assert!(kills >= 50, "only {kills} kills in 45 s");
    assert!(
        mid >= 10,
        "only {mid} kills landed in the middle of a rotation"
    );
}
