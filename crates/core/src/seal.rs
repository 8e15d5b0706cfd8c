//! Writer side of the segmented AES-256-GCM layer (docs/FORMAT.md 2.2-2.4).
//!
//! Plaintext (the compressed stream) is cut into segments of exactly `segment_size` bytes; a full
//! segment is only sealed as non-final once at least one more byte arrives, so the final segment
//! is never empty unless it is the only one. Segments are sealed on the worker threads, at most
//! `2 x threads` in flight, and emitted in order after the 87-byte header.

use std::sync::Arc;

use ring::aead::{Aad, Nonce};

use crate::error::{CodecError, Result};
use crate::format::*;
use crate::keys::{header_mac, key_check, stream_keys, StreamKeys};
use crate::output::Output;
use crate::pool::{Ordered, Workers};

pub(crate) struct Sealer {
    keys: Arc<StreamKeys>,
    prefix: [u8; NONCE_PREFIX_LEN],
    segment_size: usize,
    /// frame slot (4 bytes) || plaintext of the current segment.
    cur: Vec<u8>,
    index: u64,
    header: Option<[u8; HEADER_LEN]>,
    workers: Arc<Workers>,
    queue: Ordered<Vec<u8>>,
}

impl Sealer {
    /// `salt` and `prefix` must be fresh random values for every stream (tests fix them).
    pub(crate) fn new(
        master: &[u8; KEY_LEN],
        compression: Compression,
        segment_size: u32,
        salt: [u8; SALT_LEN],
        prefix: [u8; NONCE_PREFIX_LEN],
        threads: usize,
        workers: Arc<Workers>,
    ) -> Sealer {
        let keys = stream_keys(master, &salt);
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8] = VERSION;
        h[9] = ALGORITHM;
        h[10] = compression.byte();
        h[11] = 0;
        h[12..16].copy_from_slice(&segment_size.to_be_bytes());
        h[16..32].copy_from_slice(&key_check(master));
        h[32..64].copy_from_slice(&salt);
        h[64..71].copy_from_slice(&prefix);
        let mac = header_mac(&keys.header_key, &h);
        h[71..87].copy_from_slice(&mac);
        Sealer {
            keys: Arc::new(keys),
            prefix,
            segment_size: segment_size as usize,
            cur: new_segment(segment_size as usize),
            index: 0,
            header: Some(h),
            workers,
            queue: Ordered::new(2 * threads.max(1)),
        }
    }

    fn emit_header(&mut self, out: &mut Output) {
        if let Some(h) = self.header.take() {
            out.extend_from_slice(&h);
        }
    }

    fn submit(&mut self, last: bool, out: &mut Output) -> Result<()> {
        if self.index > MAX_SEGMENT_INDEX {
            return Err(CodecError::Internal(
                "stream too long: more than 2^32 segments".into(),
            ));
        }
        while let Some(seg) = self.queue.oldest_if_full()? {
            out.push_piece(seg);
        }
        let next = if last {
            Vec::new()
        } else {
            new_segment(self.segment_size)
        };
        let buf = std::mem::replace(&mut self.cur, next);
        let (keys, prefix, index) = (Arc::clone(&self.keys), self.prefix, self.index as u32);
        self.index += 1;
        self.queue.push(
            self.workers
                .submit(move || seal_segment(&keys, &prefix, index, last, buf)),
        );
        Ok(())
    }

    /// Sealed segments go to `out` as pieces of their own (no copy into one buffer).
    pub(crate) fn push(&mut self, mut input: &[u8], out: &mut Output) -> Result<()> {
        self.emit_header(out);
        let full = FRAME_LEN + self.segment_size;
        while !input.is_empty() {
            if self.cur.len() == full {
                self.submit(false, out)?;
            }
            let n = (full - self.cur.len()).min(input.len());
            self.cur.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        while let Some(seg) = self.queue.try_oldest()? {
            out.push_piece(seg);
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self, out: &mut Output) -> Result<()> {
        self.emit_header(out);
        self.submit(true, out)?;
        while let Some(seg) = self.queue.wait_oldest()? {
            out.push_piece(seg);
        }
        Ok(())
    }
}

fn new_segment(segment_size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(FRAME_LEN + segment_size + TAG_LEN);
    v.extend_from_slice(&[0u8; FRAME_LEN]);
    v
}

/// Seals `buf` = frame slot || plaintext in place into frame || ciphertext || tag.
fn seal_segment(
    keys: &StreamKeys,
    prefix: &[u8; NONCE_PREFIX_LEN],
    index: u32,
    last: bool,
    mut buf: Vec<u8>,
) -> Vec<u8> {
    let len = (buf.len() - FRAME_LEN) as u32;
    let fr = frame(len, last);
    buf[..FRAME_LEN].copy_from_slice(&fr);
    let tag = keys
        .segment
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce(prefix, index, last)),
            Aad::from(fr),
            &mut buf[FRAME_LEN..],
        )
        .expect("seal: internal error: AES-GCM seal of <= 16 MiB cannot fail");
    buf.extend_from_slice(tag.as_ref());
    buf
}
