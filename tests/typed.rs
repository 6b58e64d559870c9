//! Typed payloads (feature `serde`, spec/rpc.md §9): the content type is authenticated and
//! checked before any decoding, decoding errors are apart from envelope rejections, and a
//! message refused for its content changes no replay state.

use std::collections::BTreeMap;

use rpcseal::rpc::CONTENT_TYPE;
use rpcseal::typed::{self, DecodeError, EncodeError, Format, TypedError};
use rpcseal::{
    ErrorKind, Identity, Metadata, Misuse, Mode, Opener, Recipient, Sealer, SealerConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    sku: u32,
    qty: u16,
    note: Option<String>,
    tags: Vec<String>,
}

#[derive(Deserialize, Debug)]
struct Other {
    #[allow(dead_code)]
    name: String,
}

fn order() -> Order {
    Order {
        sku: 42,
        qty: 3,
        note: Some("fragile".into()),
        tags: vec!["a".into(), "b".into()],
    }
}

fn pair() -> (Sealer, Opener) {
    let alice = Identity::generate();
    let bob = Identity::generate();
    (
        Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(Mode::Mac),
        )
        .unwrap(),
        Opener::builder()
            .identity(&bob)
            .trust(alice.public())
            .build()
            .unwrap(),
    )
}

fn ct(v: &str) -> Metadata {
    [(CONTENT_TYPE.to_string(), v.to_string())]
        .into_iter()
        .collect()
}

#[test]
fn a_payload_in_another_format_is_not_decoded_and_not_marked() {
    let (mut s, o) = pair();
    let env = s
        .seal_typed(&order(), Format::Json, &Metadata::new())
        .unwrap();
    let e = o
        .open_typed::<Order>(&env, Format::MessagePack)
        .unwrap_err();
    assert_eq!(
        e,
        TypedError::Decode(DecodeError::WrongContentType {
            expected: Format::MessagePack,
            found: Some("application/json".into())
        })
    );
    // Refused for its content: not marked, so it opens in the right format, once.
    let (v, opened) = o.open_typed::<Order>(&env, Format::Json).unwrap();
    assert_eq!(v, order());
    assert_eq!(opened.metadata[CONTENT_TYPE], "application/json");
    assert!(matches!(
        o.open_typed::<Order>(&env, Format::Json),
        Err(TypedError::Rejected(e)) if e.kind() == ErrorKind::Replayed
    ));
}

#[test]
fn a_payload_without_a_content_type_is_not_decoded() {
    let (mut s, o) = pair();
    // Valid MessagePack of the right type, but nothing says so.
    let bytes = Format::MessagePack.encode(&order()).unwrap();
    let env = s.seal(&bytes, &Metadata::new()).unwrap();
    let e = o
        .open_typed::<Order>(&env, Format::MessagePack)
        .unwrap_err();
    assert_eq!(
        e,
        TypedError::Decode(DecodeError::WrongContentType {
            expected: Format::MessagePack,
            found: None
        })
    );
    // A near miss in the content type is a miss: compared byte for byte.
    for near in [
        "application/MsgPack",
        "application/msgpack ",
        "application/x-msgpack",
    ] {
        let env = s.seal(&bytes, &ct(near)).unwrap();
        let e = o
            .open_typed::<Order>(&env, Format::MessagePack)
            .unwrap_err();
        assert!(
            matches!(e, TypedError::Decode(DecodeError::WrongContentType { .. })),
            "{near}"
        );
    }
}

#[test]
fn invalid_payloads_are_decode_errors_not_rejections() {
    let (mut s, o) = pair();
    let good = Format::MessagePack.encode(&order()).unwrap();
    let mut trailing = good.clone();
    trailing.push(0xc0);
    let cases: Vec<(&str, Vec<u8>, Format)> = vec![
        ("garbage", vec![0xc1, 0x00], Format::MessagePack),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            Format::MessagePack,
        ),
        ("trailing bytes", trailing, Format::MessagePack),
        (
            "another type",
            Format::MessagePack
                .encode(&BTreeMap::from([("x", 1)]))
                .unwrap(),
            Format::MessagePack,
        ),
        (
            "json trailing",
            b"{\"name\":\"x\"} {}".to_vec(),
            Format::Json,
        ),
        ("json of another type", b"[1,2]".to_vec(), Format::Json),
        ("deep nesting", [b'['; 100_000].to_vec(), Format::Json),
        (
            "deep msgpack",
            [0x91u8; 100_000].to_vec(),
            Format::MessagePack,
        ),
    ];
    for (what, payload, format) in cases {
        let env = s.seal(&payload, &ct(format.content_type())).unwrap();
        match o.open_typed::<Other>(&env, format) {
            Err(TypedError::Decode(e @ DecodeError::Invalid { .. })) => {
                assert_eq!(e.kind(), "invalid_payload", "{what}");
                assert!(!e.to_string().is_empty());
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn envelope_rejections_stay_rejections() {
    let (mut s, o) = pair();
    let mut env = s
        .seal_typed(&order(), Format::MessagePack, &Metadata::new())
        .unwrap();
    let n = env.len();
    env[n - 1] ^= 1;
    assert!(matches!(
        o.open_typed::<Order>(&env, Format::MessagePack),
        Err(TypedError::Rejected(e)) if e.kind() == ErrorKind::BadAuthenticator
    ));
}

#[test]
fn round_trips_in_both_formats_and_msgpack_records_are_named_maps() {
    let (mut s, o) = pair();
    for format in [Format::MessagePack, Format::Json] {
        let env = s
            .seal_typed(&order(), format, &ct(format.content_type()))
            .unwrap();
        let (v, opened) = o.open_typed::<Order>(&env, format).unwrap();
        assert_eq!(v, order());
        assert_eq!(
            typed::decode_opened::<Order>(&opened, format).unwrap(),
            order()
        );
        assert_eq!(
            Format::from_content_type(format.content_type()),
            Some(format)
        );
    }
    // A struct of four fields is a fixmap of four entries keyed by field name, so other
    // languages read a dictionary.
    let bytes = Format::MessagePack.encode(&order()).unwrap();
    assert_eq!(bytes[0], 0x84);
    assert_eq!(&bytes[1..5], b"\xa3sku");
    assert_eq!(Format::from_content_type("text/plain"), None);
}

#[test]
fn sealing_refuses_a_conflicting_content_type_and_unserializable_values() {
    let (mut s, _) = pair();
    assert!(matches!(
        s.seal_typed(&order(), Format::MessagePack, &ct("application/json")),
        Err(EncodeError::Misuse(Misuse::InvalidMetadata(_)))
    ));
    // JSON maps need string keys.
    let bad: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1u8], 1)]);
    assert!(matches!(
        s.seal_typed(&bad, Format::Json, &Metadata::new()),
        Err(EncodeError::Serialize(_))
    ));
}

#[test]
fn messagepack_nesting_is_bounded_at_128() {
    let nested = |depth: usize| {
        let mut v = vec![0x91u8; depth];
        v.push(0xc0);
        v
    };
    assert!(Format::MessagePack
        .decode::<serde_json::Value>(&nested(100))
        .is_ok());
    assert!(matches!(
        Format::MessagePack.decode::<serde_json::Value>(&nested(200)),
        Err(DecodeError::Invalid { .. })
    ));
}
