//! The output of one encoder or decoder call as a list of owned pieces, so that a buffer made
//! whole on a worker (a sealed segment, a gzip member's inflated bytes, an opened segment of a
//! `none` stream) reaches the caller as it is, instead of being copied into one large fresh buffer
//! per call. At 1+ GB/s that copy and the page faults of the fresh buffer cost about a fifth of a
//! restore's time and almost half of encryption's (A/B runs, docs/BENCHMARKS.md).
//!
//! Writers that produce bytes bit by bit (compressors, serial inflaters) write into the open
//! `tail`, which `Output` dereferences to, exactly as into a `Vec<u8>`: `len()`, `reserve`,
//! `resize` and `truncate` through the deref are the TAIL's; `total_len` is the whole output's.
//! Invariant: the output, in order, is every piece handed over, with the tail's bytes at the place
//! where they were written (a piece kept whole closes the tail before it; a piece under
//! `SMALL_PIECE` is copied into the tail).

use std::ops::{Deref, DerefMut};

/// Pieces shorter than this are copied into the tail instead of being handed over on their own.
pub(crate) const SMALL_PIECE: usize = 64 << 10;

#[derive(Default)]
pub(crate) struct Output {
    done: Vec<Vec<u8>>,
    done_len: usize,
    tail: Vec<u8>,
}

impl Output {
    pub(crate) fn new() -> Output {
        Output::default()
    }

    /// Appends `piece` as it is (no copy), or, below `SMALL_PIECE` bytes, copied into the tail
    /// (small segments, e.g. `segmentSize` 1024, would otherwise reach JS as thousands of tiny
    /// Buffers per call, each costing more to hand over than to copy).
    pub(crate) fn push_piece(&mut self, piece: Vec<u8>) {
        if piece.len() < SMALL_PIECE {
            self.tail.extend_from_slice(&piece);
            return;
        }
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.done_len += tail.len();
            self.done.push(tail);
        }
        self.done_len += piece.len();
        self.done.push(piece);
    }

    /// Bytes of the whole output (every piece and the tail).
    pub(crate) fn total_len(&self) -> usize {
        self.done_len + self.tail.len()
    }

    /// The pieces in order; none of them is empty.
    pub(crate) fn into_pieces(mut self) -> Vec<Vec<u8>> {
        if !self.tail.is_empty() {
            self.done.push(self.tail);
        }
        self.done
    }
}

/// Pieces joined into one buffer (no copy when there is only one).
pub(crate) fn join(mut pieces: Vec<Vec<u8>>) -> Vec<u8> {
    if pieces.len() == 1 {
        return pieces.pop().expect("output: one piece");
    }
    pieces.concat()
}

impl Deref for Output {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.tail
    }
}

impl DerefMut for Output {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_tail_writes_keep_their_order_and_no_piece_is_empty() {
        let big = |b: u8| vec![b; SMALL_PIECE];
        let mut out = Output::new();
        out.extend_from_slice(b"ab");
        out.push_piece(big(1));
        out.push_piece(Vec::new());
        out.extend_from_slice(b"e");
        out.push_piece(big(2));
        assert_eq!(out.total_len(), 3 + 2 * SMALL_PIECE);
        assert_eq!(
            out.len(),
            0,
            "the deref is the open tail, closed by the last piece"
        );
        assert_eq!(
            out.into_pieces(),
            vec![b"ab".to_vec(), big(1), b"e".to_vec(), big(2)]
        );

        // Small pieces join the tail, in order.
        let mut out = Output::new();
        out.push_piece(b"x".to_vec());
        out.extend_from_slice(b"yz");
        out.push_piece(vec![b'w'; SMALL_PIECE - 1]);
        let pieces = out.into_pieces();
        assert_eq!(pieces.len(), 1);
        assert_eq!(&pieces[0][..4], b"xyzw");
        assert_eq!(pieces[0].len(), 3 + SMALL_PIECE - 1);

        let mut out = Output::new();
        out.push_piece(big(3));
        out.extend_from_slice(b"t");
        assert_eq!(join(out.into_pieces()), [big(3), b"t".to_vec()].concat());
        assert!(Output::new().into_pieces().is_empty());
    }
}
