//! Generator and verifier of the at-rest test vectors (`vectors/at-rest/`,
//! spec/at-rest.md). Deterministic: the randomness is a BLAKE3 stream keyed by a fixed
//! label, so regenerating gives the checked-in files byte for byte. Hidden: for the
//! project's tests and `cargo run -p rpcseal-store -- vectors generate`.

use std::path::{Path, PathBuf};

use rpcseal::at_rest::{
    self, AssetRef, AtRestErrorKind, CTX_ASSET_BIND, CTX_ASSET_KEY_ID, CTX_HEADER_CHECK, CTX_KEK,
};
use rpcseal::{KeyId, MasterKey};
use serde_json::{json, Map, Value};

/// Deterministic bytes for the vectors: the BLAKE3 XOF of a fixed key and label.
struct VectorRng(blake3::OutputReader);

impl VectorRng {
    fn new(label: &str) -> VectorRng {
        let mut h = blake3::Hasher::new_derive_key("rpcseal at-rest test vectors (not secret)");
        h.update(label.as_bytes());
        VectorRng(h.finalize_xof())
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.0.fill(&mut b);
        b
    }
}

impl VectorRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest)
    }
}
impl rand_core::TryRng for VectorRng {
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

// Test vectors only: the stream is deterministic on purpose.
impl rand_core::TryCryptoRng for VectorRng {}

const STORE: &[u8] = b"vectors";
const ASSET_ID: &[u8] = b"orders/0000000000000003";
const KIND: u8 = 1;

fn asset() -> AssetRef<'static> {
    AssetRef {
        store: STORE,
        kind: KIND,
        id: ASSET_ID,
    }
}

fn ctx(a: &AssetRef<'_>) -> Vec<u8> {
    let mut c = vec![a.store.len() as u8];
    c.extend_from_slice(a.store);
    c.push(a.kind);
    c.push(a.id.len() as u8);
    c.extend_from_slice(a.id);
    c
}

fn h(ctx: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hs = blake3::Hasher::new_derive_key(ctx);
    for p in parts {
        hs.update(p);
    }
    *hs.finalize().as_bytes()
}

/// Recomputes a header's check after a mutation (so the mutation reaches later steps).
fn recheck(header: &mut [u8]) {
    let n = header.len();
    let c = h(CTX_HEADER_CHECK, &[&header[..n - 16]]);
    header[n - 16..].copy_from_slice(&c[..16]);
}

struct Keys {
    a: MasterKey,
    a_bytes: [u8; 32],
    b: MasterKey,
    /// Another key that claims A's id.
    a_impostor: MasterKey,
}

fn keys() -> Keys {
    let mut rng = VectorRng::new("master keys");
    let a_bytes = rng.bytes32();
    let a = MasterKey::from_bytes(&a_bytes);
    let b = MasterKey::from_bytes(&rng.bytes32());
    let a_impostor = MasterKey::with_id(a.key_id(), &rng.bytes32());
    Keys {
        a,
        a_bytes,
        b,
        a_impostor,
    }
}

/// One case: a reader with `keys` opens `header` as `asset`, then the data.
struct Case {
    name: String,
    description: String,
    keys: Vec<MasterKey>,
    store: Vec<u8>,
    asset_id: Vec<u8>,
    require_final: bool,
    require_encrypted: bool,
    header: Vec<u8>,
    data: Vec<u8>,
    expect: Result<Vec<Vec<u8>>, AtRestErrorKind>,
    rule: &'static str,
    extra: Map<String, Value>,
}

