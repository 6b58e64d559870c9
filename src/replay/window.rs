//! The per-session sliding window of sequence numbers (spec/replay.md §3).
//!
//! RFC 6479 style: the bitmap is a ring of `WORDS` 64-bit words indexed by
//! `(seq / 64) % WORDS`. Advancing the window clears whole words that rotate in;
//! the bitmap is never shifted. One spare word makes the usable window exactly
//! [`WINDOW_SIZE`](super::WINDOW_SIZE) sequence numbers wide.

use super::{ReplayError, WINDOW_SIZE};

/// Number of 64-bit words in the ring: `WINDOW_SIZE / 64 + 1`.
pub(crate) const WORDS: usize = (WINDOW_SIZE / 64) as usize + 1;

/// Ring word holding the bit of `seq`.
#[inline]
pub(crate) fn word_index(seq: u64) -> usize {
    // WORDS is 17, so the remainder always fits in usize.
    ((seq / 64) % WORDS as u64) as usize
}

/// Bit mask of `seq` inside its word.
#[inline]
fn bit_mask(seq: u64) -> u64 {
    1u64 << (seq % 64)
}

/// Window state of one session: the highest accepted sequence number and the ring.
///
/// A window only exists once a first sequence number was accepted, so there is no
/// "empty" state (sequence numbers start at 0).
#[derive(Clone, Debug)]
pub(crate) struct Window {
    top: u64,
    bits: [u64; WORDS],
}

impl Window {
    /// Placeholder state of a vacant table slot; never consulted.
    pub(crate) const EMPTY: Window = Window {
        top: 0,
        bits: [0u64; WORDS],
    };

    /// A window whose only accepted sequence number is `seq`.
    pub(crate) fn new(seq: u64) -> Self {
        let mut bits = [0u64; WORDS];
        bits[word_index(seq)] = bit_mask(seq);
        Window { top: seq, bits }
    }

    /// Would `seq` be accepted? Read-only, O(1).
    #[inline]
    pub(crate) fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq > self.top {
            return Ok(());
        }
        // seq <= top: no underflow.
        if self.top - seq >= WINDOW_SIZE {
            return Err(ReplayError::OutsideWindow);
        }
        if self.bits[word_index(seq)] & bit_mask(seq) != 0 {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// Record `seq`. Precondition: `check(seq)` returned `Ok`. O(1): at most
    /// `WORDS` words are cleared when the window advances.
    #[inline]
    pub(crate) fn mark(&mut self, seq: u64) {
        if seq > self.top {
            let old_block = self.top / 64;
            let new_block = seq / 64;
            // new_block >= old_block; the difference cannot overflow.
            let advance = new_block - old_block;
            if advance >= WORDS as u64 {
                self.bits = [0u64; WORDS];
            } else {
                // Clear the words of blocks old_block+1 ..= new_block.
                let mut b = old_block;
                for _ in 0..advance {
                    b += 1; // b <= new_block <= u64::MAX / 64: no overflow
                    self.bits[word_index(b * 64)] = 0;
                }
            }
            self.top = seq;
        }
        self.bits[word_index(seq)] |= bit_mask(seq);
    }

    /// Highest accepted sequence number.
    #[cfg(test)]
    pub(crate) fn top(&self) -> u64 {
        self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut Window, seq: u64) -> Result<(), ReplayError> {
        w.check(seq)?;
        w.mark(seq);
        Ok(())
    }

    #[test]
    fn in_order_reorder_duplicate_and_old() {
        let mut w = Window::new(0);
        assert!(matches!(accept(&mut w, 0), Err(ReplayError::Replayed)));
        for s in (1..3000).rev().step_by(7) {
            // large jumps and reorders
            let _ = accept(&mut w, s);
        }
        assert_eq!(w.top(), 2999);
        assert!(matches!(
            w.check(2999 - 1024),
            Err(ReplayError::OutsideWindow)
        ));
        accept(&mut w, 3000).unwrap();
        // 1978 = 3000 - 1022 was never offered (2999 - 1978 is not a multiple of 7).
        accept(&mut w, 3000 - 1022).unwrap();
        assert!(matches!(w.check(3000 - 1022), Err(ReplayError::Replayed)));
        // 1977 = 2999 - 7 * 146 was accepted earlier and is still inside the window.
        assert!(matches!(w.check(3000 - 1023), Err(ReplayError::Replayed)));
        assert!(matches!(
            w.check(3000 - 1024),
            Err(ReplayError::OutsideWindow)
        ));
    }

    #[test]
    fn exhaustive_against_model() {
        // Compare with a naive set-based model over a pseudo-random walk.
        use std::collections::BTreeSet;
        let mut model: BTreeSet<u64> = BTreeSet::new();
        let mut top = 5000u64;
        let mut w = Window::new(top);
        model.insert(top);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = match x % 10 {
                0 => top + 1 + (x >> 8) % 3000,
                1..=6 => top.saturating_sub((x >> 8) % 1100),
                _ => top + (x >> 8) % 70,
            };
            let expect = if seq > top {
                Ok(())
            } else if top - seq >= WINDOW_SIZE {
                Err(0)
            } else if model.contains(&seq) {
                Err(1)
            } else {
                Ok(())
            };
            let got = accept(&mut w, seq).map_err(|e| match e {
                ReplayError::OutsideWindow => 0,
                ReplayError::Replayed => 1,
                _ => 2,
            });
            assert_eq!(got, expect, "seq {seq} top {top}");
            if got.is_ok() {
                model.insert(seq);
                top = top.max(seq);
            }
        }
    }

    #[test]
    fn u64_max_edges() {
        let mut w = Window::new(u64::MAX - 2000);
        accept(&mut w, u64::MAX).unwrap();
        assert!(matches!(w.check(u64::MAX), Err(ReplayError::Replayed)));
        accept(&mut w, u64::MAX - 1).unwrap();
        accept(&mut w, u64::MAX - 1023).unwrap();
        assert!(matches!(
            w.check(u64::MAX - 1024),
            Err(ReplayError::OutsideWindow)
        ));
        assert!(matches!(w.check(0), Err(ReplayError::OutsideWindow)));
        let mut w = Window::new(0);
        accept(&mut w, u64::MAX).unwrap();
        assert!(matches!(w.check(0), Err(ReplayError::OutsideWindow)));
    }
}
