//! Groups through a real nats-server (spec/nats.md §6): 1:m to a group key and to a member
//! list, m:n, a member forging as the publisher, a removed member.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use getrandom::SysRng;
use rand_core::{Rng, UnwrapErr};
use rpcseal::forge::{self, Auth, MessageSpec};
use rpcseal::{
    ErrorKind, GroupKey, Identity, Inline, Metadata, Mode, Opener, Recipient, Sealer, SealerConfig,
    Suite,
};
use rpcseal_nats::{Publisher, Subscription};

fn always(mode: Mode) -> SealerConfig {
    SealerConfig::new(mode).inline(Inline::Always)
}

async fn next(s: &mut Subscription) -> Result<rpcseal::Opened, rpcseal::Error> {
    tokio::time::timeout(Duration::from_secs(3), s.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

#[tokio::test]
async fn one_to_many_and_many_to_many_over_a_group_key() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let subject = common::subject("group");
    let group = GroupKey::generate();
    let (p1, p2) = (Identity::generate(), Identity::generate());
    let mut subs = Vec::new();
    for _ in 0..3 {
        let o = Opener::builder()
            .group_key(&group)
            .trust(p1.public())
            .trust(p2.public())
            .build()
            .unwrap();
        subs.push(Subscription::new(&nats, &subject, o).await.unwrap());
    }
    let to_group = [Recipient::from(group.public().clone())];
    let pub1 = Publisher::new(
        nats.clone(),
        &subject,
        Sealer::new(&p1, &to_group, always(Mode::Signed)).unwrap(),
    );
    let pub2 = Publisher::new(
        nats.clone(),
        &subject,
        Sealer::new(&p2, &to_group, always(Mode::Signed)).unwrap(),
    );
    for i in 0..5u8 {
        pub1.publish(&[1, i], &Metadata::new()).await.unwrap();
        pub2.publish(&[2, i], &Metadata::new()).await.unwrap();
    }
    for s in &mut subs {
        let mut got = Vec::new();
        for _ in 0..10 {
            let o = next(s).await.unwrap();
            let expected = if o.payload[0] == 1 {
                p1.key_id()
            } else {
                p2.key_id()
            };
            assert_eq!(o.sender, expected);
            got.push(o.payload);
        }
        got.sort();
        assert_eq!(got.len(), 10);
        // Each session's block was verified once, however often it travelled.
        assert_eq!(s.opener().stats().sessions_established, 2);
    }
    // MAC mode to a group key would let any member forge: the sealer refuses it.
    assert!(Sealer::new(&p1, &to_group, always(Mode::Mac)).is_err());
}

#[tokio::test]
async fn a_member_forging_as_the_publisher_is_rejected() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let subject = common::subject("forge");
    let mut secret = [0u8; 32];
    UnwrapErr(SysRng).fill_bytes(&mut secret);
    let group = GroupKey::from_secret_bytes(&secret);
    let publisher = Identity::generate();
    let member = Identity::generate();
    let opener = || {
        Opener::builder()
            .group_key(&group)
            .trust(publisher.public())
            .build()
            .unwrap()
    };
    let mut victim = Subscription::new(&nats, &subject, opener()).await.unwrap();
    let to_group = [Recipient::from(group.public().clone())];
    let p = Publisher::new(
        nats.clone(),
        &subject,
        Sealer::new(&publisher, &to_group, always(Mode::Signed)).unwrap(),
    );
    p.publish(b"genuine", &Metadata::new()).await.unwrap();
    assert_eq!(next(&mut victim).await.unwrap().payload, b"genuine");

    // The member holds the group key: it unwraps the publisher's session (EK) and writes a
    // new message in it, signed with a key of its own (it lacks the session's signing key).
    let block = p.update(|s| s.session_block().unwrap().to_vec());
    let (ek, _) = forge::unwrap_as(&block, 0, &x25519_dalek::StaticSecret::from(secret));
    let (_, header_hash) = forge::block_header(&block);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut nonce = [0u8; 16];
    UnwrapErr(SysRng).fill_bytes(&mut nonce);
    let own = ed25519_dalek::SigningKey::generate(&mut UnwrapErr(SysRng));
    let forged = forge::message(&MessageSpec {
        version: 3,
        suite: u64::from(Suite::X25519_CHACHA20POLY1305_BLAKE3_ED25519.id()),
        session_ref: forge::session_ref(&header_hash),
        header_hash,
        block: Some(&block),
        seq: 7,
        timestamp: now,
        nonce,
        metadata: &Metadata::new(),
        payload: b"pay mallory",
        ek: ek.as_ref(),
        auth: Auth::Sign(&own),
    });
    nats.publish(subject.clone(), forged.into()).await.unwrap();
    assert_eq!(
        next(&mut victim).await.unwrap_err().kind(),
        ErrorKind::BadAuthenticator
    );

    // Sealing under its own identity, it is not the publisher: untrusted here.
    let m = Publisher::new(
        nats.clone(),
        &subject,
        Sealer::new(&member, &to_group, always(Mode::Signed)).unwrap(),
    );
    m.publish(b"i am the publisher", &Metadata::new())
        .await
        .unwrap();
    assert_eq!(
        next(&mut victim).await.unwrap_err().kind(),
        ErrorKind::UntrustedSender
    );

    // Nothing changed: the publisher's next message opens.
    p.publish(b"still genuine", &Metadata::new()).await.unwrap();
    assert_eq!(next(&mut victim).await.unwrap().payload, b"still genuine");
}