impl Case {
    fn new(name: &str, description: &str, keys: &[&MasterKey], header: &[u8], data: &[u8]) -> Case {
        Case {
            name: name.into(),
            description: description.into(),
            keys: keys.iter().map(|k| (*k).clone()).collect(),
            store: STORE.to_vec(),
            asset_id: ASSET_ID.to_vec(),
            require_final: true,
            require_encrypted: false,
            header: header.to_vec(),
            data: data.to_vec(),
            expect: Ok(Vec::new()),
            rule: "",
            extra: Map::new(),
        }
    }
    fn ok(mut self, records: &[&[u8]]) -> Case {
        self.expect = Ok(records.iter().map(|r| r.to_vec()).collect());
        self
    }
    fn fail(mut self, kind: AtRestErrorKind, rule: &'static str) -> Case {
        self.expect = Err(kind);
        self.rule = rule;
        self
    }
    fn open_tail(mut self) -> Case {
        self.require_final = false;
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("description".into(), json!(self.description));
        m.insert(
            "reader_master_keys".into(),
            json!(self
                .keys
                .iter()
                .map(|k| k.to_secret_string().to_string())
                .collect::<Vec<_>>()),
        );
        m.insert("store".into(), json!(hex::encode(&self.store)));
        m.insert("kind".into(), json!(KIND));
        m.insert("asset_id".into(), json!(hex::encode(&self.asset_id)));
        m.insert("finished".into(), json!(self.require_final));
        m.insert("require_encrypted".into(), json!(self.require_encrypted));
        m.insert("header".into(), json!(hex::encode(&self.header)));
        m.insert("data".into(), json!(hex::encode(&self.data)));
        match &self.expect {
            Ok(recs) => {
                m.insert(
                    "records".into(),
                    json!(recs.iter().map(hex::encode).collect::<Vec<_>>()),
                );
            }
            Err(k) => {
                m.insert("failure".into(), json!(k.as_str()));
                m.insert("rule".into(), json!(self.rule));
            }
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Runs one case as a reader would (spec/at-rest.md §5.3, §6.2, §8).
fn run(
    keys: &[MasterKey],
    store: &[u8],
    asset_id: &[u8],
    finished: bool,
    require_encrypted: bool,
    header: &[u8],
    data: &[u8],
) -> Result<Vec<Vec<u8>>, AtRestErrorKind> {
    let a = AssetRef {
        store,
        kind: KIND,
        id: asset_id,
    };
    let key = at_rest::open_asset(header, &a, keys).map_err(|e| e.kind())?;
    if require_encrypted && !key.is_encrypted() {
        return Err(AtRestErrorKind::ModeMismatch);
    }
    let mut out = Vec::new();
    key.open_all(data, finished, |_, b| out.push(b.to_vec()))
        .map_err(|e| e.kind())?;
    Ok(out)
}

fn seal(key: &at_rest::AssetKey, records: &[&[u8]], finish: bool) -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (i, r) in records.iter().enumerate() {
        offsets.push(data.len());
        key.seal_record(i as u64, r, &mut data)
            .expect("short record");
    }
    offsets.push(data.len());
    if finish {
        key.seal_final(records.len() as u64, &mut data);
    }
    (data, offsets)
}

fn cases() -> (Vec<Case>, Vec<Case>) {
    let k = keys();
    let a = asset();
    let r0: &[u8] = b"";
    let r1: &[u8] = b"hello";
    let r2: Vec<u8> = (0..=255u8).collect();
    let recs: [&[u8]; 3] = [r0, r1, &r2];

    let mut rng = VectorRng::new("asset");
    let (header, key) = at_rest::create_asset_with(&a, Some(&k.a), &mut rng).expect("asset");
    let (data, off) = seal(&key, &recs, true);
    let (open_data, _) = seal(&key, &recs[..2], false);

    // Intermediate values, recomputed here from the spec's formulas.
    let n = ASSET_ID.len();
    let salt = &header[24 + n..56 + n];
    let aek = at_rest::asset_key_bytes(&key);
    let kek = h(CTX_KEK, &[&k.a_bytes, &ctx(&a), salt]);
    let bind = h(CTX_ASSET_BIND, &[&ctx(&a)]);
    let akid = &h(CTX_ASSET_KEY_ID, &[&aek[..]])[..8];

    let mut prng = VectorRng::new("plain asset");
    let (pheader, pkey) = at_rest::create_asset_with(&a, None, &mut prng).expect("asset");
    let (pdata, _) = seal(&pkey, &recs[..2], true);

    let mut rrng = VectorRng::new("rotation");
    let rotated =
        at_rest::rewrap_header_with(&header, &a, std::slice::from_ref(&k.a), &k.b, &mut rrng)
            .expect("rewrap");

    let mut pos = Vec::new();
    let mut c = Case::new(
        "encrypted-three-records",
        "An encrypted asset with records of 0, 5 and 256 bytes and its final record. The \
         intermediate values (master key bytes, salt, KEK, AEK, BIND, AKID) follow the \
         formulas of spec §4 to §6.",
        &[&k.a],
        &header,
        &data,
    )
    .ok(&recs);
    c.extra
        .insert("master_key_bytes".into(), json!(hex::encode(k.a_bytes)));
    c.extra
        .insert("master_key_id".into(), json!(k.a.key_id().to_string()));
    c.extra.insert("salt".into(), json!(hex::encode(salt)));
    c.extra.insert("kek".into(), json!(hex::encode(kek)));
    c.extra.insert("aek".into(), json!(hex::encode(&aek[..])));
    c.extra.insert("bind".into(), json!(hex::encode(bind)));
    c.extra.insert("akid".into(), json!(hex::encode(akid)));
    c.extra.insert(
        "record_offsets".into(),
        json!(off.iter().map(|o| *o as u64).collect::<Vec<_>>()),
    );
    pos.push(c);
    pos.push(
        Case::new(
            "plain-two-records",
            "A plain asset (the queue's flag off): mode 0, zero key fields, records with \
             marker 0x50 and a BLAKE3 check (spec §7).",
            &[&k.a],
            &pheader,
            &pdata,
        )
        .ok(&recs[..2]),
    );
    pos.push(
        Case::new(
            "plain-asset-reader-without-keys",
            "A plain asset needs no master key.",
            &[],
            &pheader,
            &pdata,
        )
        .ok(&recs[..2]),
    );
    pos.push(
        Case::new(
            "newest-asset-without-final-record",
            "The newest asset, still being written: it may end after any whole record \
             (spec §8, finished = false).",
            &[&k.a],
            &header,
            &open_data,
        )
        .open_tail()
        .ok(&recs[..2]),
    );
    let mut torn = open_data.clone();
    torn.extend_from_slice(&data[off[2]..off[2] + 30]);
    pos.push(
        Case::new(
            "newest-asset-with-torn-tail",
            "The newest asset with an incomplete record at its end (a write cut short): \
             the whole records before it are returned, nothing of the torn one.",
            &[&k.a],
            &header,
            &torn,
        )
        .open_tail()
        .ok(&recs[..2]),
    );
    pos.push(
        Case::new(
            "rotated-header-new-key-only",
            "The header re-wrapped under key B (spec §10); the records are the same bytes. \
             The reader holds only B.",
            &[&k.b],
            &rotated,
            &data,
        )
        .ok(&recs),
    );
    pos.push(
        Case::new(
            "rotation-in-progress-both-keys",
            "A header still under key A, read by a reader holding B and A.",
            &[&k.b, &k.a],
            &header,
            &data,
        )
        .ok(&recs),
    );

    use AtRestErrorKind::*;
    let mut neg = Vec::new();
    let mut hcase = |name: &str, desc: &str, keys: &[&MasterKey], hd: Vec<u8>, kind, rule| {
        neg.push(Case::new(name, desc, keys, &hd, &data).fail(kind, rule));
    };
    let m = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut x = header.clone();
        f(&mut x);
        x
    };
    hcase(
        "header-empty",
        "No header bytes.",
        &[&k.a],
        vec![],
        Truncated,
        "§5.3 step 1",
    );
    hcase(
        "header-bad-magic",
        "Magic RSAX.",
        &[&k.a],
        m(&|x| x[3] = b'X'),
        Malformed,
        "§5.3 step 1",
    );
    hcase(
        "header-record-bytes",
        "A record where a header belongs.",
        &[&k.a],
        data[..header.len()].to_vec(),
        Malformed,
        "§5.3 step 1",
    );
    hcase(
        "header-version-2",
        "Version 2.",
        &[&k.a],
        m(&|x| {
            x[4] = 2;
            recheck(x)
        }),
        UnsupportedVersion,
        "§5.3 step 2",
    );
    hcase(
        "header-mode-2",
        "Mode 2, check recomputed.",
        &[&k.a],
        m(&|x| {
            x[5] = 2;
            recheck(x)
        }),
        Malformed,
        "§5.3 step 3",
    );
    hcase(
        "header-id-length-0",
        "n = 0.",
        &[&k.a],
        m(&|x| {
            x[7] = 0;
            recheck(x)
        }),
        Malformed,
        "§5.3 step 3",
    );
    hcase(
        "header-truncated",
        "The last byte missing.",
        &[&k.a],
        header[..header.len() - 1].to_vec(),
        Truncated,
        "§5.3 step 4",
    );
    hcase(
        "header-trailing-byte",
        "One byte too many.",
        &[&k.a],
        m(&|x| x.push(0)),
        Malformed,
        "§5.3 step 4",
    );
    hcase(
        "header-check-flipped",
        "A bit of the check flipped.",
        &[&k.a],
        m(&|x| {
            let l = x.len();
            x[l - 1] ^= 1
        }),
        Tampered,
        "§5.3 step 5",
    );
    hcase(
        "header-salt-flipped",
        "A bit of the salt flipped, check not recomputed.",
        &[&k.a],
        m(&|x| x[24 + n] ^= 1),
        Tampered,
        "§5.3 step 5",
    );
    hcase(
        "header-salt-flipped-rechecked",
        "A bit of the salt flipped and the check recomputed: the KEK differs.",
        &[&k.a],
        m(&|x| {
            x[24 + n] ^= 1;
            recheck(x)
        }),
        WrongKey,
        "§5.3 step 9",
    );
    hcase(
        "header-wrapped-key-flipped-rechecked",
        "A bit of the wrapped AEK flipped, check recomputed.",
        &[&k.a],
        m(&|x| {
            x[60 + n] ^= 0x80;
            recheck(x)
        }),
        WrongKey,
        "§5.3 step 9",
    );
    hcase(
        "header-mode-plain-rechecked",
        "Mode turned to plain, check recomputed: the key fields are not zero.",
        &[&k.a],
        m(&|x| {
            x[5] = 0;
            recheck(x)
        }),
        Malformed,
        "§5.3 step 5",
    );
    hcase(
        "header-kind-changed-rechecked",
        "Kind 2 where the reader expects 1.",
        &[&k.a],
        m(&|x| {
            x[6] = 2;
            recheck(x)
        }),
        Misplaced,
        "§5.3 step 6",
    );
    hcase(
        "header-id-changed-rechecked",
        "The id's last digit changed: another segment's header.",
        &[&k.a],
        m(&|x| {
            x[7 + n] = b'4';
            recheck(x)
        }),
        Misplaced,
        "§5.3 step 6",
    );
    hcase(
        "header-unknown-key",
        "The reader holds only key B.",
        &[&k.b],
        header.clone(),
        UnknownKey,
        "§5.3 step 8",
    );
    hcase(
        "header-wrong-key-same-id",
        "The reader holds a different key under A's id.",
        &[&k.a_impostor],
        header.clone(),
        WrongKey,
        "§5.3 step 9",
    );
    hcase(
        "old-key-after-rotation",
        "The rotated header, read with the old key alone: revoked.",
        &[&k.a],
        rotated.clone(),
        UnknownKey,
        "§10",
    );
    hcase(
        "old-key-after-rotation-id-forged",
        "The rotated header with its key id set back to A's and the check recomputed: A does not unwrap it.",
        &[&k.a],
        {
            let mut x = rotated.clone();
            x[8 + n..24 + n].copy_from_slice(k.a.key_id().as_bytes());
            recheck(&mut x);
            x
        },
        WrongKey,
        "§10, §5.3 step 9",
    );
    let mut other_store = Case::new(
        "header-other-store",
        "The same asset read as part of store \"vectors2\": another KEK.",
        &[&k.a],
        &header,
        &data,
    )
    .fail(WrongKey, "§4, §5.3 step 9");
    other_store.store = b"vectors2".to_vec();
    neg.push(other_store);
    let mut req = Case::new(
        "plain-asset-encryption-required",
        "A plain asset where the reader requires encryption.",
        &[&k.a],
        &pheader,
        &pdata,
    )
    .fail(ModeMismatch, "§5.3 step 7, §11");
    req.require_encrypted = true;
    neg.push(req);

    // Records.
    let rec = |i: usize| data[off[i]..off[i + 1]].to_vec();
    let fin = data[off[3]..].to_vec();
    let mut dcase = |name: &str, desc: &str, d: Vec<u8>, kind, rule| {
        neg.push(Case::new(name, desc, &[&k.a], &header, &d).fail(kind, rule));
    };
    let md = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut x = data.clone();
        f(&mut x);
        x
    };
    dcase(
        "records-swapped",
        "Records 1 and 2 swapped.",
        [rec(0), rec(2), rec(1), fin.clone()].concat(),
        Misplaced,
        "§6.2 step 7",
    );
    dcase(
        "record-duplicated",
        "Record 0 in place of record 1.",
        [rec(0), rec(0), rec(2), fin.clone()].concat(),
        Misplaced,
        "§6.2 step 7",
    );
    dcase(
        "record-index-rewritten",
        "Record 1 moved to position 0 with its index field rewritten.",
        [
            {
                let mut r = rec(1);
                r[23] = 0;
                r
            },
            rec(2),
            fin.clone(),
        ]
        .concat(),
        Tampered,
        "§6.2 step 8",
    );
    dcase(
        "final-record-missing",
        "A finished asset without its final record.",
        data[..off[3]].to_vec(),
        Truncated,
        "§8",
    );
    dcase(
        "last-record-and-final-missing",
        "Record 2 and the final record cut off.",
        data[..off[2]].to_vec(),
        Truncated,
        "§8",
    );
    dcase(
        "cut-inside-record",
        "The data end inside record 2.",
        data[..off[2] + 50].to_vec(),
        Truncated,
        "§6.2 step 5, §8",
    );
    dcase("final-record-early", "The final record of 2 records after record 1: its index says 2, its position is 2, but record 2 is gone and the final record is the one sealed for count 3.", [rec(0), rec(1), fin.clone()].concat(), Misplaced, "§6.2 step 7");
    dcase(
        "bytes-after-final",
        "A zero byte after the final record.",
        md(&|x| x.push(0)),
        Malformed,
        "§8",
    );
    dcase(
        "body-bit-flipped",
        "A bit of record 1's ciphertext flipped.",
        md(&|x| x[off[1] + 24] ^= 1),
        Tampered,
        "§6.2 step 8",
    );
    dcase(
        "tag-bit-flipped",
        "A bit of record 2's tag flipped.",
        md(&|x| x[off[3] - 1] ^= 0x40),
        Tampered,
        "§6.2 step 8",
    );
    dcase(
        "record-flags-final-set",
        "Record 0 marked final.",
        md(&|x| x[off[0] + 2] = 1),
        Tampered,
        "§6.2 step 8",
    );
    dcase(
        "record-reserved-flag",
        "Flag bit 1 set.",
        md(&|x| x[off[1] + 2] = 2),
        Malformed,
        "§6.2 step 4",
    );
    dcase(
        "record-reserved-byte",
        "Reserved byte 1.",
        md(&|x| x[off[1] + 3] = 1),
        Malformed,
        "§6.2 step 4",
    );
    dcase(
        "record-length-over-limit",
        "L = 2^24 + 1.",
        md(&|x| x[off[1] + 4..off[1] + 8].copy_from_slice(&((1u32 << 24) + 1).to_be_bytes())),
        Malformed,
        "§6.2 step 4",
    );
    dcase(
        "record-length-huge",
        "L = 2^32 - 1: refused before reading.",
        md(&|x| x[off[1] + 4..off[1] + 8].copy_from_slice(&u32::MAX.to_be_bytes())),
        Malformed,
        "§6.2 step 4",
    );
    dcase(
        "final-record-with-body",
        "The final record claims L = 1.",
        md(&|x| {
            let f = off[3];
            x[f + 7] = 1
        }),
        Malformed,
        "§6.2 step 4",
    );
    dcase(
        "record-version-2",
        "Record version 2.",
        md(&|x| x[off[1] + 1] = 2),
        UnsupportedVersion,
        "§6.2 step 3",
    );
    dcase(
        "record-unknown-marker",
        "Marker 0x00.",
        md(&|x| x[off[1]] = 0),
        Malformed,
        "§6.2 step 2",
    );
    dcase(
        "plain-record-in-encrypted-asset",
        "Record 1 replaced by the plain asset's record 1.",
        [rec(0), pdata[off[1]..off[2]].to_vec(), rec(2), fin.clone()].concat(),
        ModeMismatch,
        "§6.2 step 2",
    );
    dcase(
        "record-key-id-flipped",
        "A bit of record 1's key id flipped.",
        md(&|x| x[off[1] + 8] ^= 1),
        Misplaced,
        "§6.2 step 6",
    );
    // A record of another asset (another AEK) at the same position.
    let mut orng = VectorRng::new("other asset");
    let other_id = b"orders/0000000000000004";
    let oa = AssetRef {
        store: STORE,
        kind: KIND,
        id: other_id,
    };
    let (_, okey) = at_rest::create_asset_with(&oa, Some(&k.a), &mut orng).expect("asset");
    let (odata, ooff) = seal(&okey, &recs, true);
    dcase(
        "record-from-other-asset",
        "Record 1 of another segment at position 1.",
        [
            rec(0),
            odata[ooff[1]..ooff[2]].to_vec(),
            rec(2),
            fin.clone(),
        ]
        .concat(),
        Misplaced,
        "§6.2 step 6",
    );
    dcase(
        "record-from-other-asset-key-id-rewritten",
        "Record 1 of another segment with its key id rewritten to this asset's.",
        [
            rec(0),
            {
                let mut r = odata[ooff[1]..ooff[2]].to_vec();
                r[8..16].copy_from_slice(akid);
                r
            },
            rec(2),
            fin.clone(),
        ]
        .concat(),
        Tampered,
        "§6.2 step 8",
    );
    // Plain asset records.
    let pmd = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut x = pdata.clone();
        f(&mut x);
        x
    };
    neg.push(
        Case::new(
            "plain-record-body-flipped",
            "A bit of a plain record's body flipped.",
            &[&k.a],
            &pheader,
            &pmd(&|x| x[off[1] + 24] ^= 1),
        )
        .fail(Tampered, "§7"),
    );
    neg.push(
        Case::new(
            "encrypted-record-in-plain-asset",
            "An encrypted record in a plain asset.",
            &[&k.a],
            &pheader,
            &[rec(0), pdata[off[1]..].to_vec()].concat(),
        )
        .fail(ModeMismatch, "§6.2 step 2"),
    );
    neg.push(
        Case::new(
            "plain-record-key-id-set",
            "A plain record with a non-zero key id.",
            &[&k.a],
            &pheader,
            &pmd(&|x| x[off[1] + 8] = 1),
        )
        .fail(Malformed, "§6.2 step 6"),
    );
    neg.push(
        Case::new(
            "plain-final-record-missing",
            "A finished plain asset without its final record.",
            &[&k.a],
            &pheader,
            &pdata[..off[2]],
        )
        .fail(Truncated, "§8"),
    );
    neg.push(
        Case::new(
            "cut-inside-record-header",
            "A finished asset whose data end 10 bytes into record 2's header.",
            &[&k.a],
            &header,
            &data[..off[2] + 10],
        )
        .fail(Truncated, "§6.2 step 1, §8 step 2"),
    );
    let mut flipped = data[..off[3]].to_vec();
    flipped[off[1] + 24] ^= 1;
    neg.push(
        Case::new(
            "newest-asset-tampered-record",
            "The newest asset (read without requiring its final record) with a bit of record \
             1's body flipped: a complete record that fails is an error, not a torn write.",
            &[&k.a],
            &header,
            &flipped,
        )
        .open_tail()
        .fail(Tampered, "§6.2 step 8, §8 step 2"),
    );
    neg.push(
        Case::new(
            "newest-asset-garbage-tail",
            "The newest asset ending with 30 zero bytes: long enough for a record header, \
             without a record marker, so not an incomplete record.",
            &[&k.a],
            &header,
            &[&data[..off[3]], &[0u8; 30][..]].concat(),
        )
        .open_tail()
        .fail(Malformed, "§6.2 step 2, §8 step 2"),
    );
    (pos, neg)
}

