//! A fixed amount of record work with no files, for instruction counts under
//! `valgrind --tool=callgrind` (which do not depend on the machine's load):
//! `record_profile <seal|open> <plain|encrypted> <records> [size]`. Seals (or seals and then
//! opens) `records` records of `size` bytes (256 by default) of one asset, in batches of
//! 64 as the store appends them.

use rpcseal::at_rest::{create_asset, AssetRef};
use rpcseal_store::{MasterKey, KIND_SEGMENT};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(op), Some(mode), Some(n)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: record_profile <seal|open> <plain|encrypted> <records> [size]");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("records");
    let size: usize = args.get(4).map_or(256, |s| s.parse().expect("size"));
    let key = MasterKey::generate();
    let asset = AssetRef {
        store: b"bench",
        kind: KIND_SEGMENT,
        id: b"q/0000000000000000",
    };
    let master = (mode == "encrypted").then_some(&key);
    let (_, ak) = create_asset(&asset, master).expect("asset");
    let rec = vec![0x5au8; size];
    let mut data = Vec::with_capacity(n * (size + 40) + 40);
    let mut batch = Vec::new();
    for i in 0..n as u64 {
        if i % 64 == 0 {
            data.extend_from_slice(&batch);
            batch.clear();
        }
        ak.seal_record(i, &rec, &mut batch).expect("seal");
    }
    data.extend_from_slice(&batch);
    ak.seal_final(n as u64, &mut data);
    if op == "open" {
        let mut sum = 0usize;
        let scan = ak
            .open_all(&data, true, |_, b| sum += b.len())
            .expect("open");
        assert_eq!(scan.records as usize, n);
        std::hint::black_box(sum);
    }
    std::hint::black_box(&data);
}
