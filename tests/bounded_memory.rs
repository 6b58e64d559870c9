//! Memory stays bounded on hostile input (spec §9): length prefixes claiming gigabytes,
//! deep nesting, huge recipient lists and huge metadata cost no more than a small multiple
//! of the input's own size. A counting global allocator measures the peak bytes allocated
//! by the thread doing the failed open.

// A `GlobalAlloc` impl needs `unsafe`; this file is the only place in the package that
// has any, and it only forwards to the system allocator while counting.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ed25519_dalek::SigningKey;
use rpcseal::forge::{self, Auth, HeaderSpec, MessageSpec};
use rpcseal::{ErrorKind, Identity, KeyId, Metadata, Mode, Opener, Policy};

/// Counts bytes allocated per thread (tests run in parallel threads: a per-thread count is
/// not disturbed by the others).
struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    // `try_with`: the allocator may run while a thread's locals are being torn down.
    let _ = CURRENT.try_with(|c| {
        let v = c.get() + n;
        c.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated on this thread while `f` runs, above what was live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

const T0: u64 = 1_800_000_000;

struct World {
    alice: Identity,
    bob: Identity,
    opener: Opener,
}

fn world() -> World {
    let alice = Identity::from_parts(&[1; 32], &[2; 32]);
    let bob = Identity::from_parts(&[3; 32], &[4; 32]);
    let opener = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .policy(Policy::default().max_recipients(4096))
        .build()
        .unwrap();
    World { alice, bob, opener }
}

/// Opens `input` (which must fail with `kind`) and checks the peak allocation against a
/// small multiple of the input's size plus a constant for error messages and bookkeeping.
fn assert_bounded(w: &World, name: &str, input: &[u8], kind: ErrorKind) {
    let (r, peak) = peak_during(|| w.opener.open_at(input, T0));
    let e = r.expect_err(name);
    assert_eq!(e.kind(), kind, "{name}: {e}");
    let bound = 2 * input.len() + 64 * 1024;
    assert!(
        peak <= bound,
        "{name}: a failed open of {} bytes peaked at {peak} bytes (bound {bound})",
        input.len()
    );
    println!("{name}: {} input bytes, peak {peak} bytes", input.len());
}

/// The start of an envelope up to (not including) field 3, the inline block.
fn prefix() -> Vec<u8> {
    let mut v = vec![0x9a, 0x03, 0x01, 0xc4, 0x10];
    v.extend_from_slice(&[0x11; 16]);
    v
}

/// The start of an envelope up to (not including) field 7, the metadata.
fn prefix_to_metadata() -> Vec<u8> {
    let mut v = prefix();
    v.push(0xc0); // no inline block
    v.push(0x00); // seq
    v.extend_from_slice(&[0xce, 0x6b, 0x49, 0xd2, 0x00]); // timestamp
    v.extend_from_slice(&[0xc4, 0x10]);
    v.extend_from_slice(&[0x22; 16]); // nonce
    v
}

fn padded(mut v: Vec<u8>, to: usize) -> Vec<u8> {
    v.resize(to, 0x00);
    v
}

const MIB: usize = 1024 * 1024;

#[test]
fn length_prefixes_claiming_gigabytes_allocate_nothing_of_the_claim() {
    let w = world();
    let mut bin32 = prefix();
    bin32.extend_from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
    assert_bounded(
        &w,
        "bin32 block of 4 GiB",
        &padded(bin32, MIB),
        ErrorKind::Malformed,
    );

    let mut str32 = prefix_to_metadata();
    str32.extend_from_slice(&[0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0]);
    assert_bounded(
        &w,
        "str32 metadata key of 4 GiB",
        &padded(str32, MIB),
        ErrorKind::Malformed,
    );

    let array32 = vec![0xdd, 0xff, 0xff, 0xff, 0xff];
    assert_bounded(
        &w,
        "array32 envelope of 2^32 fields",
        &padded(array32, MIB),
        ErrorKind::Malformed,
    );

    let mut map32 = prefix_to_metadata();
    map32.extend_from_slice(&[0xdf, 0xff, 0xff, 0xff, 0xff]);
    assert_bounded(
        &w,
        "map32 metadata of 2^32 pairs",
        &padded(map32, MIB),
        ErrorKind::Malformed,
    );

    // A claim the input could hold (100 000 pairs in 1 MiB) is refused by the entry limit
    // before anything is sized by it.
    let mut map_many = prefix_to_metadata();
    map_many.extend_from_slice(&[0xdf, 0x00, 0x01, 0x86, 0xa0]);
    assert_bounded(
        &w,
        "map32 metadata of 100000 pairs",
        &padded(map_many, MIB),
        ErrorKind::LimitExceeded,
    );
}

#[test]
fn deep_nesting_costs_nothing() {
    let w = world();
    // A megabyte of one-element arrays nested in one another: the format has a fixed layout
    // and the decoder never recurses, so this is a type error at the second byte.
    assert_bounded(
        &w,
        "1 MiB of nested arrays",
        &vec![0x91; MIB],
        ErrorKind::Malformed,
    );
    let mut nested_meta = prefix_to_metadata();
    nested_meta.push(0x81);
    nested_meta.extend(std::iter::repeat_n(0x81, 500_000));
    assert_bounded(
        &w,
        "nested maps in metadata",
        &nested_meta,
        ErrorKind::Malformed,
    );
}

fn header(w: &World) -> Vec<u8> {
    let sk = SigningKey::from_bytes(&[9; 32]);
    HeaderSpec::honest(
        Mode::Signed,
        &w.alice,
        [5; 16],
        (T0 - 10, T0 + 3600),
        Some(&sk),
        Some(&[6; 32]),
    )
    .encode()
}

/// An envelope carrying `block` inline, with a junk signature (never reached).
fn envelope_with_block(block: &[u8]) -> Vec<u8> {
    let meta = Metadata::new();
    let (_, hh) = forge::block_header(block);
    forge::message(&MessageSpec {
        version: 3,
        suite: 1,
        session_ref: forge::session_ref(&hh),
        header_hash: [0; 32],
        block: Some(block),
        seq: 0,
        timestamp: T0,
        nonce: [0; 16],
        metadata: &meta,
        payload: b"x",
        ek: None,
        auth: Auth::Raw(&[0; 64]),
    })
}

fn entries(n: usize) -> Vec<forge::EntrySpec> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (KeyId::from_bytes(id), [7; 32], vec![0; 48])
        })
        .collect()
}