const MASTER_PREFIX: &str = "RPCSEAL-SECRET-MASTER:";
const CTX_KEY_STRING_CHECKSUM: &str = "rpcseal 2026-11-26 v3 key string checksum";

/// `prefix ‖ base64url(payload ‖ checksum)` (spec §2.2), from the spec's definition.
fn key_string(prefix: &str, payload: &[u8]) -> String {
    use base64::Engine as _;
    let sum = h(CTX_KEY_STRING_CHECKSUM, &[prefix.as_bytes(), payload]);
    let raw = [payload, &sum[..4]].concat();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// The cases of `key-strings.json` (spec §2.2).
fn key_string_cases() -> Vec<Value> {
    let k = keys();
    let imported_id = [0x5au8; 16];
    let imported_key = VectorRng::new("imported master key").bytes32();
    let good = key_string(
        MASTER_PREFIX,
        &[k.a.key_id().as_bytes(), &k.a_bytes[..]].concat(),
    );
    let imported = key_string(
        MASTER_PREFIX,
        &[&imported_id[..], &imported_key[..]].concat(),
    );
    let ok = |name: &str, desc: &str, text: String, id: &[u8], key: &[u8]| {
        json!({"name": name, "description": desc, "key_string": text,
               "key_id": hex::encode(id), "key": hex::encode(key)})
    };
    let bad = |name: &str, desc: &str, text: String, rule: &str| json!({"name": name, "description": desc, "key_string": text, "rule": rule});
    let body = &good[MASTER_PREFIX.len()..];
    // The last character carries 4 unused bits: 'A' + 1 sets the lowest of them.
    let mut trailing = good.clone();
    let last = trailing.pop().expect("non-empty");
    let idx = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        .find(last)
        .expect("base64url");
    trailing.push(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .chars()
            .nth(idx ^ 1)
            .expect("alphabet"),
    );
    let mut bad_sum = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .expect("our own string")
    };
    bad_sum[50] ^= 1;
    let bad_sum = {
        use base64::Engine as _;
        format!(
            "{MASTER_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bad_sum)
        )
    };
    let short = key_string(
        MASTER_PREFIX,
        &[k.a.key_id().as_bytes(), &k.a_bytes[..31]].concat(),
    );
    vec![
        ok(
            "generated",
            "A generated key: its id is H(key id context, \"at-rest master\" ‖ MK)[0..16].",
            good.clone(),
            k.a.key_id().as_bytes(),
            &k.a_bytes,
        ),
        ok(
            "imported-with-own-id",
            "An imported key whose id its operator chose: the id is taken as written.",
            imported,
            &imported_id,
            &imported_key,
        ),
        ok(
            "white-space-around",
            "Spaces, a tab and CR LF around the string are ignored.",
            format!(" \t{good}\r\n"),
            k.a.key_id().as_bytes(),
            &k.a_bytes,
        ),
        bad(
            "prefix-lower-case",
            "The prefix in lower case.",
            good.replacen("RPCSEAL-SECRET-MASTER:", "rpcseal-secret-master:", 1),
            "§2.2 step 2",
        ),
        bad(
            "symmetric-key-string",
            "A well-formed key string of another kind (RPCSEAL-SECRET-SYM:, the same layout).",
            key_string(
                "RPCSEAL-SECRET-SYM:",
                &[k.a.key_id().as_bytes(), &k.a_bytes[..]].concat(),
            ),
            "§2.2 step 2",
        ),
        bad(
            "padding",
            "Base64 padding added.",
            format!("{good}=="),
            "§2.2 step 3",
        ),
        bad(
            "standard-alphabet",
            "A character of the standard alphabet ('+') in place of the first character.",
            format!("{MASTER_PREFIX}+{}", &body[1..]),
            "§2.2 step 3",
        ),
        bad(
            "space-inside",
            "A space in the middle of the base64url text.",
            format!("{MASTER_PREFIX}{} {}", &body[..20], &body[20..]),
            "§2.2 step 3",
        ),
        bad(
            "trailing-bits",
            "The last character's unused low bits not zero (the same bytes otherwise).",
            trailing,
            "§2.2 step 3",
        ),
        bad(
            "one-byte-short",
            "A 31-byte key, with a correct checksum over the shorter payload.",
            short,
            "§2.2 step 4",
        ),
        bad(
            "checksum-flipped",
            "A bit of the checksum flipped.",
            bad_sum,
            "§2.2 step 5",
        ),
    ]
}

