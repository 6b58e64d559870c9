//! Item 11 of the security review, part 1 (issue 13): decoding a session block allocates
//! for its recipient entries only what its bytes can hold, however many it claims.
//!
//! One test function, so no other test thread allocates while a region is measured.

use std::alloc::System;

use rpcseal::{ErrorKind, Identity, Mode, Opener, Policy, Recipient, Sealer, SealerConfig};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A real one-recipient block whose recipient list claims `n` entries (array 32 header).
fn claiming(block: &[u8], n: u32) -> Vec<u8> {
    assert_eq!(block[0], 0x93, "a block is an array of 3");
    let header_len = match block[1] {
        0xc4 => 2 + usize::from(block[2]),
        0xc5 => 3 + usize::from(u16::from_be_bytes([block[2], block[3]])),
        other => panic!("unexpected header encoding {other:#x}"),
    };
    let list = 1 + header_len;
    assert_eq!(block[list], 0x91, "one recipient");
    let mut out = block[..list].to_vec();
    out.push(0xdd);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&block[list + 1..]);
    out
}

#[test]
fn item_11_a_claimed_recipient_count_allocates_only_what_the_bytes_hold() {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let mut sealer = Sealer::new(
        &alice,
        &[Recipient::from(bob.public())],
        SealerConfig::new(Mode::Signed),
    )
    .unwrap();
    let block = sealer.session_block().unwrap().to_vec();
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().max_recipients(1 << 20))
        .build()
        .unwrap();
    // The decoder already refuses a count larger than the bytes left (one byte per
    // element at least), so the block is padded: 2 MiB of bytes "hold" up to 2 million
    // one-byte elements, but not that many recipient entries of 100 bytes each.
    for n in [10_000u32, 60_000, 1_000_000] {
        let mut forged = claiming(&block, n);
        forged.resize(forged.len() + (2 << 20), 0);
        let region = Region::new(GLOBAL);
        let e = opener.import_session(&forged).unwrap_err();
        let stats = region.change();
        assert!(
            matches!(e.kind(), ErrorKind::Malformed | ErrorKind::LimitExceeded),
            "{e}"
        );
        assert!(
            stats.bytes_allocated < 64 * 1024,
            "claiming {n} recipients allocated {} bytes",
            stats.bytes_allocated
        );
    }
}
