//! Heap allocations per message on the hot path (issue 7): sealing into a reused buffer
//! allocates nothing; opening allocates only its output (the payload and the metadata map).
//!
//! One test function, so no other test thread allocates while a region is measured.

use std::alloc::System;
use std::sync::Arc;

use rpcseal::replay::NoReplayCheck;
use rpcseal::{Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn meta(entries: usize) -> Metadata {
    (0..entries)
        .map(|i| (format!("key{i}"), format!("value{i}")))
        .collect()
}

/// Allocations of the heap the output of `open` owns: the payload (when not empty), and
/// for each metadata entry a B-tree node share plus two strings.
fn output_allocations(payload_len: usize, entries: usize) -> usize {
    let nodes = if entries == 0 { 0 } else { 1 + entries / 12 };
    usize::from(payload_len > 0) + 2 * entries + nodes
}

#[test]
fn hot_path_allocations() {
    for mode in [Mode::Signed, Mode::Mac, Mode::SignOnly] {
        for entries in [0usize, 2] {
            let alice = Identity::generate();
            let bob = Identity::generate();
            let mut sealer = Sealer::new(
                &alice,
                &[Recipient::from(bob.public())],
                SealerConfig::new(mode).inline(Inline::FirstMessage),
            )
            .unwrap();
            let opener = Opener::builder()
                .identity(&bob)
                .trust(alice.public())
                .replay_store(Arc::new(NoReplayCheck))
                .build()
                .unwrap();
            let m = meta(entries);
            let payload = vec![0x5a; 256];
            let first = sealer.seal(&payload, &m).unwrap();
            opener.open(&first).unwrap();
            let mut out = Vec::with_capacity(4096);
            // Warm up: the first seal of a steady state may size the buffer.
            sealer.seal_into(&payload, &m, &mut out).unwrap();

            out.clear();
            let region = Region::new(GLOBAL);
            sealer.seal_into(&payload, &m, &mut out).unwrap();
            let seal = region.change();

            let region = Region::new(GLOBAL);
            let opened = opener.open(&out).unwrap();
            let open = region.change();
            drop(opened);

            println!(
                "{mode}, {entries} metadata entries: seal_into {} allocations, open {} (output: {})",
                seal.allocations,
                open.allocations,
                output_allocations(payload.len(), entries)
            );
            assert_eq!(seal.allocations, 0, "{mode}: seal_into allocates");
            assert_eq!(seal.reallocations, 0, "{mode}: seal_into reallocates");
            assert!(
                open.allocations <= output_allocations(payload.len(), entries),
                "{mode}, {entries} entries: open makes {} allocations",
                open.allocations
            );
        }
    }
}
