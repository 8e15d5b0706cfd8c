//! Compressed bytes a decompressor has not taken yet because the per-call output limit stopped it
//! (`DecoderOptions::output_limit`): owned buffers in stream order, the front one partly taken.
//!
//! Invariant the decoder's `more()` relies on: bytes are left here only by a call whose output
//! reached the limit (a `Decompressor` takes less than all its input only then), so "the last
//! call's output reached the limit" covers every case where bytes wait here.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::Decompressor;
use crate::error::Result;
use crate::output::Output;

#[derive(Default)]
pub(crate) struct Backlog {
    queue: VecDeque<Vec<u8>>,
    /// Bytes of the front buffer already taken.
    pos: usize,
}

impl Backlog {
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues `bytes[from..]` behind what waits (nothing if `from` is past its end).
    pub(crate) fn push(&mut self, mut bytes: Vec<u8>, from: usize) {
        if from >= bytes.len() {
            return;
        }
        if self.queue.is_empty() {
            self.pos = from;
        } else if from > 0 {
            bytes.drain(..from);
        }
        self.queue.push_back(bytes);
    }

    /// Feeds what waits to `d`, in order, until it is all taken or `out` holds `limit` bytes.
    pub(crate) fn feed(
        &mut self,
        d: &mut dyn Decompressor,
        out: &mut Output,
        limit: usize,
    ) -> Result<()> {
        while let Some(front) = self.queue.front() {
            self.pos += d.push(&front[self.pos..], out, limit)?;
            if self.pos < front.len() {
                return Ok(()); // stopped at the limit
            }
            self.queue.pop_front();
            self.pos = 0;
        }
        Ok(())
    }

    /// Decompresses `input` into `out` if nothing waits, and queues what the limit kept `d` from
    /// taking; with bytes waiting, all of `input` queues behind them (nothing overtakes them).
    /// A borrowed `input` is copied only for what queues; an owned one that `d` took whole is
    /// handed back (for reuse).
    pub(crate) fn offer(
        &mut self,
        d: &mut dyn Decompressor,
        input: Cow<'_, [u8]>,
        out: &mut Output,
        limit: usize,
    ) -> Result<Option<Vec<u8>>> {
        let taken = match self.is_empty() {
            true => d.push(&input, out, limit)?,
            false => 0,
        };
        match input {
            Cow::Owned(v) if taken == v.len() => return Ok(Some(v)),
            Cow::Owned(v) => self.push(v, taken),
            Cow::Borrowed(s) => self.push(s[taken..].to_vec(), 0),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Inflates" each byte to itself, stopping exactly at the limit.
    struct Copy {
        seen: Vec<u8>,
    }

    impl Decompressor for Copy {
        fn push(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize> {
            let n = input.len().min(limit.saturating_sub(out.total_len()));
            self.seen.extend_from_slice(&input[..n]);
            out.extend_from_slice(&input[..n]);
            Ok(n)
        }
        fn finish(&mut self, _out: &mut Output, _limit: usize) -> Result<bool> {
            Ok(true)
        }
    }

    #[test]
    fn waiting_bytes_are_fed_in_order_and_only_up_to_the_limit() {
        let mut b = Backlog::default();
        let mut d = Copy { seen: Vec::new() };
        let mut out = Output::new();
        // Nothing waits: an offer goes straight through, an owned buffer taken whole comes back.
        let back = b
            .offer(&mut d, Cow::Owned(b"ok".to_vec()), &mut out, 5)
            .unwrap();
        assert_eq!((back.as_deref(), b.is_empty()), (Some(&b"ok"[..]), true));
        // The limit (5) stops it after "xxa": "bc" waits, then everything offered queues behind.
        assert_eq!(
            b.offer(&mut d, Cow::Borrowed(b"xxabc"), &mut out, 5)
                .unwrap(),
            None
        );
        assert_eq!(
            b.offer(&mut d, Cow::Owned(b"de".to_vec()), &mut out, 5)
                .unwrap(),
            None
        );
        b.push(b"zzfgh".to_vec(), 2); // not the front: its taken part is cut off
        b.push(b"ignored".to_vec(), 7);
        // Room again (a new call's output) does not let an offer overtake what waits.
        let mut fresh = Output::new();
        assert_eq!(
            b.offer(&mut d, Cow::Borrowed(b"!"), &mut fresh, 100)
                .unwrap(),
            None
        );
        assert_eq!(d.seen, b"okxxa");
        let mut out = Output::new();
        d.seen.clear();
        b.feed(&mut d, &mut out, 3).unwrap();
        assert_eq!(d.seen, b"bcd", "stops at the call that reached the limit");
        assert!(!b.is_empty());
        let mut out = Output::new();
        b.feed(&mut d, &mut out, usize::MAX).unwrap();
        assert_eq!(d.seen, b"bcdefgh!");
        assert!(b.is_empty());
    }
}
