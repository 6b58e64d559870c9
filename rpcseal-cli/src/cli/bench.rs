//! `rpcseal bench`: a quick in-process measurement of the ratios the brief aims at, against
//! the floor (the same crates used directly) and the usual hybrid design, in one run.
//!
//! Uses only the library's public API, std and the library's normal dependencies (the
//! criterion benches in `benches/envelope.rs` add the dev-only peers: age, crypto_box).
//! Ratios are rpcseal's time divided by the other's: lower is better, except the
//! `aead_1mib_*` ones, which are rpcseal's throughput over the raw AEAD's. Those are
//! measured as the command-line tool runs (the message hash on a second thread for large
//! payloads, [`super::SEAL_PARALLEL_HASH_FROM`] and [`super::OPEN_PARALLEL_HASH_FROM`]) and,
//! `*_one_thread`, as a library user gets it by default (everything on the caller's thread).

use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use rpcseal::replay::{
    MemoryReplayConfig, MemoryReplayStore, NoReplayCheck, ReplayItem, ReplayStore,
};
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Policy, Recipient, Sealer, SealerConfig};
use rpcseal_store::measure::StoreFigures;

use super::measure::{hpke_seal, Floor, HpkePk, Hybrid, PointerChase, ScatteredSessions};

/// Unix seconds, as the opener's clock reads them.
fn rpcseal_now() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "the system clock is before 1970".to_string())
}

