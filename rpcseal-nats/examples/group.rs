//! A group through nats-server: two publishers seal once each to a group key (signed mode),
//! three members read; a member's forgery is refused; a removed member reads nothing more.
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 4222 &
//! cargo run -p rpcseal-nats --example group
//! ```

use std::time::Duration;

use rpcseal::{
    GroupKey, Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig,
};
use rpcseal_nats::{Publisher, Subscription};

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let nats = async_nats::connect(rpcseal_nats::nats_url()).await?;
    let config = SealerConfig::new(Mode::Signed).inline(Inline::Always);
    let group = GroupKey::generate();
    let (alice, bob, mallory) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let to_group = [Recipient::from(group.public().clone())];

    let mut members = Vec::new();
    for _ in 0..3 {
        let o = Opener::builder()
            .group_key(&group)
            .trust(alice.public())
            .trust(bob.public())
            .build()?;
        members.push(Subscription::new(&nats, "weather", o).await?);
    }
    let a = Publisher::new(
        nats.clone(),
        "weather",
        Sealer::new(&alice, &to_group, config.clone())?,
    );
    let b = Publisher::new(
        nats.clone(),
        "weather",
        Sealer::new(&bob, &to_group, config.clone())?,
    );
    a.publish(b"alice: sunny", &Metadata::new()).await?;
    b.publish(b"bob: windy", &Metadata::new()).await?;
    // Mallory holds the group key too, but is not a publisher this group trusts.
    let m = Publisher::new(
        nats.clone(),
        "weather",
        Sealer::new(&mallory, &to_group, config.clone())?,
    );
    m.publish(b"alice: hail (forged)", &Metadata::new()).await?;

    for (i, s) in members.iter_mut().enumerate() {
        for _ in 0..3 {
            match tokio::time::timeout(Duration::from_secs(2), s.next()).await {
                Ok(Some(Ok(o))) => println!(
                    "member {i}: {:?} from {}",
                    String::from_utf8_lossy(&o.payload),
                    o.sender
                ),
                Ok(Some(Err(e))) => println!("member {i}: refused ({}): {e}", e.kind().as_str()),
                _ => println!("member {i}: nothing"),
            }
        }
    }

    // A member list instead of a group key; member 2 is removed.
    let ids: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
    let mut subs = Vec::new();
    for id in &ids {
        subs.push(
            Subscription::new(
                &nats,
                "board",
                Opener::builder()
                    .identity(id)
                    .trust(alice.public())
                    .build()?,
            )
            .await?,
        );
    }
    let list: Vec<Recipient> = ids
        .iter()
        .map(|i| Recipient::from(i.public().clone()))
        .collect();
    let p = Publisher::new(nats.clone(), "board", Sealer::new(&alice, &list, config)?);
    p.publish(b"minutes, part 1", &Metadata::new()).await?;
    let removed = list[2].key_id();
    p.update(|s| s.remove_recipients(&[removed]))?;
    p.publish(b"minutes, part 2 (after member 2 left)", &Metadata::new())
        .await?;
    for (i, s) in subs.iter_mut().enumerate() {
        for _ in 0..2 {
            match tokio::time::timeout(Duration::from_secs(2), s.next()).await {
                Ok(Some(Ok(o))) => println!(
                    "board member {i}: {:?}",
                    String::from_utf8_lossy(&o.payload)
                ),
                Ok(Some(Err(e))) => {
                    println!("board member {i}: cannot read ({})", e.kind().as_str())
                }
                _ => println!("board member {i}: nothing"),
            }
        }
    }
    Ok(())
}
