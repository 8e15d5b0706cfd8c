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
//! where they were written (a piece handed over closes the tail before it).

use std::ops::{Deref, DerefMut};

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

    /// Appends `piece` as it is (no copy).
    pub(crate) fn push_piece(&mut self, piece: Vec<u8>) {
        if piece.is_empty() {
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
        let mut out = Output::new();
        out.extend_from_slice(b"ab");
        out.push_piece(b"cd".to_vec());
        out.push_piece(Vec::new());
        out.extend_from_slice(b"e");
        out.push_piece(b"fg".to_vec());
        assert_eq!(out.total_len(), 7);
        assert_eq!(
            out.len(),
            0,
            "the deref is the open tail, closed by the last piece"
        );
        let pieces = out.into_pieces();
        assert_eq!(
            pieces,
            vec![
                b"ab".to_vec(),
                b"cd".to_vec(),
                b"e".to_vec(),
                b"fg".to_vec()
            ]
        );

        let mut out = Output::new();
        out.push_piece(b"x".to_vec());
        out.extend_from_slice(b"yz");
        assert_eq!(join(out.into_pieces()), b"xyz");
        assert!(Output::new().into_pieces().is_empty());
    }
}
