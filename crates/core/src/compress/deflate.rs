//! pigz-style parallel zlib (`deflate`) compression, and the serial gunzip / zlib inflater (which
//! `gzip` falls back to for gzip written by other tools).
//!
//! The input is cut into `BLOCK` (1 MiB) blocks. Each block is raw-deflated on a worker, primed
//! with the previous 32 KiB of input as dictionary; every block but the last ends with a sync
//! flush (byte-aligned, no BFINAL), the last one is finished. Concatenated, the blocks form ONE
//! deflate stream; the Adler-32 of each block is combined into the single trailer. At most
//! `2 x threads` blocks are in flight. Output equals a standard zlib stream that Node's `inflate`
//! and flate2 read. (A zlib stream has no multi-member form, so unlike gzip it stays one stream.)

use std::sync::Arc;

use flate2::{Decompress, FlushDecompress, Status};
use libz_rs_sys as z;

use super::levels::ZlibParams;
use super::{append, end_verdict, output_step, Compressor, Decompressor};
use crate::error::{CodecError, Result};
use crate::output::Output;
use crate::pool::{Ordered, Workers};

/// Input bytes per parallel block.
pub const BLOCK: usize = 1 << 20;
/// Deflate's window: each block is primed with this much of the preceding input.
pub const DICT: usize = 32 * 1024;

struct BlockOut {
    data: Vec<u8>,
    check: u32,
    len: u64,
}

pub(crate) struct ParallelDeflate {
    params: ZlibParams,
    /// Node-semantics level, only for the header's FLEVEL bits (as Node writes them).
    node_level: i32,
    header_done: bool,
    block: Vec<u8>,
    dict: Vec<u8>,
    check: u32,
    workers: Arc<Workers>,
    queue: Ordered<Result<BlockOut>>,
}

impl ParallelDeflate {
    /// `params` are the zlib-rs settings (mapped from `node_level` by `levels`).
    pub(crate) fn new(
        params: ZlibParams,
        node_level: i32,
        threads: usize,
        workers: Arc<Workers>,
    ) -> ParallelDeflate {
        ParallelDeflate {
            params,
            node_level,
            header_done: false,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            check: 1,
            workers,
            queue: Ordered::new(2 * threads.max(1)),
        }
    }

    fn header(&self) -> [u8; 2] {
        let flevel: u16 = match self.node_level {
            i32::MIN..=1 => 0,
            2..=5 => 1,
            6 => 2,
            _ => 3,
        };
        let mut h: u16 = (0x78 << 8) | (flevel << 6);
        h += 31 - (h % 31);
        h.to_be_bytes()
    }

    fn collect(&mut self, out: &mut Vec<u8>, r: Result<BlockOut>) -> Result<()> {
        let b = r?;
        self.check = zlib_rs::adler32::adler32_combine(self.check, b.check, b.len);
        append(out, b.data);
        Ok(())
    }

    fn submit(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        while let Some(r) = self.queue.oldest_if_full()? {
            self.collect(out, r)?;
        }
        let data = std::mem::replace(
            &mut self.block,
            if last {
                Vec::new()
            } else {
                Vec::with_capacity(BLOCK)
            },
        );
        let dict = std::mem::take(&mut self.dict);
        if !last {
            self.dict = data[data.len().saturating_sub(DICT)..].to_vec();
        }
        let params = self.params;
        self.queue.push(
            self.workers
                .submit(move || deflate_block(params, &dict, &data, last)),
        );
        Ok(())
    }
}

/// A raw-deflate stream of zlib-rs through its zlib C API (`libz-rs-sys`), which, unlike flate2,
/// has `deflateTune`: with it, `levels::ZlibParams` reproduces the exact parameters of Node's zlib.
struct RawDeflate {
    // Boxed: zlib keeps a pointer to its z_stream, so it must not move after init.
    s: Box<z::z_stream>,
}

// SAFETY: the z_stream owns its state exclusively; it is used by one thread at a time.
unsafe impl Send for RawDeflate {}

fn zerr(what: &str, rc: i32) -> CodecError {
    CodecError::Internal(format!("zlib-rs {what} failed with code {rc}"))
}

