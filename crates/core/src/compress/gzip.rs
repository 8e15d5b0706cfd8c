//! Gzip as independent members that carry their own length (docs/FORMAT.md 2.1), compressed and
//! decompressed on every core.
//!
//! Writing: the input is cut into `BLOCK` (2 MiB) blocks; each is deflated on a worker into one
//! complete gzip member (RFC 1952) whose header has an extra field, subfield `S3`, holding the
//! member's total length and a flag on the stream's last member. Members back to back are a
//! standard multi-member gzip file: `gzip -d`, Node's `gunzip` and every other reader concatenate
//! their outputs. At most `2 x threads` blocks are in flight.
//!
//! Reading: `ParallelGunzip` reads a member's header, takes the length from `S3`, gathers exactly
//! that many bytes and inflates the member on a worker (its CRC-32 and size are checked there);
//! results are emitted in stream order. A stream that ends after a member without the last-member
//! flag is truncated (a cut between members would otherwise read as a shorter valid file). A
//! member WITHOUT the field (streams written before this layout, by Node or by `gzip`) switches
//! the rest of the stream to the serial `Inflater`, which reads any gzip. Invariants: a member is
//! dispatched only when all its bytes are here; nothing is emitted out of order; at most
//! `2 x threads` members (each at most `MAX_MEMBER` stored bytes) are held.

use std::sync::Arc;

use libz_rs_sys as z;

use super::deflate::{Inflater, RawDeflate};
use super::levels::ZlibParams;
use super::{append, Compressor, Decompressor};
use crate::error::{CodecError, Result};
use crate::pool::{Ordered, Workers};

/// Input bytes per member. Independent members lose the 32 KiB of history a continuous stream
/// has at each boundary: measured on the corpus, 0.5 % of ratio at 1 MiB, 0.25 % at 2 MiB.
pub const BLOCK: usize = 2 << 20;
/// Header bytes of a member written here: 10 fixed + XLEN (2) + one 9-byte subfield
/// (id 2, LEN 2, member length u32 LE, flags u8).
pub const HEADER_LEN: usize = 21;
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
fn announced(h: &[u8]) -> Option<(usize, bool)> {
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

/// One block as one complete member.
fn gzip_member(params: ZlibParams, node_level: i32, data: &[u8], last: bool) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len() / 2 + 1024);
    out.extend_from_slice(&[0; HEADER_LEN]);
    RawDeflate::new(params)?.compress(data, z::Z_FINISH, &mut out)?;
    out.extend_from_slice(&zlib_rs::crc32::crc32(0, data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let total = u32::try_from(out.len())
        .map_err(|_| CodecError::Internal("gzip member too large".into()))?;
    out[..HEADER_LEN].copy_from_slice(&member_header(node_level, total, last));
    Ok(out)
}

pub(crate) struct ParallelGzip {
    params: ZlibParams,
    /// Node-semantics level, only for the header's XFL byte (as Node writes it).
    node_level: i32,
    block: Vec<u8>,
    workers: Arc<Workers>,
    queue: Ordered<Result<Vec<u8>>>,
}

impl ParallelGzip {
    /// `params` are the zlib-rs settings (mapped from `node_level` by `levels`).
    pub(crate) fn new(
        params: ZlibParams,
        node_level: i32,
        threads: usize,
        workers: Arc<Workers>,
    ) -> ParallelGzip {
        ParallelGzip {
            params,
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
        let (params, level) = (self.params, self.node_level);
        self.queue.push(
            self.workers
                .submit(move || gzip_member(params, level, &data, last)),
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

/// Inflates one whole member (header, deflate data, CRC-32 and size checked by `Inflater`).
fn inflate_member(member: &[u8]) -> Result<Vec<u8>> {
    let isize_at = member.len() - 4;
    let isize = u32::from_le_bytes([
        member[isize_at],
        member[isize_at + 1],
        member[isize_at + 2],
        member[isize_at + 3],
    ]) as usize;
    // ISIZE is only a hint for the reservation (it is the size mod 2^32, and unchecked yet).
    let mut out = Vec::with_capacity(isize.min(MAX_MEMBER) + 1);
    let mut inflater = Inflater::new(true);
    inflater.push(member, &mut out)?;
    inflater.finish(&mut out)?;
    Ok(out)
}

pub(crate) struct ParallelGunzip {
    /// Bytes of the member being gathered, from its first header byte.
    member: Vec<u8>,
    /// Its announced length and last-member flag once the header is here.
    expected: Option<(usize, bool)>,
    /// Whether the member dispatched last carried the last-member flag.
    ended: bool,
    /// Set when a member without the length field was met: it and the rest are read serially.
    serial: Option<Inflater>,
    /// Members handed to workers so far.
    dispatched: u64,
    workers: Arc<Workers>,
    queue: Ordered<Result<Vec<u8>>>,
}

impl ParallelGunzip {
    pub(crate) fn new(threads: usize, workers: Arc<Workers>) -> ParallelGunzip {
        ParallelGunzip {
            member: Vec::new(),
            expected: None,
            ended: false,
            serial: None,
            dispatched: 0,
            workers,
            queue: Ordered::new(2 * threads.max(1)),
        }
    }

    /// Emits every member in flight, then reads the gathered bytes and all that follows serially.
    fn go_serial(&mut self, out: &mut Vec<u8>) -> Result<()> {
        while let Some(r) = self.queue.wait_oldest()? {
            append(out, r?);
        }
        let mut inflater = Inflater::new(true);
        let gathered = std::mem::take(&mut self.member);
        inflater.push(&gathered, out)?;
        self.serial = Some(inflater);
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<u8>) -> Result<()> {
        while let Some(r) = self.queue.oldest_if_full()? {
            append(out, r?);
        }
        let member = std::mem::take(&mut self.member);
        self.ended = self.expected.take().is_some_and(|(_, last)| last);
        self.dispatched += 1;
        self.queue
            .push(self.workers.submit(move || inflate_member(&member)));
        Ok(())
    }
}

impl Decompressor for ParallelGunzip {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            if let Some(serial) = &mut self.serial {
                return serial.push(input, out);
            }
            let want = self.expected.map_or(HEADER_LEN, |(total, _)| total);
            let n = (want - self.member.len()).min(input.len());
            self.member.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.member.len() < want {
                break;
            }
            match self.expected {
                Some(_) => self.dispatch(out)?,
                None => match announced(&self.member) {
                    Some((total, last)) => {
                        self.member.reserve_exact(total - HEADER_LEN);
                        self.expected = Some((total, last));
                    }
                    None => self.go_serial(out)?,
                },
            }
        }
        while let Some(r) = self.queue.try_oldest()? {
            append(out, r?);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        // Bytes of an unfinished member (or no member at all): the serial reader reports exactly
        // what is wrong with them (truncated, not gzip).
        if self.serial.is_none() && (!self.member.is_empty() || self.dispatched == 0) {
            self.go_serial(out)?;
        }
        while let Some(r) = self.queue.wait_oldest()? {
            append(out, r?);
        }
        match &mut self.serial {
            Some(serial) => serial.finish(out),
            None if !self.ended => Err(CodecError::decompress(
                "gzip",
                "the stream ends after a member that is not its last (truncated between members)",
            )),
            None => Ok(()),
        }
    }
}
