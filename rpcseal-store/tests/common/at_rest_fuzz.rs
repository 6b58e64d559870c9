//! Invariants of the at-rest fuzz target (`fuzz/fuzz_targets/at_rest.rs`), shared with its
//! corpus replay (`rpcseal-store/tests/fuzz_corpus.rs`). Included by path from both.
//!
//! Input: the first byte picks what the rest is (a header, or an asset's data read as a
//! finished asset, as the newest asset, or as a plain asset); the rest goes to the decoder.
//! Checked beyond "no panic": every error is one of the typed classes; a header is accepted
//! only if it is byte for byte the fixture's header (nobody can forge a wrap or a check
//! that verifies); data are accepted only with exactly the fixture's records, in order,
//! from the start (a prefix for the newest asset), and never a byte of anything else.
//! Memory stays bounded because a record's declared length is checked against the input
//! before anything is allocated.
#![allow(dead_code)]

use std::sync::OnceLock;

use rpcseal::at_rest::{self, AssetKey, AssetRef};
use rpcseal::MasterKey;

/// A deterministic stream (SplitMix64) so the fixture and the seed corpus are the same on
/// every run. Fixture only: not a cryptographic generator, whatever the marker trait says.
pub struct FixtureRng(u64);

impl FixtureRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for c in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}
impl rand_core::TryRng for FixtureRng {
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
impl rand_core::TryCryptoRng for FixtureRng {}

pub const ASSET: AssetRef<'static> = AssetRef {
    store: b"fuzz",
    kind: 1,
    id: b"q/0000000000000000",
};

pub struct Fixture {
    pub keys: Vec<MasterKey>,
    pub header: Vec<u8>,
    pub key: AssetKey,
    pub records: Vec<Vec<u8>>,
    pub data: Vec<u8>,
    pub plain_key: AssetKey,
    pub plain_header: Vec<u8>,
    pub plain_data: Vec<u8>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = FixtureRng(20);
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        let mk = MasterKey::from_bytes(&k);
        let (header, key) = at_rest::create_asset_with(&ASSET, Some(&mk), &mut rng).unwrap();
        let (plain_header, plain_key) = at_rest::create_asset_with(&ASSET, None, &mut rng).unwrap();
        let records: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i as u8; i * 7]).collect();
        let (mut data, mut plain_data) = (Vec::new(), Vec::new());
        for (i, r) in records.iter().enumerate() {
            key.seal_record(i as u64, r, &mut data).unwrap();
            plain_key.seal_record(i as u64, r, &mut plain_data).unwrap();
        }
        key.seal_final(records.len() as u64, &mut data);
        plain_key.seal_final(records.len() as u64, &mut plain_data);
        Fixture {
            keys: vec![mk],
            header,
            key,
            records,
            data,
            plain_key,
            plain_header,
            plain_data,
        }
    })
}

/// The target.
pub fn at_rest(input: &[u8]) {
    let Some((&sel, data)) = input.split_first() else {
        return;
    };
    let fx = fixture();
    match sel % 4 {
        0 => {
            let _ = at_rest::inspect_header(data);
            match at_rest::open_asset(data, &ASSET, &fx.keys) {
                Ok(k) => assert!(
                    (k.is_encrypted() && data == fx.header.as_slice())
                        || (!k.is_encrypted() && data == fx.plain_header.as_slice()),
                    "a header that is not the fixture's was accepted"
                ),
                Err(e) => {
                    let _ = e.kind().as_str();
                }
            }
        }
        m => {
            let (key, finished) = match m {
                1 => (&fx.key, true),
                2 => (&fx.key, false),
                _ => (&fx.plain_key, true),
            };
            let mut got = Vec::new();
            let r = key.open_all(data, finished, |i, b| got.push((i, b.to_vec())));
            // Whatever came out, before an error too, is the fixture's records in order.
            for (n, (i, b)) in got.iter().enumerate() {
                assert_eq!(*i, n as u64);
                if m != 3 {
                    assert_eq!(b, &fx.records[n], "an unauthenticated record came out");
                }
            }
            if let Ok(scan) = r {
                assert_eq!(scan.records as usize, got.len());
                assert!(scan.valid_len <= data.len());
                if m != 3 {
                    let full = &fx.data;
                    assert!(full.starts_with(&data[..scan.valid_len]) || scan.finished);
                    if scan.finished {
                        assert_eq!(data, full.as_slice());
                    }
                }
            }
        }
    }
}

/// Seed inputs: the fixture's header and data for each mode, and a few hostile shapes.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let fx = fixture();
    let with = |s: u8, d: &[u8]| [&[s][..], d].concat();
    let mut huge = fx.data.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    vec![
        ("header".into(), with(0, &fx.header)),
        ("plain-header".into(), with(0, &fx.plain_header)),
        ("header-truncated".into(), with(0, &fx.header[..50])),
        ("data-finished".into(), with(1, &fx.data)),
        (
            "data-newest".into(),
            with(2, &fx.data[..fx.data.len() - 60]),
        ),
        ("data-plain".into(), with(3, &fx.plain_data)),
        ("data-plain-as-encrypted".into(), with(1, &fx.plain_data)),
        ("length-4gib".into(), with(1, &huge)),
        ("empty".into(), vec![1]),
    ]
}
