//! pigz-style parallel gzip / zlib (deflate) compression, and the matching inflater.
//!
//! The input is cut into `BLOCK` (1 MiB) blocks. Each block is raw-deflated on a worker, primed
//! with the previous 32 KiB of input as dictionary; every block but the last ends with a sync
//! flush (byte-aligned, no BFINAL), the last one is finished. Concatenated, the blocks form ONE
//! deflate stream; the CRC-32 (gzip) or Adler-32 (zlib) of each block is combined into the single
//! trailer. At most `2 x threads` blocks are in flight. Output equals a standard member that
//! `gzip -d`, Node's `gunzip`/`inflate` and flate2 read.

use std::sync::Arc;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::{append, Compressor, Decompressor};
use crate::error::{CodecError, Result};
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
    gzip: bool,
    level: u32,
    /// Node-semantics level, only for the header's XFL / FLEVEL bits (as Node writes them).
    node_level: i32,
    header_done: bool,
    block: Vec<u8>,
    dict: Vec<u8>,
    check: u32,
    total: u64,
    workers: Arc<Workers>,
    queue: Ordered<Result<BlockOut>>,
}

impl ParallelDeflate {
    /// `level` is the zlib-rs level (already mapped by `levels`).
    pub(crate) fn new(
        gzip: bool,
        level: u32,
        node_level: i32,
        threads: usize,
        workers: Arc<Workers>,
    ) -> ParallelDeflate {
        ParallelDeflate {
            gzip,
            level,
            node_level,
            header_done: false,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            check: if gzip { 0 } else { 1 },
            total: 0,
            workers,
            queue: Ordered::new(2 * threads.max(1)),
        }
    }

    fn header(&self) -> Vec<u8> {
        if self.gzip {
            // XFL as zlib writes it: 2 = best compression, 4 = fastest.
            let xfl = if self.node_level == 9 {
                2
            } else if self.node_level < 2 {
                4
            } else {
                0
            };
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
        } else {
            let flevel: u16 = match self.node_level {
                i32::MIN..=1 => 0,
                2..=5 => 1,
                6 => 2,
                _ => 3,
            };
            let mut h: u16 = (0x78 << 8) | (flevel << 6);
            h += 31 - (h % 31);
            h.to_be_bytes().to_vec()
        }
    }

    fn collect(&mut self, out: &mut Vec<u8>, r: Result<BlockOut>) -> Result<()> {
        let b = r?;
        self.check = if self.gzip {
            zlib_rs::crc32::crc32_combine(self.check, b.check, b.len)
        } else {
            zlib_rs::adler32::adler32_combine(self.check, b.check, b.len)
        };
        self.total += b.len;
        append(out, b.data);
        Ok(())
    }

    fn submit(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        while self.queue.is_full() {
            if let Some(r) = self.queue.wait_oldest()? {
                self.collect(out, r)?;
            }
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
        let (gzip, level) = (self.gzip, self.level);
        self.queue.push(
            self.workers
                .submit(move || deflate_block(gzip, level, &dict, &data, last)),
        );
        Ok(())
    }
}

fn deflate_block(gzip: bool, level: u32, dict: &[u8], data: &[u8], last: bool) -> Result<BlockOut> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict)
            .map_err(|e| CodecError::Internal(format!("deflate dictionary: {e}")))?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let done_in = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let st = c
            .compress_vec(&data[done_in..], &mut out, flush)
            .map_err(|e| CodecError::Internal(format!("deflate: {e}")))?;
        let finished_input = c.total_in() as usize == data.len();
        let spare = out.capacity() - out.len();
        match st {
            Status::StreamEnd => break,
            _ if finished_input && !last && spare > 0 => break,
            _ => {}
        }
    }
    let check = if gzip {
        zlib_rs::crc32::crc32(0, data)
    } else {
        zlib_rs::adler32::adler32(1, data)
    };
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
        if self.gzip {
            out.extend_from_slice(&self.check.to_le_bytes());
            out.extend_from_slice(&(self.total as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&self.check.to_be_bytes());
        }
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
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut pos = 0;
        while pos < input.len() || (self.started && !self.ended) {
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
                out.reserve(
                    (input.len() - pos)
                        .saturating_mul(4)
                        .clamp(256 * 1024, 8 << 20),
                );
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
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.push(&[], out)?;
        if !self.ended {
            return Err(CodecError::decompress(
                self.name(),
                "the stream ends before its end marker (truncated)",
            ));
        }
        Ok(())
    }
}
