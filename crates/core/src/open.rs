//! Reader side of the segmented AES-256-GCM layer: checks everything FORMAT.md 2.5 lists, in
//! that order, and hands on a segment's plaintext only after its tag verified.
//!
//! Segments are opened on the worker threads (at most `2 x threads` in flight) and delivered in
//! order. When a check fails in the parsing thread (length, truncation, trailing data), results of
//! earlier segments still in flight are awaited first, so the error reported is always the first
//! failure in stream order. The caller (`Decoder`) makes errors sticky.

use std::sync::Arc;

use ring::aead::{Aad, Nonce, Tag};

use crate::error::{CodecError, Result};
use crate::format::*;
use crate::keys::{ct_eq, header_mac, key_check, stream_keys, StreamKeys};
use crate::pool::{BufferPool, Ordered, Workers};

/// How far around a failing segment's index the reader looks for the index it really has.
pub const ORDER_SEARCH: u64 = 64;

enum Phase {
    Header,
    Segments,
    AfterFinal,
}

/// Receives (stream compression, verified plaintext of one segment), in order.
pub(crate) type Sink<'a> = dyn FnMut(Compression, Vec<u8>) -> Result<()> + 'a;

pub(crate) struct Opener {
    master: [u8; KEY_LEN],
    expected: Option<Compression>,
    phase: Phase,
    header: Vec<u8>,
    keys: Option<Arc<StreamKeys>>,
    prefix: [u8; NONCE_PREFIX_LEN],
    segment_size: u32,
    compression: Compression,
    /// frame || ciphertext || tag of the segment being read.
    cur: Vec<u8>,
    /// Total bytes of the current segment once its frame is known (0 = frame not read yet).
    need: usize,
    last: bool,
    index: u64,
    workers: Arc<Workers>,
    queue: Ordered<Result<Vec<u8>>>,
    /// Segment buffers (ciphertext in, plaintext out) shared with the workers and the caller.
    buffers: BufferPool,
}

impl Opener {
    pub(crate) fn new(
        master: [u8; KEY_LEN],
        expected: Option<Compression>,
        threads: usize,
        workers: Arc<Workers>,
    ) -> Opener {
        Opener {
            master,
            expected,
            phase: Phase::Header,
            header: Vec::with_capacity(HEADER_LEN),
            keys: None,
            prefix: [0; NONCE_PREFIX_LEN],
            segment_size: 0,
            compression: Compression::None,
            cur: Vec::new(),
            need: 0,
            last: false,
            index: 0,
            workers,
            queue: Ordered::new(2 * threads.max(1)),
            // a one-thread decoder (a chain restore's member) keeps one idle segment buffer,
            // not six: each is ~1 MiB held per member for the whole restore
            buffers: BufferPool::new(if threads <= 1 { 1 } else { 2 * threads + 4 }),
        }
    }

    /// Checks the complete header in the order of FORMAT.md 2.5 and derives the stream keys.
    fn parse_header(&mut self) -> Result<()> {
        let h = &self.header;
        if &h[..8] != MAGIC {
            return Err(CodecError::NotEncryptedStream);
        }
        let (version, algorithm, comp, reserved) = (h[8], h[9], h[10], h[11]);
        if version != VERSION || algorithm != ALGORITHM || reserved != 0 {
            return Err(CodecError::UnsupportedVersion {
                version,
                algorithm,
                reserved,
                compression: comp,
            });
        }
        let found = Compression::from_byte(comp);
        match (self.expected, found) {
            (Some(e), Some(f)) if e == f => {}
            (Some(e), f) => {
                return Err(CodecError::CompressionMismatch {
                    found: f
                        .map(|c| c.name().to_string())
                        .unwrap_or_else(|| format!("{comp} (unknown)")),
                    expected: e.name().to_string(),
                })
            }
            (None, None) => {
                return Err(CodecError::UnsupportedVersion {
                    version,
                    algorithm,
                    reserved,
                    compression: comp,
                })
            }
            (None, Some(_)) => {}
        }
        let segment_size = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        if !segment_size_ok(segment_size) {
            return Err(CodecError::BadHeader { segment_size });
        }
        if !ct_eq(&h[16..32], &key_check(&self.master)) {
            return Err(CodecError::WrongKey);
        }
        let keys = stream_keys(&self.master, &h[32..64]);
        if !ct_eq(&h[71..87], &header_mac(&keys.header_key, h)) {
            return Err(CodecError::HeaderTampered);
        }
        self.prefix.copy_from_slice(&h[64..71]);
        self.segment_size = segment_size;
        self.compression = found.expect("open: internal error: compression checked above");
        self.keys = Some(Arc::new(keys));
        self.cur = self.buffers.take(self.segment_len());
        self.phase = Phase::Segments;
        Ok(())
    }