#[tokio::test]
async fn a_removed_member_cannot_read_the_next_session() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let subject = common::subject("removal");
    let publisher = Identity::generate();
    let members: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
    let mut subs = Vec::new();
    for m in &members {
        let o = Opener::builder()
            .identity(m)
            .trust(publisher.public())
            .build()
            .unwrap();
        subs.push(Subscription::new(&nats, &subject, o).await.unwrap());
    }
    let list: Vec<Recipient> = members
        .iter()
        .map(|m| Recipient::from(m.public().clone()))
        .collect();
    let p = Publisher::new(
        nats.clone(),
        &subject,
        Sealer::new(&publisher, &list, always(Mode::Signed)).unwrap(),
    );
    p.publish(b"to all three", &Metadata::new()).await.unwrap();
    for s in &mut subs {
        assert_eq!(next(s).await.unwrap().payload, b"to all three");
    }
    // Member 2 leaves: the list shrinks, and the next message is of a new session.
    let gone = Recipient::from(members[2].public().clone()).key_id();
    p.update(|s| s.remove_recipients(&[gone])).unwrap();
    p.publish(b"to the remaining two", &Metadata::new())
        .await
        .unwrap();
    for s in &mut subs[..2] {
        assert_eq!(next(s).await.unwrap().payload, b"to the remaining two");
    }
    let e = next(&mut subs[2]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotForUs, "{e}");

    // Over a group key: a new key for the remaining members, the removed one keeps the old.
    let (old, new) = (GroupKey::generate(), GroupKey::generate());
    let subject = common::subject("removal-group");
    let stay = Opener::builder()
        .group_key(&new)
        .trust(publisher.public())
        .build()
        .unwrap();
    let gone = Opener::builder()
        .group_key(&old)
        .trust(publisher.public())
        .build()
        .unwrap();
    let mut stay = Subscription::new(&nats, &subject, stay).await.unwrap();
    let mut gone = Subscription::new(&nats, &subject, gone).await.unwrap();
    let p = Publisher::new(
        nats.clone(),
        &subject,
        Sealer::new(
            &publisher,
            &[Recipient::from(new.public().clone())],
            always(Mode::Signed),
        )
        .unwrap(),
    );
    p.publish(b"new key", &Metadata::new()).await.unwrap();
    assert_eq!(next(&mut stay).await.unwrap().payload, b"new key");
    assert_eq!(
        next(&mut gone).await.unwrap_err().kind(),
        ErrorKind::NotForUs
    );
}
