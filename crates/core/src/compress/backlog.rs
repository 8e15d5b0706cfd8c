//! Compressed bytes a decompressor has not taken yet because the per-call output limit stopped it
//! (`DecoderOptions::output_limit`): owned buffers in stream order, the front one partly taken.
//!
//! Invariant the decoder's `more()` relies on: bytes are left here only by a call whose output
//! reached the limit (a `Decompressor` takes less than all its input only then), so "the last
//! call's output reached the limit" covers every case where bytes wait here.

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

    /// Gives `d` what it did not take of `input` after a push that took `taken` bytes; with bytes
    /// already waiting, `input` queues behind them untouched (order is kept).
    pub(crate) fn push_rest(&mut self, input: &[u8], taken: usize) {
        if taken < input.len() {
            self.push(input[taken..].to_vec(), 0);
        }
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
        b.push(b"xxabc".to_vec(), 2);
        b.push(b"zzde".to_vec(), 2); // not the front: its taken part is cut off
        b.push_rest(b"fgh", 1);
        b.push(b"ignored".to_vec(), 7);
        let mut d = Copy { seen: Vec::new() };
        let mut out = Output::new();
        b.feed(&mut d, &mut out, 3).unwrap();
        assert_eq!(d.seen, b"abc", "stops at the call that reached the limit");
        assert!(!b.is_empty());
        let mut out = Output::new();
        b.feed(&mut d, &mut out, usize::MAX).unwrap();
        assert_eq!(d.seen, b"abcdegh");
        assert!(b.is_empty());
    }
}