    /// Awaits every segment in flight; the first error among them wins over `err`.
    fn fail_after_drain(&mut self, err: CodecError) -> CodecError {
        loop {
            match self.queue.wait_oldest() {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) | Err(e) => return e,
                Ok(None) => return err,
            }
        }
    }

    fn deliver_ready(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        while let Some(r) = self.queue.try_oldest()? {
            sink(self.compression, r?)?;
        }
        Ok(())
    }

    fn submit(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        while let Some(r) = self.queue.oldest_if_full()? {
            sink(self.compression, r?)?;
        }
        let next = if self.last {
            Vec::new()
        } else {
            self.buffers.take(self.segment_len())
        };
        let seg = std::mem::replace(&mut self.cur, next);
        let keys = Arc::clone(
            self.keys
                .as_ref()
                .expect("open: internal error: keys before segments"),
        );
        let (prefix, index, last) = (self.prefix, self.index, self.last);
        let buffers = self.buffers.clone();
        self.queue.push(
            self.workers
                .submit(move || open_segment(&keys, &prefix, index, last, seg, &buffers)),
        );
        self.index += 1;
        self.need = 0;
        if last {
            self.phase = Phase::AfterFinal;
        }
        Ok(())
    }

    /// Checks a frame against FORMAT.md 2.2: non-final segments are exactly `segment_size`,
    /// the final one at most that and empty only when it is segment 0; the counter fits in u32.
    fn check_frame(&mut self) -> Result<()> {
        let (len, last) = parse_frame([self.cur[0], self.cur[1], self.cur[2], self.cur[3]]);
        let ok = self.index <= MAX_SEGMENT_INDEX
            && if last {
                len <= self.segment_size && (len > 0 || self.index == 0)
            } else {
                len == self.segment_size
            };
        if !ok {
            return Err(CodecError::BadSegmentLength {
                segment: self.index,
                len,
            });
        }
        self.last = last;
        self.need = FRAME_LEN + len as usize + TAG_LEN;
        Ok(())
    }

    pub(crate) fn push(&mut self, mut input: &[u8], sink: &mut Sink<'_>) -> Result<()> {
        while !input.is_empty() {
            match self.phase {
                Phase::Header => {
                    let n = (HEADER_LEN - self.header.len()).min(input.len());
                    self.header.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.header.len() == HEADER_LEN {
                        self.parse_header()?;
                    }
                }
                Phase::Segments => {
                    let want = if self.need == 0 { FRAME_LEN } else { self.need };
                    let n = (want - self.cur.len()).min(input.len());
                    self.cur.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.need == 0 && self.cur.len() == FRAME_LEN {
                        if let Err(e) = self.check_frame() {
                            return Err(self.fail_after_drain(e));
                        }
                    }
                    if self.need != 0 && self.cur.len() == self.need {
                        self.submit(sink)?;
                    }
                }
                Phase::AfterFinal => return Err(self.fail_after_drain(CodecError::TrailingData)),
            }
        }
        self.deliver_ready(sink)
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        match self.phase {
            Phase::Header => Err(CodecError::TruncatedHeader),
            Phase::Segments => {
                let err = if self.cur.is_empty() {
                    CodecError::Truncated {
                        after: self.index.checked_sub(1),
                    }
                } else {
                    CodecError::TruncatedSegment {
                        segment: self.index,
                    }
                };
                Err(self.fail_after_drain(err))
            }
            Phase::AfterFinal => {
                while let Some(r) = self.queue.wait_oldest()? {
                    sink(self.compression, r?)?;
                }
                Ok(())
            }
        }
    }

    /// Bytes of a whole segment (frame, ciphertext, tag) of this stream.
    fn segment_len(&self) -> usize {
        FRAME_LEN + self.segment_size as usize + TAG_LEN
    }

    /// Stream bytes taken in but not yet delivered as plaintext (segments in flight and the one
    /// being read): an upper bound of the plaintext the next calls deliver beyond their input.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.queue.len() * self.segment_size as usize + self.cur.len()
    }

    /// The pool the sink may give delivered plaintext buffers back to.
    pub(crate) fn buffers(&self) -> BufferPool {
        self.buffers.clone()
    }

    /// The stream's compression, once the header has been read.
    pub(crate) fn compression(&self) -> Option<Compression> {
        self.keys.as_ref().map(|_| self.compression)
    }
}

/// Opens one segment (frame || ciphertext || tag) as segment `index`. On a failing tag it tries
/// the indexes within +-ORDER_SEARCH (both flags) to tell reordering from corruption.
fn open_segment(
    keys: &StreamKeys,
    prefix: &[u8; NONCE_PREFIX_LEN],
    index: u64,
    last: bool,
    seg: Vec<u8>,
    buffers: &BufferPool,
) -> Result<Vec<u8>> {
    let fr = [seg[0], seg[1], seg[2], seg[3]];
    let body = &seg[FRAME_LEN..];
    let ct_len = body.len() - TAG_LEN;
    let (ct, tag_bytes) = body.split_at(ct_len);
    let tag = Tag::try_from(tag_bytes).expect("open: internal error: tag is 16 bytes");
    let mut plain = buffers.take(ct.len());
    plain.extend_from_slice(ct);
    let try_open = |plain: &mut Vec<u8>, i: u64, flag: bool| -> bool {
        let n = Nonce::assume_unique_for_key(nonce(prefix, i as u32, flag));
        keys.segment
            .open_in_place_separate_tag(n, Aad::from(fr), tag, plain, 0..)
            .is_ok()
    };
    if try_open(&mut plain, index, last) {
        buffers.put(seg);
        return Ok(plain);
    }
    for d in 1..=ORDER_SEARCH {
        for m in [index.checked_sub(d), index.checked_add(d)]
            .into_iter()
            .flatten()
        {
            if m > MAX_SEGMENT_INDEX {
                continue;
            }
            for flag in [false, true] {
                plain.copy_from_slice(ct);
                if try_open(&mut plain, m, flag) {
                    return Err(CodecError::SegmentOrder {
                        segment: index,
                        actual: m,
                    });
                }
            }
        }
    }
    Err(CodecError::SegmentAuth { segment: index })
}
