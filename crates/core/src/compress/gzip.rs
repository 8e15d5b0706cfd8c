//! Gzip as independent members that carry their own length (docs/FORMAT.md 2.1), compressed and
//! decompressed on every core.
//!
//! Writing: the input is cut into `BLOCK` (2 MiB) blocks; each is deflated whole by libdeflate
//! (at the level `levels::gzip_levels` gives the member's index; one compressor per level and one
//! scratch buffer per worker thread, reused) into one
//! complete gzip member (RFC 1952) whose header has an extra field, subfield `S3`, holding the
//! member's total length and a flag on the stream's last member. Members back to back are a
//! standard multi-member gzip file: `gzip -d`, Node's `gunzip` and every other reader concatenate
//! their outputs. At most `2 x threads` blocks are in flight.
//!
//! Reading is `gunzip.rs`; `announced` here is the one place that says which headers are ours.

use std::cell::RefCell;
use std::sync::Arc;

use libdeflater::{CompressionLvl, Compressor as Deflater};

use super::{append, Compressor};
use crate::error::{CodecError, Result};
use crate::pool::{Ordered, Workers};

/// Input bytes per member. Independent members lose the 32 KiB of history a continuous stream
/// has at each boundary: measured on the corpus, 0.5 % of ratio at 1 MiB, 0.25 % at 2 MiB.
pub const BLOCK: usize = 2 << 20;
/// Header bytes of a member written here: 10 fixed + XLEN (2) + one 9-byte subfield
/// (id 2, LEN 2, member length u32 LE, flags u8).
pub(crate) const HEADER_LEN: usize = 21;
/// Flags bit 0: the stream's last member.
const LAST: u8 = 1;
/// CRC-32 and ISIZE.
const TRAILER_LEN: usize = 8;
/// Extra-field subfield id of the member length ("S3", for s3db-backup).
const SUBFIELD: [u8; 2] = *b"S3";
/// A length above this is not trusted for gathering (the rest is read serially instead).
const MAX_MEMBER: usize = 64 << 20;

/// The header of a member of `total` bytes. XFL as zlib writes it: 2 = best, 4 = fastest.
fn member_header(node_level: i32, total: u32, last: bool) -> [u8; HEADER_LEN] {
    let xfl = if node_level == 9 {
        2
    } else if node_level < 2 {
        4
    } else {
        0
    };
    let mut h = [0u8; HEADER_LEN];
    h[..10].copy_from_slice(&[0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, xfl, 3]); // FLG = FEXTRA, OS = Unix
    h[10..12].copy_from_slice(&9u16.to_le_bytes()); // XLEN
    h[12..14].copy_from_slice(&SUBFIELD);
    h[14..16].copy_from_slice(&5u16.to_le_bytes()); // subfield LEN
    h[16..20].copy_from_slice(&total.to_le_bytes());
    h[20] = if last { LAST } else { 0 };
    h
}

/// The member length and last-member flag a header written by `member_header` announces; `None`
/// for any other header (another writer, other flags, or a length that cannot be a member).
pub(crate) fn announced(h: &[u8]) -> Option<(usize, bool)> {
    if h.len() < HEADER_LEN
        || h[..4] != [0x1f, 0x8b, 8, 0x04]
        || h[10..16] != [9, 0, SUBFIELD[0], SUBFIELD[1], 5, 0]
        || h[20] & !LAST != 0
    {
        return None;
    }
    let total = u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize;
    (HEADER_LEN + 2 + TRAILER_LEN..=MAX_MEMBER)
        .contains(&total)
        .then_some((total, h[20] & LAST != 0))
}

/// A worker thread's libdeflate compressors, one per level it has used (workers are shared by the
/// streams of a process: a schedule uses one or two levels, all streams at most the 9 levels;
/// each state is ~0.5-1 MiB), and a scratch buffer of the compress bound, touched once: members
/// leave with their exact size.
#[derive(Default)]
struct DeflaterSlot {
    deflaters: Vec<(i32, Deflater)>,
    scratch: Vec<u8>,
}

thread_local! {
    static DEFLATER: RefCell<DeflaterSlot> = RefCell::new(DeflaterSlot::default());
}

/// One block as one complete member, deflated at libdeflate `level`.
fn gzip_member(level: i32, node_level: i32, data: &[u8], last: bool) -> Result<Vec<u8>> {
    DEFLATER.with(|cell| {
        let s = &mut *cell.borrow_mut();
        let at = match s.deflaters.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                let lvl = CompressionLvl::new(level).map_err(|_| {
                    CodecError::Internal(format!("libdeflate has no level {level}"))
                })?;
                s.deflaters.push((level, Deflater::new(lvl)));
                s.deflaters.len() - 1
            }
        };
        let deflater = &mut s.deflaters[at].1;
        let bound = deflater.deflate_compress_bound(data.len());
        if s.scratch.len() < bound {
            s.scratch.resize(bound, 0);
        }
        let n = deflater
            .deflate_compress(data, &mut s.scratch[..bound])
            .map_err(|e| CodecError::Internal(format!("libdeflate: {e:?}")))?;
        let total = u32::try_from(HEADER_LEN + n + TRAILER_LEN)
            .map_err(|_| CodecError::Internal("gzip member too large".into()))?;
        let mut out = Vec::with_capacity(total as usize);
        out.extend_from_slice(&member_header(node_level, total, last));
        out.extend_from_slice(&s.scratch[..n]);
        out.extend_from_slice(&zlib_rs::crc32::crc32(0, data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        Ok(out)
    })
}

pub(crate) struct ParallelGzip {
    /// libdeflate levels, member `i` at `levels[i % levels.len()]` (from `levels::gzip_levels`).
    levels: &'static [i32],
    /// Members submitted so far (the schedule's position).
    members: usize,
    /// Node-semantics level, only for the header's XFL byte (as Node writes it).
    node_level: i32,
    block: Vec<u8>,
    workers: Arc<Workers>,
    queue: Ordered<Result<Vec<u8>>>,
}

impl ParallelGzip {
    pub(crate) fn new(
        levels: &'static [i32],
        node_level: i32,
        threads: usize,
        workers: Arc<Workers>,
    ) -> ParallelGzip {
        ParallelGzip {
            levels,
            members: 0,
            node_level,
            block: Vec::with_capacity(BLOCK),
            workers,
            queue: Ordered::new(2 * threads.max(1)),
        }
    }

    fn submit(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        while let Some(r) = self.queue.oldest_if_full()? {
            append(out, r?);
        }
        let next = Vec::with_capacity(if last { 0 } else { BLOCK });
        let data = std::mem::replace(&mut self.block, next);
        let (level, node_level) = (
            self.levels[self.members % self.levels.len()],
            self.node_level,
        );
        self.members += 1;
        self.queue.push(
            self.workers
                .submit(move || gzip_member(level, node_level, &data, last)),
        );
        Ok(())
    }
}

impl Compressor for ParallelGzip {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            // A full block goes only when more input follows: the block left at `finish` is the
            // last member, and is not empty unless the whole stream is.
            if self.block.len() == BLOCK {
                self.submit(false, out)?;
            }
            let n = (BLOCK - self.block.len()).min(input.len());
            self.block.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        while let Some(r) = self.queue.try_oldest()? {
            append(out, r?);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        // Empty input still makes one (empty) member: a gzip file has at least one.
        self.submit(true, out)?;
        while let Some(r) = self.queue.wait_oldest()? {
            append(out, r?);
        }
        Ok(())
    }
}
