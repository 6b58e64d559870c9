//! spec/worked-example.md is static text: check that every value it quotes is in the vector
//! it walks through, so the two cannot drift apart unnoticed.

#[test]
fn every_hex_value_of_the_worked_example_is_in_its_vector() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/spec/worked-example.md")).unwrap();
    let vector = std::fs::read_to_string(format!("{root}/vectors/v3/positive/modes.json")).unwrap();
    let compact: String = vector.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let mut checked = 0;
    for word in doc.split(|c: char| !c.is_ascii_hexdigit()) {
        // Long runs of hex are values (ids, keys, hashes, envelope bytes); short ones may be
        // MessagePack type bytes or prose.
        if word.len() >= 32 && word.len() % 2 == 0 {
            assert!(
                compact.contains(&word.to_ascii_lowercase()),
                "{word} is not in modes.json"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} values found: did the document change shape?"
    );
}