/// Writes `positive.json` and `negative.json` into `dir/at-rest/`; returns their paths.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = dir.join("at-rest");
    std::fs::create_dir_all(&out)?;
    let (pos, neg) = cases();
    let mut written = Vec::new();
    for (file, what, cases) in [
        ("positive.json", "Assets a reader MUST accept, with the records it MUST return.", pos),
        ("negative.json", "Assets a reader MUST reject, each with its failure class (spec/at-rest.md §9) and the rule that rejects it.", neg),
    ] {
        let doc = json!({
            "spec": "spec/at-rest.md",
            "description": what,
            "generated_by": "cargo run -p rpcseal-store -- vectors generate vectors/",
            "how_to_run": "For each case: parse reader_master_keys (key strings, spec §2); the asset is (store, kind, asset_id), hex; open header (§5.3), refusing a plain asset if require_encrypted; then read data (§6.2, §8) as a finished asset if finished, else as the newest. Expect records (hex) or failure.",
            "cases": cases.iter().map(Case::to_json).collect::<Vec<_>>(),
        });
        let path = out.join(file);
        let mut text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(&path, text)?;
        written.push(path);
    }
    let doc = json!({
        "spec": "spec/at-rest.md",
        "description": "Master key strings (spec/at-rest.md §2.2): cases with key_id and key a parser MUST accept and return them (hex); cases with rule it MUST reject.",
        "generated_by": "cargo run -p rpcseal-store -- vectors generate vectors/",
        "cases": key_string_cases(),
    });
    let path = out.join("key-strings.json");
    let mut text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&path, text)?;
    written.push(path);
    Ok(written)
}