#[test]
fn huge_recipient_lists_are_refused_or_bounded() {
    let w = world();
    // A block whose list claims 1 000 000 recipients, with a megabyte of input behind the
    // claim so that the count alone does not give it away.
    let mut block = vec![0x93];
    let h = header(&w);
    block.extend_from_slice(&[0xc4, h.len() as u8]);
    block.extend_from_slice(&h);
    block.extend_from_slice(&[0xdd, 0x00, 0x0f, 0x42, 0x40]);
    let block = padded(block, 1_100_000);
    assert_bounded(
        &w,
        "block claiming 1000000 recipients",
        &envelope_with_block(&block),
        ErrorKind::LimitExceeded,
    );
    let (r, peak) = peak_during(|| w.opener.import_session_at(&block, T0));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::LimitExceeded);
    assert!(peak < 64 * 1024, "import peaked at {peak}");

    // 5000 real entries against a limit of 4096.
    let big = forge::block(&w.alice, &h, &entries(5000));
    assert_bounded(
        &w,
        "block listing 5000 recipients",
        &envelope_with_block(&big),
        ErrorKind::LimitExceeded,
    );
    let (r, peak) = peak_during(|| w.opener.import_session_at(&big, T0));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::LimitExceeded);
    assert!(peak < 64 * 1024, "import peaked at {peak}");

    // 4096, at the limit: decoded (bounded by the input's size), then not for us.
    let at_limit = forge::block(&w.alice, &h, &entries(4096));
    assert_bounded(
        &w,
        "block listing 4096 recipients",
        &envelope_with_block(&at_limit),
        ErrorKind::NotForUs,
    );
    let _ = &w.bob;
}

#[test]
fn huge_metadata_and_bodies_are_bounded() {
    let w = world();
    let meta = |entries: usize, value: usize| -> Metadata {
        (0..entries)
            .map(|i| (format!("k{i:05}"), "v".repeat(value)))
            .collect()
    };
    let env = |m: &Metadata, payload: &[u8]| {
        forge::message(&MessageSpec {
            version: 3,
            suite: 1,
            session_ref: [0; 16],
            header_hash: [0; 32],
            block: None,
            seq: 0,
            timestamp: T0,
            nonce: [0; 16],
            metadata: m,
            payload,
            ek: None,
            auth: Auth::Raw(&[0; 64]),
        })
    };
    assert_bounded(
        &w,
        "65 metadata entries",
        &env(&meta(65, 1), b""),
        ErrorKind::LimitExceeded,
    );
    assert_bounded(
        &w,
        "1 MiB of metadata",
        &env(&meta(16, 65536), b""),
        ErrorKind::LimitExceeded,
    );
    assert_bounded(
        &w,
        "10000 metadata entries",
        &env(&meta(10_000, 100), b""),
        ErrorKind::LimitExceeded,
    );
    // An 8 MiB body of a session nobody knows: refused without copying the body.
    assert_bounded(
        &w,
        "8 MiB body",
        &env(&Metadata::new(), &vec![0; 8 * MIB]),
        ErrorKind::UnknownSession,
    );
    // Over the receiver's envelope limit: refused on its length alone.
    assert_bounded(
        &w,
        "18 MiB envelope",
        &vec![0; 18 * MIB],
        ErrorKind::LimitExceeded,
    );
}
