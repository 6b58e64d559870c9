//! A small queue service over the store: producers enqueue messages, a consumer reads them
//! back in order, and the operator rotates the master key while the service keeps running.
//! The per-queue encryption flag is the service's configuration: here `orders` is
//! encrypted and `metrics` is not.
//!
//! `cargo run -p rpcseal-store --example queue_service` (the master key comes from
//! `RPCSEAL_MASTER_KEY` if set, else a fresh one for the demo).

use std::collections::BTreeMap;

use rpcseal_store::{MasterKey, QueueWriter, Store, StoreConfig, StoreError};

/// The queue service: one writer per queue, the flag per queue.
struct QueueService<'s> {
    store: &'s Store,
    writers: BTreeMap<String, QueueWriter<'s>>,
    encrypted: BTreeMap<&'static str, bool>,
}

impl<'s> QueueService<'s> {
    fn new(store: &'s Store) -> Self {
        let encrypted = BTreeMap::from([("orders", true), ("metrics", false)]);
        QueueService {
            store,
            writers: BTreeMap::new(),
            encrypted,
        }
    }

    /// Enqueues a batch: one write (and one fsync if configured) per batch.
    fn enqueue(&mut self, queue: &str, msgs: &[&[u8]]) -> Result<(), StoreError> {
        if !self.writers.contains_key(queue) {
            let enc = *self.encrypted.get(queue).unwrap_or(&true);
            self.writers
                .insert(queue.to_owned(), self.store.writer(queue, enc)?);
        }
        let w = self.writers.get_mut(queue).expect("inserted above");
        w.append(msgs)?;
        Ok(())
    }

    /// Everything in a queue, oldest first; only authenticated messages come out.
    fn consume(&self, queue: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        self.store
            .read_queue(queue, |_, _, body| out.push(body.to_vec()))?;
        Ok(out)
    }

    fn shutdown(self) -> Result<(), StoreError> {
        for (_, w) in self.writers {
            w.close()?;
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = match MasterKey::from_env("RPCSEAL_MASTER_KEY") {
        Ok(k) => k,
        Err(_) => MasterKey::generate(),
    };
    let dir = std::env::temp_dir().join(format!("rpcseal-queue-service-{}", std::process::id()));
    let store = Store::open(&dir, StoreConfig::new("demo", vec![key.clone()]))?;
    let mut svc = QueueService::new(&store);
    svc.enqueue(
        "orders",
        &[b"order 1: 2 x widget".as_slice(), b"order 2: 1 x gadget"],
    )?;
    svc.enqueue("metrics", &[b"cpu=0.42".as_slice()])?;
    svc.enqueue("orders", &[b"order 3: 5 x sprocket".as_slice()])?;
    for q in ["orders", "metrics"] {
        for m in svc.consume(q)? {
            println!("{q}: {}", String::from_utf8_lossy(&m));
        }
    }
    svc.shutdown()?;

    // Rotation: readers and writers get both keys (new first), the headers are re-wrapped,
    // then the old key is dropped.
    let new = MasterKey::generate();
    let rotating = Store::open(&dir, StoreConfig::new("demo", vec![new.clone(), key]))?;
    let r = rotating.rotate(&new)?;
    println!(
        "rotated to {}: {} headers re-wrapped, {} plain",
        new.key_id(),
        r.rewrapped,
        r.plain
    );
    let after = Store::open(&dir, StoreConfig::new("demo", vec![new]))?;
    let n = after.read_queue("orders", |_, _, _| {})?.records;
    println!("orders after rotation, new key only: {n} messages");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
