//! `rpcseal demo`: keys, a 1:1 exchange in signed and MAC mode, a group exchange, and three
//! rejected envelopes, all in memory, each step said in plain words. Only the library's
//! public API is used; `examples/demo.rs` walks the same path for readers of the code.

use rpcseal::{
    Error, GroupKey, Identity, Metadata, Mode, Opened, Opener, Recipient, Sealer, SealerConfig,
};

use super::Result;

const PAYLOAD: &[u8] = br#"{"sku": 42, "qty": 3}"#;

pub fn run() -> Result<()> {
    println!("rpcseal demo: everything happens in memory; no file is read or written.\n");

    println!("1. Keys");
    let alice = Identity::generate();
    let bob = Identity::generate();
    let carol = Identity::generate();
    let dave = Identity::generate();
    let team = GroupKey::generate();
    println!("   alice (the sender)  identity, key id {}", alice.key_id());
    println!("   bob (a service)     identity, key id {}", bob.key_id());
    println!(
        "   carol, dave         identities, key ids {} and {}",
        carol.key_id(),
        dave.key_id()
    );
    println!(
        "   team                group key held by carol and dave, key id {}",
        team.public().key_id()
    );

    let mut meta = Metadata::new();
    meta.insert("method".into(), "inventory.reserve".into());
    let bob_opener = opener(&bob, None, &alice)?;

    println!("\n2. alice -> bob, signed mode (encrypted, every message signed)");
    let signed = seal(
        &alice,
        &[Recipient::from(bob.public())],
        Mode::Signed,
        &meta,
    )?;
    describe_seal(&signed);
    show_open("bob", bob_opener.open(&signed));
    let st = bob_opener.stats();
    println!(
        "   checked: alice's signature on the session block, bob's HPKE wrap, the key commitment, \
         the message signature ({} so far), the AEAD tag, the timestamp and session lifetime",
        st.message_signatures_checked
    );

    println!(
        "\n3. alice -> bob, MAC mode (encrypted, one MAC per recipient, no signature per message)"
    );
    let mac = seal(&alice, &[Recipient::from(bob.public())], Mode::Mac, &meta)?;
    describe_seal(&mac);
    show_open("bob", bob_opener.open(&mac));
    println!("   checked: as above, but bob's MAC instead of a signature: cheaper, and repudiable");

    println!("\n4. alice -> team (group key, 2 members), signed mode");
    let group = seal(
        &alice,
        &[Recipient::from(team.public())],
        Mode::Signed,
        &meta,
    )?;
    describe_seal(&group);
    for (name, member) in [("carol", &carol), ("dave", &dave)] {
        let o = opener(member, Some(&team), &alice)?;
        show_open(name, o.open(&group));
    }
    println!("   the group key only proves membership; the signature proves alice sent it");

    println!("\n5. Envelopes that are rejected");
    let mut tampered = signed.clone();
    let i = tampered.len() - 70; // inside the ciphertext, before the 64-byte signature
    tampered[i] ^= 0x01;
    println!(
        "   tampered: one bit of the signed envelope flipped (byte {i} of {})",
        signed.len()
    );
    show_open("bob", opener(&bob, None, &alice)?.open(&tampered));

    println!("   misaddressed: carol tries the envelope alice sealed for bob");
    show_open("carol", opener(&carol, None, &alice)?.open(&signed));

    println!("   replayed: the signed envelope from step 2 given to bob again");
    match bob_opener.open(&signed) {
        Err(e) => println!(
            "   -> bob rejects it [{}]: {}",
            e.kind().as_str(),
            e.detail()
        ),
        Ok(_) => println!(
            "   -> ACCEPTED AGAIN: this opener's replay store did not record the first \
             opening; that is a bug in this build"
        ),
    }
    println!("\nDone.");
    Ok(())
}

fn seal(from: &Identity, to: &[Recipient], mode: Mode, meta: &Metadata) -> Result<Vec<u8>> {
    let mut s = Sealer::new(from, to, SealerConfig::new(mode))
        .map_err(|e| super::Failure::usage(e.to_string()))?;
    s.seal(PAYLOAD, meta)
        .map_err(|e| super::Failure::usage(e.to_string()))
}

fn opener(me: &Identity, group: Option<&GroupKey>, trust: &Identity) -> Result<Opener> {
    let mut b = Opener::builder().identity(me).trust(trust.public());
    if let Some(g) = group {
        b = b.group_key(g);
    }
    b.build().map_err(|e| super::Failure::usage(e.to_string()))
}

fn describe_seal(env: &[u8]) {
    let i = rpcseal::inspect(env).expect("an envelope we just sealed decodes");
    let block = i.session.as_ref().map_or(0, |b| b.block_len);
    println!(
        "   sealed a {}-byte payload into a {}-byte envelope ({block} of them the session \
         block, carried inline so the envelope opens on its own)",
        PAYLOAD.len(),
        env.len()
    );
}

fn show_open(who: &str, r: std::result::Result<Opened, Error>) {
    match r {
        Ok(o) => println!(
            "   -> {who} accepts it: {} bytes from sender {}, {} mode, seq {}, via {} {}, method {}",
            o.payload.len(),
            o.sender,
            o.session.mode,
            o.seq,
            if o.session.via_group { "group key" } else { "own key" },
            o.session.via_key,
            o.metadata.get("method").map_or("-", String::as_str),
        ),
        Err(e) => println!("   -> {who} rejects it [{}]: {}", e.kind().as_str(), e.detail()),
    }
}
