//! The README's tour: `cargo run --release --example demo`.
//!
//! Alice seals to Bob in signed and MAC mode, then to a group of two; then a tampered, a
//! misaddressed and a replayed envelope are refused. In memory, with the public API only.

use rpcseal::{GroupKey, Identity, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let alice = Identity::generate();
    let bob = Identity::generate();
    let (carol, dave, team) = (
        Identity::generate(),
        Identity::generate(),
        GroupKey::generate(),
    );
    println!("alice {}  bob {}", alice.key_id(), bob.key_id());
    println!(
        "team group key {} held by carol {} and dave {}",
        team.public().key_id(),
        carol.key_id(),
        dave.key_id()
    );

    let mut meta = Metadata::new();
    meta.insert("method".into(), "inventory.reserve".into());
    let payload = b"{\"sku\": 42}";

    // One opener per receiver: it caches sessions and remembers what it accepted.
    let bob_in = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()?;

    // 1:1, both modes. Each envelope carries its signed session block, so it opens alone.
    let mut signed = Vec::new();
    for mode in [Mode::Signed, Mode::Mac] {
        let mut sealer = Sealer::new(
            &alice,
            &[Recipient::from(bob.public())],
            SealerConfig::new(mode),
        )?;
        let env = sealer.seal(payload, &meta)?;
        let got = bob_in.open(&env)?;
        assert_eq!(got.payload, payload);
        println!(
            "{:>6}: {}-byte payload, {}-byte envelope, bob accepts it from {}",
            mode.as_str(),
            payload.len(),
            env.len(),
            got.sender
        );
        if mode == Mode::Signed {
            signed = env;
        }
    }

    // 1:m through a group key: one wrap for the whole group, a signature per message so
    // members cannot forge alice's messages to each other.
    let mut sealer = Sealer::new(
        &alice,
        &[Recipient::from(team.public())],
        SealerConfig::new(Mode::Signed),
    )?;
    let env = sealer.seal(payload, &meta)?;
    for (name, member) in [("carol", &carol), ("dave", &dave)] {
        let o = Opener::builder()
            .identity(member)
            .group_key(&team)
            .trust(alice.public())
            .build()?;
        let got = o.open(&env)?;
        println!(
            " group: {name} accepts {} bytes via group key {}",
            got.payload.len(),
            got.session.via_key
        );
    }

    // Rejections, each with its failure class.
    let mut tampered = signed.clone();
    let i = tampered.len() - 70;
    tampered[i] ^= 1;
    let fresh_bob = Opener::builder()
        .identity(&bob)
        .trust(alice.public())
        .build()?;
    let carol_in = Opener::builder()
        .identity(&carol)
        .trust(alice.public())
        .build()?;
    for (what, result) in [
        ("tampered", fresh_bob.open(&tampered)),
        ("misaddressed", carol_in.open(&signed)),
        ("replayed", bob_in.open(&signed)),
    ] {
        match result {
            Err(e) => println!("{what:>12}: rejected, {}", e.kind().as_str()),
            Ok(_) => println!("{what:>12}: ACCEPTED, which would be a bug"),
        }
    }
    Ok(())
}