impl RawDeflate {
    fn new(p: ZlibParams) -> Result<RawDeflate> {
        // SAFETY: an all-zero z_stream (null zalloc/zfree/opaque) is what deflateInit2_ expects.
        let mut s: Box<z::z_stream> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `s` is a valid, zeroed, heap-pinned z_stream; the version and size are the library's own.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *s,
                p.base_level,
                z::Z_DEFLATED,
                -15, // raw deflate, 32 KiB window
                8,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as i32,
            )
        };
        if rc != z::Z_OK {
            return Err(zerr("deflateInit2", rc));
        }
        let mut d = RawDeflate { s };
        if let Some((good, lazy, nice, chain)) = p.tune {
            // SAFETY: the stream was initialized above.
            let rc = unsafe { z::deflateTune(&mut *d.s, good, lazy, nice, chain) };
            if rc != z::Z_OK {
                return Err(zerr("deflateTune", rc));
            }
        }
        Ok(d)
    }

    fn set_dictionary(&mut self, dict: &[u8]) -> Result<()> {
        // SAFETY: initialized stream; `dict` is a valid slice for the duration of the call.
        let rc = unsafe { z::deflateSetDictionary(&mut *self.s, dict.as_ptr(), dict.len() as u32) };
        if rc != z::Z_OK {
            return Err(zerr("deflateSetDictionary", rc));
        }
        Ok(())
    }

    /// Compresses all of `data` with `flush` (Z_SYNC_FLUSH or Z_FINISH), appending to `out`.
    fn compress(&mut self, data: &[u8], flush: i32, out: &mut Vec<u8>) -> Result<()> {
        self.s.next_in = data.as_ptr();
        self.s.avail_in = u32::try_from(data.len())
            .map_err(|_| CodecError::Internal("deflate block too large".into()))?;
        loop {
            if out.capacity() - out.len() < 64 * 1024 {
                out.reserve(out.capacity().max(64 * 1024));
            }
            let spare = out.capacity() - out.len();
            let avail = spare.min(u32::MAX as usize) as u32;
            // SAFETY: next_out points into the spare capacity of `out`, `avail` bytes long;
            // next_in/avail_in describe `data`, alive for this call.
            let rc = unsafe {
                self.s.next_out = out.as_mut_ptr().add(out.len());
                self.s.avail_out = avail;
                let rc = z::deflate(&mut *self.s, flush);
                let written = (avail - self.s.avail_out) as usize;
                out.set_len(out.len() + written);
                rc
            };
            match rc {
                z::Z_STREAM_END => return Ok(()),
                z::Z_OK | z::Z_BUF_ERROR => {
                    if flush != z::Z_FINISH && self.s.avail_in == 0 && self.s.avail_out > 0 {
                        return Ok(());
                    }
                }
                rc => return Err(zerr("deflate", rc)),
            }
        }
    }
}

impl Drop for RawDeflate {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`; ended exactly once.
        unsafe {
            z::deflateEnd(&mut *self.s);
        }
    }
}

fn deflate_block(params: ZlibParams, dict: &[u8], data: &[u8], last: bool) -> Result<BlockOut> {
    let mut d = RawDeflate::new(params)?;
    if !dict.is_empty() {
        d.set_dictionary(dict)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    d.compress(
        data,
        if last { z::Z_FINISH } else { z::Z_SYNC_FLUSH },
        &mut out,
    )?;
    let check = zlib_rs::adler32::adler32(1, data);
    Ok(BlockOut {
        data: out,
        check,
        len: data.len() as u64,
    })
}

impl Compressor for ParallelDeflate {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if !self.header_done {
            out.extend_from_slice(&self.header());
            self.header_done = true;
        }
        while !input.is_empty() {
            if self.block.len() == BLOCK {
                self.submit(false, out)?;
            }
            let n = (BLOCK - self.block.len()).min(input.len());
            self.block.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        while let Some(r) = self.queue.try_oldest()? {
            self.collect(out, r)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if !self.header_done {
            out.extend_from_slice(&self.header());
            self.header_done = true;
        }
        self.submit(true, out)?;
        while let Some(r) = self.queue.wait_oldest()? {
            self.collect(out, r)?;
        }
        out.extend_from_slice(&self.check.to_be_bytes());
        Ok(())
    }
}

/// Streaming gunzip / zlib inflate. Gzip accepts several members back to back (as `gzip -d`
/// does); anything after a zlib stream, or a stream without its end, is `ERR_DECOMPRESS`.
pub(crate) struct Inflater {
    gzip: bool,
    d: Decompress,
    ended: bool,
    started: bool,
}

impl Inflater {
    pub(crate) fn new(gzip: bool) -> Inflater {
        Inflater {
            gzip,
            d: Self::fresh(gzip),
            ended: false,
            started: false,
        }
    }

    fn fresh(gzip: bool) -> Decompress {
        if gzip {
            Decompress::new_gzip(15)
        } else {
            Decompress::new(true)
        }
    }

    fn name(&self) -> &'static str {
        if self.gzip {
            "gzip"
        } else {
            "deflate"
        }
    }
}

impl Decompressor for Inflater {
    fn push(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize> {
        let mut pos = 0;
        while (pos < input.len() || (self.started && !self.ended)) && out.total_len() < limit {
            if self.ended {
                if !self.gzip {
                    return Err(CodecError::decompress(
                        self.name(),
                        "unexpected data after the end of the stream",
                    ));
                }
                // Another gzip member follows.
                self.d = Self::fresh(true);
                self.ended = false;
            }
            self.started = true;
            if out.capacity() - out.len() < 32 * 1024 {
                let step = output_step(input.len() - pos, out, limit);
                out.reserve_exact(step);
            }
            let (in0, out0) = (self.d.total_in(), self.d.total_out());
            let st = self
                .d
                .decompress_vec(&input[pos..], out, FlushDecompress::None)
                .map_err(|e| CodecError::decompress(self.name(), e.to_string()))?;
            let used = (self.d.total_in() - in0) as usize;
            let made = (self.d.total_out() - out0) as usize;
            pos += used;
            if st == Status::StreamEnd {
                self.ended = true;
                continue;
            }
            let spare_left = out.capacity() > out.len();
            if used == 0 && made == 0 && spare_left {
                break; // needs more input
            }
            if pos == input.len() && spare_left {
                break;
            }
        }
        Ok(pos)
    }

    fn finish(&mut self, out: &mut Output, limit: usize) -> Result<bool> {
        self.push(&[], out, limit)?;
        end_verdict(
            self.ended,
            out.total_len() >= limit,
            self.name(),
            "the stream ends before its end marker (truncated)",
        )
    }
}
