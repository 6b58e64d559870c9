//! What the two loopback benches share (`rpcseal-tower/benches/loopback.rs` and
//! `rpcseal-tonic/benches/loopback.rs`, which includes this file with `#[path]`): the
//! command line, the interleaved rounds, the medians and the table of ratios to plain, and
//! the process's CPU time. Each bench brings its own `case`.

use std::future::Future;
use std::time::Duration;

use rpcseal::Mode;

/// One run of a case: requests per second, median latency, CPU per call in microseconds.
pub type Outcome = (f64, Duration, f64);

/// This process's CPU time (user + system) in microseconds, from `/proc/self/stat` (Linux;
/// `None` elsewhere). Client and server run in this process, so CPU per call is the whole
/// cost of a call, and the load-independent figure on a shared machine.
pub fn cpu_us() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of proc(5), counted from the state (field 3).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks * 10_000)
}

/// Runs plain, MAC and signed `case`s in interleaved rounds (arguments: SECONDS,
/// CONCURRENCY, ROUNDS) and prints each round and the medians with their ratios to plain.
/// `LOOPBACK_CASE=plain|mac|signed` runs that case alone, once (for callgrind); the return
/// value is then `false`.
pub fn run<F, Fut>(title: &str, case: F) -> bool
where
    F: Fn(Option<Mode>, f64, usize) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let conc: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("{title}, {conc} concurrent callers, {secs} s per case");
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    println!("{rounds} rounds, the cases interleaved in each (the machine is shared: the spread is the load)");
    let cases = [
        ("plain", None),
        ("sealed MAC", Some(Mode::Mac)),
        ("sealed signed", Some(Mode::Signed)),
    ];
    // LOOPBACK_CASE=plain|mac|signed runs that case alone, once (for callgrind).
    if let Ok(only) = std::env::var("LOOPBACK_CASE") {
        let mode = match only.as_str() {
            "mac" => Some(Mode::Mac),
            "signed" => Some(Mode::Signed),
            _ => None,
        };
        let (rps, p50, cpu) = rt.block_on(case(mode, secs, conc));
        println!(
            "{only}: {rps:.0}/s p50 {:.0} us cpu/call {cpu:.1} us",
            p50.as_secs_f64() * 1e6
        );
        return false;
    }
    let mut results = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, (name, mode)) in cases.iter().enumerate() {
            let (rps, p50, cpu) = rt.block_on(case(*mode, secs, conc));
            line += &format!(
                " {name} {rps:.0}/s p50 {:.0} us cpu/call {cpu:.1} us;",
                p50.as_secs_f64() * 1e6
            );
            results[i].push((rps, p50, cpu));
        }
        println!("{line}");
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "{:<14} {:>10} {:>10} {:>8} {:>22} {:>12} {:>10}",
        "case (median)", "req/s", "p50 us", "ratio", "ratio per round", "cpu/call us", "cpu ratio"
    );
    let plain_cpu = median(results[0].iter().map(|r| r.2).collect());
    let plain: Vec<f64> = results[0].iter().map(|r| r.0).collect();
    for (i, (name, _)) in cases.iter().enumerate() {
        let rps = median(results[i].iter().map(|r| r.0).collect());
        let p50 = median(results[i].iter().map(|r| r.1.as_secs_f64() * 1e6).collect());
        let per: Vec<String> = results[i]
            .iter()
            .zip(&plain)
            .map(|(r, p)| format!("{:.2}", r.0 / p))
            .collect();
        let cpu = median(results[i].iter().map(|r| r.2).collect());
        println!(
            "{name:<14} {rps:>10.0} {p50:>10.0} {:>8.3} {:>22} {cpu:>12.1} {:>10.3}",
            rps / median(plain.clone()),
            per.join(" "),
            plain_cpu / cpu
        );
    }
    true
}