/// One checked vector case.
pub struct Check {
    /// `file::case`.
    pub name: String,
    /// The outcome.
    pub result: Result<(), String>,
}

fn field<'a>(c: &'a Value, k: &str) -> Result<&'a Value, String> {
    c.get(k).ok_or(format!("missing field {k}"))
}

fn hexf(c: &Value, k: &str) -> Result<Vec<u8>, String> {
    hex::decode(
        field(c, k)?
            .as_str()
            .ok_or(format!("{k} is not a string"))?,
    )
    .map_err(|e| format!("{k}: {e}"))
}

fn check_case(c: &Value) -> Result<(), String> {
    let mut keys = Vec::new();
    for s in field(c, "reader_master_keys")?.as_array().ok_or("keys")? {
        keys.push(
            MasterKey::from_secret_string(s.as_str().ok_or("key")?).map_err(|e| e.to_string())?,
        );
    }
    if let Some(id) = c.get("master_key_id") {
        let want = KeyId::from_hex(id.as_str().ok_or("id")?).ok_or("master_key_id")?;
        if keys[0].key_id() != want {
            return Err("the key string's id is not master_key_id".into());
        }
    }
    let got = run(
        &keys,
        &hexf(c, "store")?,
        &hexf(c, "asset_id")?,
        field(c, "finished")?.as_bool().ok_or("finished")?,
        field(c, "require_encrypted")?
            .as_bool()
            .ok_or("require_encrypted")?,
        &hexf(c, "header")?,
        &hexf(c, "data")?,
    );
    match (c.get("records"), c.get("failure")) {
        (Some(recs), None) => {
            let want: Vec<Vec<u8>> = recs
                .as_array()
                .ok_or("records")?
                .iter()
                .map(|r| hex::decode(r.as_str().unwrap_or("?")).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            match got {
                Ok(g) if g == want => Ok(()),
                Ok(_) => Err("different records".into()),
                Err(k) => Err(format!("rejected as {}", k.as_str())),
            }
        }
        (None, Some(f)) => match got {
            Err(k) if k.as_str() == f.as_str().unwrap_or("?") => Ok(()),
            Err(k) => Err(format!("rejected as {}, expected {}", k.as_str(), f)),
            Ok(_) => Err(format!("accepted, expected {f}")),
        },
        _ => Err("a case needs exactly one of records and failure".into()),
    }
}

/// Checks every case of `dir/at-rest/*.json`.
pub fn checks(dir: &Path) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    for file in ["positive.json", "negative.json"] {
        let path = dir.join("at-rest").join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
        for c in doc["cases"].as_array().ok_or("cases")? {
            let name = format!("at-rest/{file}::{}", c["name"].as_str().unwrap_or("?"));
            out.push(Check {
                name,
                result: check_case(c),
            });
        }
    }
    let path = dir.join("at-rest").join("key-strings.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("key-strings.json: {e}"))?;
    for c in doc["cases"].as_array().ok_or("cases")? {
        let name = format!(
            "at-rest/key-strings.json::{}",
            c["name"].as_str().unwrap_or("?")
        );
        out.push(Check {
            name,
            result: check_key_string(c),
        });
    }
    Ok(out)
}

fn check_key_string(c: &Value) -> Result<(), String> {
    let text = field(c, "key_string")?.as_str().ok_or("key_string")?;
    let got = MasterKey::from_secret_string(text);
    match (c.get("key_id"), got) {
        (Some(id), Ok(k)) => {
            if k.key_id().to_string() != id.as_str().unwrap_or("?") {
                return Err("a different key id".into());
            }
            // The key itself: a key with the same bytes derives the same asset key id.
            let want = hexf(c, "key")?;
            let want: [u8; 32] = want.try_into().map_err(|_| "key length")?;
            if k.to_secret_string().as_str()
                != key_string(MASTER_PREFIX, &[k.key_id().as_bytes(), &want[..]].concat())
            {
                return Err("a different key".into());
            }
            Ok(())
        }
        (Some(_), Err(e)) => Err(format!("rejected: {e}")),
        (None, Ok(_)) => Err("accepted, expected a rejection".into()),
        (None, Err(_)) => Ok(()),
    }
}