/// Runs the measurements, prints a table (or with `json` one JSON object) on stdout and
/// the progress on stderr.
pub fn run(quick: bool, json: bool) -> ExitCode {
    match measure(quick) {
        Ok(r) => {
            let mut out = std::io::stdout().lock();
            let written = if json {
                writeln!(out, "{}", r.to_json())
            } else {
                write!(out, "{}", r.to_table())
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("\rrpcseal bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything measured, in nanoseconds per operation unless the name says otherwise.
struct Results {
    quick: bool,
    mac_256_roundtrip: f64,
    floor_mac_256_roundtrip: f64,
    hybrid_256_roundtrip: f64,
    signed_256_seal: f64,
    floor_signed_256_seal: f64,
    signed_single_open_per_msg: f64,
    signed_batch_open_per_msg: f64,
    setup_1000: f64,
    hpke_seals_1000: f64,
    replay_check: Option<f64>,
    replay_check_hot: f64,
    memory_latency: f64,
    replay_in_open: ReplayInOpen,
    /// With the message hash on a second thread, as the CLI seals.
    mac_1mib_seal: f64,
    /// Everything on the caller's thread (the library's default).
    mac_1mib_seal_one_thread: f64,
    raw_aead_1mib: f64,
    /// With the message hash on a second thread, as the CLI opens.
    mac_1mib_open: f64,
    mac_1mib_open_one_thread: f64,
    raw_aead_1mib_open: f64,
    overhead_bytes_mac_1to1: usize,
    /// Issue 15, the post-quantum suite 2 (X-Wing wraps): session setup (a new session and
    /// its signed block) to 1 and to 100 recipients, suite 2 and suite 1 timed in turn.
    setup_pq_1: f64,
    setup_classical_1: f64,
    setup_pq_100: f64,
    setup_classical_100: f64,
    /// The steady-state MAC 256 B seal + open in a suite-2 session (symmetric work only,
    /// as in suite 1: `mac_256_roundtrip`), timed in turn with the suite-1 one.
    mac_256_roundtrip_pq: f64,
    mac_256_roundtrip_classical: f64,
    /// Bytes one more recipient adds to a session block (signed mode), suite 2 and suite 1.
    overhead_bytes_pq_per_recipient: usize,
    overhead_bytes_classical_per_recipient: usize,
    /// The at-rest store (rpcseal-store, issue 20): encrypted vs plain, rotation.
    store: StoreFigures,
    avx2_compiled: bool,
}

impl Results {
    fn ratios(&self) -> Vec<(&'static str, f64, &'static str)> {
        vec![
            (
                "mac_256_roundtrip_vs_floor",
                self.mac_256_roundtrip / self.floor_mac_256_roundtrip,
                "<= 1.5",
            ),
            (
                "mac_256_roundtrip_vs_hybrid",
                self.mac_256_roundtrip / self.hybrid_256_roundtrip,
                "<= 0.02 (50x faster)",
            ),
            (
                "signed_256_seal_vs_floor",
                self.signed_256_seal / self.floor_signed_256_seal,
                "<= 1.15",
            ),
            (
                "signed_batch_open_vs_single",
                self.signed_batch_open_per_msg / self.signed_single_open_per_msg,
                "<= 0.65",
            ),
            (
                "setup_1000_vs_hpke",
                self.setup_1000 / self.hpke_seals_1000,
                "<= 1.2",
            ),
            (
                "setup_pq_1_vs_classical",
                self.setup_pq_1 / self.setup_classical_1,
                "(what X-Wing costs over X25519 at setup)",
            ),
            (
                "setup_pq_100_vs_classical",
                self.setup_pq_100 / self.setup_classical_100,
                "(what X-Wing costs over X25519 at setup)",
            ),
            (
                "mac_256_roundtrip_pq_vs_classical",
                self.mac_256_roundtrip_pq / self.mac_256_roundtrip_classical,
                "~1 (per message: symmetric work only)",
            ),
            (
                "aead_1mib_vs_raw",
                self.raw_aead_1mib / self.mac_1mib_seal,
                ">= 0.85 (throughput)",
            ),
            (
                "aead_1mib_vs_raw_one_thread",
                self.raw_aead_1mib / self.mac_1mib_seal_one_thread,
                "(one core: <= AEAD/(AEAD+BLAKE3))",
            ),
            (
                "aead_1mib_open_vs_raw",
                self.raw_aead_1mib_open / self.mac_1mib_open,
                "(throughput)",
            ),
            (
                "aead_1mib_open_vs_raw_one_thread",
                self.raw_aead_1mib_open / self.mac_1mib_open_one_thread,
                "(throughput)",
            ),
            (
                "store_write_256_vs_plain",
                self.store.write_256_vs_plain,
                ">= 0.7 (throughput, no fsync)",
            ),
            (
                "store_read_256_vs_plain",
                self.store.read_256_vs_plain,
                ">= 0.7 (throughput)",
            ),
            (
                "store_write_256_vs_plain_cpu",
                self.store.write_256_vs_plain_cpu,
                "(on-CPU time, load left out)",
            ),
            (
                "store_read_256_vs_plain_cpu",
                self.store.read_256_vs_plain_cpu,
                "(on-CPU time, load left out)",
            ),
            (
                "store_write_16k_vs_plain",
                self.store.write_16k_vs_plain,
                "(throughput, no fsync)",
            ),
            (
                "store_read_16k_vs_plain",
                self.store.read_16k_vs_plain,
                "(throughput)",
            ),
            (
                "store_write_256_fsync_vs_plain",
                self.store.write_256_fsync_vs_plain,
                "(throughput, fdatasync per batch)",
            ),
            (
                "rotation_large_vs_small_payload",
                self.store.rotation_large_vs_small_payload,
                "~1 (per asset, 1 MiB vs 16 KiB assets)",
            ),
        ]
    }

    fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (k, v, _) in self.ratios() {
            s.push_str(&format!("\"{k}\":{},", num(v)));
        }
        s.push_str(&format!(
            "\"replay_check_ns\":{},",
            self.replay_check.map_or("null".into(), num)
        ));
        s.push_str(&format!(
            "\"replay_in_open_ns\":{},\"replay_check_hot_ns\":{},\"memory_latency_ns\":{},",
            num(self.replay_in_open.marginal()),
            num(self.replay_check_hot),
            num(self.memory_latency)
        ));
        s.push_str(&format!(
            "\"overhead_bytes_mac_1to1\":{},",
            self.overhead_bytes_mac_1to1
        ));
        s.push_str(&format!(
            "\"overhead_bytes_pq_per_recipient\":{},\"overhead_bytes_classical_per_recipient\":{},",
            self.overhead_bytes_pq_per_recipient, self.overhead_bytes_classical_per_recipient
        ));
        let raw = [
            ("mac_256_roundtrip_ns", self.mac_256_roundtrip),
            ("floor_mac_256_roundtrip_ns", self.floor_mac_256_roundtrip),
            ("hybrid_256_roundtrip_ns", self.hybrid_256_roundtrip),
            ("signed_256_seal_ns", self.signed_256_seal),
            ("floor_signed_256_seal_ns", self.floor_signed_256_seal),
            ("signed_open_single_ns", self.signed_single_open_per_msg),
            ("signed_open_batch_ns", self.signed_batch_open_per_msg),
            ("setup_1000_ns", self.setup_1000),
            ("hpke_seals_1000_ns", self.hpke_seals_1000),
            ("setup_pq_1_ns", self.setup_pq_1),
            ("setup_classical_1_ns", self.setup_classical_1),
            ("setup_pq_100_ns", self.setup_pq_100),
            ("setup_classical_100_ns", self.setup_classical_100),
            ("mac_256_roundtrip_pq_ns", self.mac_256_roundtrip_pq),
            (
                "mac_256_roundtrip_classical_ns",
                self.mac_256_roundtrip_classical,
            ),
            ("mac_1mib_seal_ns", self.mac_1mib_seal),
            ("mac_1mib_seal_one_thread_ns", self.mac_1mib_seal_one_thread),
            ("raw_aead_1mib_ns", self.raw_aead_1mib),
            ("open_1m_sessions_ns", self.replay_in_open.many),
            ("open_1000_sessions_ns", self.replay_in_open.few),
            ("mac_1mib_open_ns", self.mac_1mib_open),
            ("mac_1mib_open_one_thread_ns", self.mac_1mib_open_one_thread),
            ("raw_aead_1mib_open_ns", self.raw_aead_1mib_open),
        ];
        for (k, v) in raw {
            s.push_str(&format!("\"{k}\":{},", num(v)));
        }
        let store = [
            ("rotation_us_per_asset", self.store.rotation_us_per_asset),
            (
                "rotation_us_per_asset_16k",
                self.store.rotation_us_per_asset_16k,
            ),
            ("rotation_ms_per_gib", self.store.rotation_ms_per_gib),
            ("store_write_256_plain_rps", self.store.write_256_plain_rps),
            (
                "store_write_256_encrypted_rps",
                self.store.write_256_encrypted_rps,
            ),
            ("store_read_256_plain_rps", self.store.read_256_plain_rps),
            (
                "store_read_256_encrypted_rps",
                self.store.read_256_encrypted_rps,
            ),
        ];
        for (k, v) in store {
            s.push_str(&format!("\"{k}\":{},", num(v)));
        }
        s.push_str(&format!(
            "\"rotation_assets\":{},",
            self.store.rotation_assets
        ));
        s.push_str(&format!(
            "\"avx2_compiled\":{},\"quick\":{}}}",
            self.avx2_compiled, self.quick
        ));
        s
    }

    fn to_table(&self) -> String {
        let mut s = format!(
            "rpcseal bench ({} run, AVX2 at compile time: {})\n\n{:<30} {:>10}  {}\n",
            if self.quick { "quick" } else { "full" },
            if self.avx2_compiled { "yes" } else { "no" },
            "ratio (lower is better)",
            "measured",
            "aim"
        );
        for (k, v, aim) in self.ratios() {
            s.push_str(&format!("{k:<32} {v:>10.3}  {aim}\n"));
        }
        s.push_str(&format!(
            "{:<30} {:>10}  < 150 with 1M sessions (check + mark, alone)\n",
            "replay_check_ns",
            self.replay_check
                .map_or("n/a".into(), |v| format!("{v:.0}"))
        ));
        s.push_str(&format!(
            "{:<30} {:>10.0}  < 150 (what 1M sessions add to a 256 B seal+open)\n",
            "replay_in_open_ns",
            self.replay_in_open.marginal()
        ));
        s.push_str(&format!(
            "{:<30} {:>10.0}  < 150 (1M tracked, traffic on 1000 of them)\n",
            "replay_check_hot_ns", self.replay_check_hot
        ));
        s.push_str(&format!(
            "{:<30} {:>10.0}  (floor: one dependent read of a cold cache line)\n",
            "memory_latency_ns", self.memory_latency
        ));
        s.push_str(&format!(
            "{:<30} {:>10}  <= 100\n",
            "overhead_bytes_mac_1to1", self.overhead_bytes_mac_1to1
        ));
        s.push_str(&format!(
            "{:<30} {:>10}  (per recipient in a session block; suite 1: {})\n\n",
            "overhead_bytes_pq_per_recipient",
            self.overhead_bytes_pq_per_recipient,
            self.overhead_bytes_classical_per_recipient
        ));
        let us = |ns: f64| format!("{:.2} us", ns / 1e3);
        let rows = [
            ("MAC 256 B seal+open", self.mac_256_roundtrip),
            ("  floor (same crates)", self.floor_mac_256_roundtrip),
            ("  hybrid HPKE+Ed25519", self.hybrid_256_roundtrip),
            ("signed 256 B seal", self.signed_256_seal),
            ("  floor (AEAD+hash+sign)", self.floor_signed_256_seal),
            ("signed open, per message", self.signed_single_open_per_msg),
            ("  in a batch of 64", self.signed_batch_open_per_msg),
            ("session to 1000 recipients", self.setup_1000),
            ("  1000 HPKE seals", self.hpke_seals_1000),
            ("PQ session to 1 recipient", self.setup_pq_1),
            ("  suite 1, 1 recipient", self.setup_classical_1),
            ("PQ session to 100 recipients", self.setup_pq_100),
            ("  suite 1, 100 recipients", self.setup_classical_100),
            ("MAC 256 B seal+open, PQ session", self.mac_256_roundtrip_pq),
            ("  suite-1 session", self.mac_256_roundtrip_classical),
            ("MAC 1 MiB seal, 2 threads", self.mac_1mib_seal),
            ("MAC 1 MiB seal, 1 thread", self.mac_1mib_seal_one_thread),
            ("  raw ChaCha20-Poly1305 1 MiB", self.raw_aead_1mib),
            ("MAC 256 B, 1M sessions tracked", self.replay_in_open.many),
            ("  1000 sessions tracked", self.replay_in_open.few),
            ("MAC 1 MiB open, 2 threads", self.mac_1mib_open),
            ("MAC 1 MiB open, 1 thread", self.mac_1mib_open_one_thread),
            ("  raw decryption 1 MiB", self.raw_aead_1mib_open),
        ];
        for (k, v) in rows {
            s.push_str(&format!("{k:<30} {:>12}\n", us(v)));
        }
        let st = &self.store;
        s.push_str(&format!(
            "\nat-rest store, 256 B records in batches of 64, no fsync (records/s):\n\
             {:<30} {:>12.0}\n{:<30} {:>12.0}\n{:<30} {:>12.0}\n{:<30} {:>12.0}\n\
             rotation of {} assets: {:.0} us per asset (1 MiB each), {:.0} us per asset \
             (16 KiB each), {:.0} ms per GiB of 1 MiB assets\n",
            "write, plain",
            st.write_256_plain_rps,
            "write, encrypted",
            st.write_256_encrypted_rps,
            "read, plain",
            st.read_256_plain_rps,
            "read, encrypted",
            st.read_256_encrypted_rps,
            st.rotation_assets,
            st.rotation_us_per_asset,
            st.rotation_us_per_asset_16k,
            st.rotation_ms_per_gib,
        ));
        if self.replay_check.is_none() {
            s.push_str("\nreplay_check_ns: this build has no in-memory replay store to measure.\n");
        }
        if !self.avx2_compiled {
            s.push_str(
                "\nBuilt without AVX2 at compile time: see README.perf.md for the faster build.\n",
            );
        }
        s
    }
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

/// Progress on stderr: one line, rewritten.
struct Progress {
    step: usize,
    total: usize,
}

impl Progress {
    fn next(&mut self, what: &str) {
        self.step += 1;
        eprint!("\r\x1b[2K[{}/{}] {what}", self.step, self.total);
        let _ = std::io::stderr().flush();
    }
    fn done(&self) {
        eprint!("\r\x1b[2K");
        let _ = std::io::stderr().flush();
    }
}

/// Nanoseconds per call of `f`: the median of `rounds` timed batches after a warm-up,
/// each batch sized to take about `slice`.
fn time<F: FnMut()>(slice: Duration, rounds: usize, mut f: F) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < slice / 2 || calls == 0 {
        f();
        calls += 1;
    }
    let per = start.elapsed().as_secs_f64() / calls as f64;
    let batch = ((slice.as_secs_f64() / per) as u64).max(1);
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / batch as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// A MAC-mode 256 B seal + open through an opener whose replay store tracks a million
/// sessions, against the same with a thousand (measure.rs): the difference is what
/// the replay check costs per message when its state is not in the CPU caches.
struct ReplayInOpen {
    many: f64,
    few: f64,
}

impl ReplayInOpen {
    fn marginal(&self) -> f64 {
        self.many - self.few
    }
}

/// [`time`] for several closures at once, for ratios on a machine whose load changes: each
/// round times a batch of every closure in turn, and each gets the median of its rounds.
fn time_interleaved(slice: Duration, rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let batches: Vec<u64> = fs
        .iter_mut()
        .map(|f| {
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed() < slice / 2 || calls == 0 {
                f();
                calls += 1;
            }
            let per = start.elapsed().as_secs_f64() / calls as f64;
            ((slice.as_secs_f64() / per) as u64).max(1)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); fs.len()];
    for _ in 0..rounds {
        for ((f, &batch), out) in fs.iter_mut().zip(&batches).zip(&mut samples) {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            out.push(t.elapsed().as_secs_f64() * 1e9 / batch as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        })
        .collect()
}

fn meta() -> Metadata {
    let mut m = Metadata::new();
    m.insert("method".into(), "inventory.get".into());
    m
}

fn pair(
    mode: Mode,
    rcpts: &[Recipient],
    bob: &Identity,
    alice: &Identity,
) -> Result<(Sealer, Opener), String> {
    pair_with(mode, rcpts, bob, alice, Arc::new(NoReplayCheck), None, None)
}

/// [`pair`] with the given replay store and the sealer's and the opener's
/// `parallel_hash_from`.
fn pair_with(
    mode: Mode,
    rcpts: &[Recipient],
    bob: &Identity,
    alice: &Identity,
    store: Arc<dyn ReplayStore>,
    seal_parallel: Option<usize>,
    open_parallel: Option<usize>,
) -> Result<(Sealer, Opener), String> {
    let mut sealer = Sealer::new(
        alice,
        rcpts,
        SealerConfig::new(mode)
            .inline(Inline::FirstMessage)
            .parallel_hash_from(seal_parallel),
    )
    .map_err(|e| e.to_string())?;
    let opener = Opener::builder()
        .identity(bob)
        .trust(alice.public())
        .replay_store(store)
        .policy(Policy::default().parallel_hash_from(open_parallel))
        .build()
        .map_err(|e| e.to_string())?;
    let first = sealer.seal(b"hello", &meta()).map_err(|e| e.to_string())?;
    opener.open(&first).map_err(|e| e.to_string())?;
    Ok((sealer, opener))
}

/// Sessions tracked by the replay store while its check is timed (the brief's aim: under
/// 150 ns per message with a million sessions in memory).
const REPLAY_SESSIONS: u64 = 1_000_000;

/// The replay store to measure: the in-memory store, sized for [`REPLAY_SESSIONS`].
fn replay_store_under_test() -> Option<Arc<dyn ReplayStore>> {
    Some(Arc::new(MemoryReplayStore::new(MemoryReplayConfig {
        max_sessions: 1 << 20,
        ..MemoryReplayConfig::default()
    })))
}

fn measure(quick: bool) -> Result<Results, String> {
    let (slice, rounds) = if quick {
        (Duration::from_millis(40), 5)
    } else {
        (Duration::from_millis(200), 9)
    };
    let mut p = Progress { step: 0, total: 16 };
    let e = |e: rpcseal::Misuse| e.to_string();
    let alice = Identity::generate();
    let bob = Identity::generate();
    let to_bob = [Recipient::from(bob.public())];
    let payload = vec![0x5a; 256];
    let m = meta();
    let mut out = Vec::with_capacity(4096);

    p.next("MAC-mode 256 B seal + open");
    let (mut sealer, opener) = pair(Mode::Mac, &to_bob, &bob, &alice)?;
    let mac_256_roundtrip = time(slice, rounds, || {
        out.clear();
        sealer.seal_into(&payload, &m, &mut out).expect("sealable");
        black_box(opener.open(&out).expect("opens"));
    });

    p.next("floor: 256 B seal + open with the crates");
    let mut floor = Floor::new(&m);
    let floor_mac_256_roundtrip = time(slice, rounds, || {
        out.clear();
        floor.seal_mac(&payload, &mut out);
        black_box(floor.open_mac(&out, payload.len()).expect("opens"));
    });

    p.next("hybrid: HPKE seal + Ed25519 sign, open + verify");
    let hybrid = Hybrid::new();
    let hybrid_256_roundtrip = time(slice, rounds, || {
        black_box(hybrid.roundtrip(&payload));
    });

    p.next("signed 256 B seal, and its floor");
    let (mut signed_sealer, signed_opener) = pair(Mode::Signed, &to_bob, &bob, &alice)?;
    let signed_256_seal = time(slice, rounds, || {
        out.clear();
        signed_sealer
            .seal_into(&payload, &m, &mut out)
            .expect("sealable");
        black_box(&out);
    });
    let floor_signed_256_seal = time(slice, rounds, || {
        out.clear();
        floor.seal_signed(&payload, &mut out);
        black_box(&out);
    });

    p.next("signed open: one by one and in a batch of 64");
    let batch: Vec<Vec<u8>> = (0..64)
        .map(|_| signed_sealer.seal(&payload, &m))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let signed_single_open_per_msg = time(slice, rounds, || {
        for r in &refs {
            black_box(signed_opener.open(r).expect("opens"));
        }
    }) / 64.0;
    let signed_batch_open_per_msg = time(slice, rounds, || {
        black_box(signed_opener.open_batch(&refs));
    }) / 64.0;

    p.next("session setup to 1000 recipients");
    let many: Vec<Recipient> = (0..1000)
        .map(|_| Recipient::from(Identity::generate().public()))
        .collect();
    let mut big = Sealer::new(&alice, &many, SealerConfig::new(Mode::Signed)).map_err(e)?;
    let setup_rounds = if quick { 3 } else { 5 };
    let setup_1000 = time(Duration::ZERO, setup_rounds, || {
        big.rotate();
        black_box(big.session_block().expect("creates").len());
    });
    p.next("1000 HPKE seals");
    let pks: Vec<HpkePk> = (0..1000).map(|_| Hybrid::keypair().1).collect();
    let hpke_seals_1000 = time(Duration::ZERO, setup_rounds, || {
        for pk in &pks {
            black_box(hpke_seal(pk, &[0u8; 36], &[0u8; 32]));
        }
    });

    p.next("post-quantum suite 2: session setup to 1 and 100 recipients");
    // The same recipients, with and without their X-Wing keys: suite 2 and suite 1.
    let pq_people: Vec<Identity> = (0..100)
        .map(|_| Identity::generate_post_quantum())
        .collect();
    let pq_all: Vec<Recipient> = pq_people
        .iter()
        .map(|i| Recipient::from(i.public()))
        .collect();
    let classical_all: Vec<Recipient> = pq_people
        .iter()
        .map(|i| Recipient::from(&i.public().classical()))
        .collect();
    let setup_sealer =
        |to: &[Recipient]| Sealer::new(&alice, to, SealerConfig::new(Mode::Signed)).map_err(e);
    let mut pq1 = setup_sealer(&pq_all[..1])?;
    let mut c1 = setup_sealer(&classical_all[..1])?;
    let mut pq100 = setup_sealer(&pq_all)?;
    let mut c100 = setup_sealer(&classical_all)?;
    if pq1.suite().id() != 2 || c1.suite().id() != 1 {
        return Err("the post-quantum sealer did not choose suite 2".into());
    }
    let setup = |s: &mut Sealer| {
        s.rotate();
        black_box(s.session_block().expect("creates").len());
    };
    let small = time_interleaved(
        slice,
        rounds,
        &mut [&mut || setup(&mut pq1), &mut || setup(&mut c1)],
    );
    let (setup_pq_1, setup_classical_1) = (small[0], small[1]);
    let large = time_interleaved(
        if quick { slice } else { slice * 2 },
        rounds,
        &mut [&mut || setup(&mut pq100), &mut || setup(&mut c100)],
    );
    let (setup_pq_100, setup_classical_100) = (large[0], large[1]);
    let per_recipient = |one: &mut Sealer, many: &mut Sealer| -> Result<usize, String> {
        let a = one.session_block().map_err(e)?.len();
        let b = many.session_block().map_err(e)?.len();
        Ok((b - a) / 99)
    };
    let overhead_bytes_pq_per_recipient = per_recipient(&mut pq1, &mut pq100)?;
    let overhead_bytes_classical_per_recipient = per_recipient(&mut c1, &mut c100)?;

    p.next("post-quantum suite 2: per-message cost (MAC 256 B seal + open)");
    let bob_pq = &pq_people[0];
    let (mut pq_sealer, pq_opener) = pair(Mode::Mac, &pq_all[..1], bob_pq, &alice)?;
    let (mut c_sealer, c_opener) = pair(Mode::Mac, &classical_all[..1], bob_pq, &alice)?;
    let mut out2 = Vec::with_capacity(4096);
    let per_message = time_interleaved(
        slice,
        rounds,
        &mut [
            &mut || {
                out.clear();
                pq_sealer
                    .seal_into(&payload, &m, &mut out)
                    .expect("sealable");
                black_box(pq_opener.open(&out).expect("opens"));
            },
            &mut || {
                out2.clear();
                c_sealer
                    .seal_into(&payload, &m, &mut out2)
                    .expect("sealable");
                black_box(c_opener.open(&out2).expect("opens"));
            },
        ],
    );
    let (mac_256_roundtrip_pq, mac_256_roundtrip_classical) = (per_message[0], per_message[1]);

    p.next("replay check");
    const NOW: u64 = 1_800_000_000;
    let item = ReplayItem {
        sender: [1; 16],
        session_id: [0; 16],
        seq: 0,
        nonce: [0; 16],
        timestamp: NOW,
        expires_at: NOW + 3600,
        one_shot: false,
    };
    // What the opener does per message: the read-only check, then check-and-mark, sequence
    // numbers in order. `replay_check`: each message on another of the million tracked
    // sessions (its state is not in the CPU caches); `replay_check_hot`: a million
    // tracked, traffic on a thousand of them.
    let per_message = |store: &dyn ReplayStore| {
        black_box(store.check(&item, NOW)).expect("fresh");
        black_box(store.check_and_mark(&item, NOW)).expect("fresh");
    };
    let (replay_check, replay_check_hot) = match replay_store_under_test() {
        None => (None, f64::NAN),
        Some(inner) => {
            let cold = ScatteredSessions::new(inner.clone(), REPLAY_SESSIONS);
            cold.preload(NOW, NOW + 3600).map_err(|e| e.to_string())?;
            let cold_ns = time(slice, rounds, || per_message(&cold));
            let hot = ScatteredSessions::new(inner, 1000).with_sender(0x5a);
            hot.preload(NOW, NOW + 3600).map_err(|e| e.to_string())?;
            let hot_ns = time(slice, rounds, || per_message(&hot));
            (Some(cold_ns), hot_ns)
        }
    };

    p.next("memory latency floor");
    let memory_latency = {
        let mut chase = PointerChase::new(256 << 20);
        const HOPS: usize = 10_000;
        time(slice, rounds, || {
            black_box(chase.walk(HOPS));
        }) / HOPS as f64
    };

    p.next("replay check inside open: 1M sessions tracked vs 1000");
    let replay_in_open = {
        let mut per = [0.0f64; 2];
        for (slot, sessions) in [(0usize, REPLAY_SESSIONS), (1, 1000)] {
            let now = rpcseal_now()?;
            let store = ScatteredSessions::new(
                MemoryReplayStore::new(MemoryReplayConfig {
                    max_sessions: 1 << 20,
                    ..MemoryReplayConfig::default()
                }),
                sessions,
            );
            store
                .preload(now.saturating_sub(60), now + 86_400)
                .map_err(|e| e.to_string())?;
            let (mut sealer, opener) = pair_with(
                Mode::Mac,
                &to_bob,
                &bob,
                &alice,
                Arc::new(store),
                None,
                None,
            )?;
            per[slot] = time(slice, rounds, || {
                out.clear();
                sealer.seal_into(&payload, &m, &mut out).expect("sealable");
                black_box(opener.open(&out).expect("opens"));
            });
        }
        ReplayInOpen {
            many: per[0],
            few: per[1],
        }
    };

    p.next("1 MiB: MAC-mode seal, 2 threads and 1, and the raw AEAD");
    let big_payload = vec![0x5a; 1 << 20];
    let (mut par_sealer, par_opener) = pair_with(
        Mode::Mac,
        &to_bob,
        &bob,
        &alice,
        Arc::new(NoReplayCheck),
        Some(super::SEAL_PARALLEL_HASH_FROM),
        Some(super::OPEN_PARALLEL_HASH_FROM),
    )?;
    let raw = ChaCha20Poly1305::new(&[3u8; 32].into());
    let mut buf = big_payload.clone();
    let mut seq = 0u64;
    let big_slice = slice * 2;
    let mut par_out = Vec::with_capacity((1 << 20) + 4096);
    let mut one_out = Vec::with_capacity((1 << 20) + 4096);
    let seal_times = time_interleaved(
        big_slice,
        rounds,
        &mut [
            &mut || {
                par_out.clear();
                par_sealer
                    .seal_into(&big_payload, &m, &mut par_out)
                    .expect("sealable");
                black_box(&par_out);
            },
            &mut || {
                one_out.clear();
                sealer
                    .seal_into(&big_payload, &m, &mut one_out)
                    .expect("sealable");
                black_box(&one_out);
            },
            &mut || {
                seq += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&seq.to_be_bytes());
                black_box(
                    raw.encrypt_inout_detached(&n.into(), b"", buf.as_mut_slice().into())
                        .expect("1 MiB"),
                );
            },
        ],
    );
    let (mac_1mib_seal, mac_1mib_seal_one_thread, raw_aead_1mib) =
        (seal_times[0], seal_times[1], seal_times[2]);

    p.next("1 MiB: MAC-mode open, 2 threads and 1, and the raw AEAD");
    let big_env = par_sealer.seal(&big_payload, &m).map_err(e)?;
    // The one-thread opener meets this session here (the other opened its first message).
    opener
        .import_session(par_sealer.session_block().map_err(e)?)
        .map_err(|e| e.to_string())?;
    // The raw decryption, in place, of a buffer that must be ciphertext again for the
    // next round: decrypting the plaintext (as if it were ciphertext, with its own tag)
    // gives the ciphertext back, so the rounds alternate between two valid inputs.
    let n = [0u8; 12];
    let mut buf = big_payload.clone();
    let tag_ct = raw
        .encrypt_inout_detached(&n.into(), b"", buf.as_mut_slice().into())
        .map_err(|_| "1 MiB")?;
    let mut back = buf.clone();
    let tag_pt = raw
        .encrypt_inout_detached(&n.into(), b"", back.as_mut_slice().into())
        .map_err(|_| "1 MiB")?;
    let mut holds_ct = true;
    let open_times = time_interleaved(
        big_slice,
        rounds,
        &mut [
            &mut || {
                black_box(par_opener.open(&big_env).expect("opens"));
            },
            &mut || {
                black_box(opener.open(&big_env).expect("opens"));
            },
            &mut || {
                let tag = if holds_ct { &tag_ct } else { &tag_pt };
                raw.decrypt_inout_detached(&n.into(), b"", buf.as_mut_slice().into(), tag)
                    .expect("valid");
                holds_ct = !holds_ct;
                black_box(&buf);
            },
        ],
    );
    let (mac_1mib_open, mac_1mib_open_one_thread, raw_aead_1mib_open) =
        (open_times[0], open_times[1], open_times[2]);

    p.next("wire overhead");
    let (mut s1, _) = pair(Mode::Mac, &to_bob, &bob, &alice)?;
    // The pair already sealed the first message (which carried the block): this is the
    // second, by reference, with no metadata.
    let env = s1.seal(&payload, &Metadata::new()).map_err(e)?;
    let overhead_bytes_mac_1to1 = env.len() - payload.len();

    p.next("at-rest store: encrypted vs plain, rotation");
    let tmp = std::env::temp_dir().join(format!("rpcseal-bench-store-{}", std::process::id()));
    let store = rpcseal_store::measure::run(&tmp, quick).map_err(|e| format!("store: {e}"))?;
    p.done();

    Ok(Results {
        quick,
        mac_256_roundtrip,
        floor_mac_256_roundtrip,
        hybrid_256_roundtrip,
        signed_256_seal,
        floor_signed_256_seal,
        signed_single_open_per_msg,
        signed_batch_open_per_msg,
        setup_1000,
        hpke_seals_1000,
        replay_check,
        replay_check_hot,
        memory_latency,
        replay_in_open,
        mac_1mib_seal,
        mac_1mib_seal_one_thread,
        raw_aead_1mib,
        mac_1mib_open,
        mac_1mib_open_one_thread,
        raw_aead_1mib_open,
        overhead_bytes_mac_1to1,
        setup_pq_1,
        setup_classical_1,
        setup_pq_100,
        setup_classical_100,
        mac_256_roundtrip_pq,
        mac_256_roundtrip_classical,
        overhead_bytes_pq_per_recipient,
        overhead_bytes_classical_per_recipient,
        store,
        avx2_compiled: cfg!(target_feature = "avx2"),
    })
}
