//! Parallel brotli compression into ONE standard brotli stream, and the streaming decompressor.
//!
//! The input is cut into `CHUNK` blocks compressed on workers. Every block after the first is
//! "catable" and primed with the preceding `dict_size(quality)` bytes of input as a custom
//! dictionary (what the brotli crate's own `compress_multi` does); all are "appendable".
//! `BroCatli` then stitches the block streams, in order, into a single valid stream
//! (`zlib.brotliDecompressSync` reads it). At most `2 x threads` blocks are in flight. Block `i`
//! runs at quality `schedule[i % len]` (`levels::brotli_qualities`; the default alternates q3
//! and q4); the quality of a block is not in its stream, so readers are unaffected.
//!
//! Quality 2 blocks are NOT primed: the brotli crate (8.0.4, and 9.1.1 too) panics at quality 2
//! with a custom dictionary on ordinary input (`StoreCommandExtra`: index out of bounds; found
//! on the benchmark corpus, 44-46 MiB of seed 20240601). Unprimed q2 still compresses better than
//! Node's q2 (4.176 vs 4.156).

use std::sync::Arc;

use brotli::concat::{BroCatli, BroCatliResult};
use brotli::enc::encode::{BrotliEncoderOperation, BrotliEncoderStateStruct};
use brotli::enc::StandardAlloc;
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};

use super::{end_verdict, output_step, Compressor, Decompressor};
use crate::error::{CodecError, Result};
use crate::output::Output;
use crate::pool::{Ordered, Workers};

/// Input bytes per parallel block.
pub const CHUNK: usize = 1 << 20;

/// Preceding input each block is primed with. Up to quality 6 a 64 KiB dictionary compresses
/// better AND faster than 1 MiB (q4 on the corpus: ratio 4.485 vs 4.457, ~8 % less CPU; q6 4.969
/// vs 4.996 at 0.63x the CPU, still above Node's 4.959): a large dictionary floods the small
/// hash tables of the fast hashers. From quality 7 the deeper searches find the far matches, and
/// 64 KiB would cost 1.6-2.6 % of ratio against Node (over the 1.5 % budget), so they keep 1 MiB.
pub fn dict_size(quality: u32) -> usize {
    if quality == 2 {
        0
    } else if quality <= 6 {
        64 << 10
    } else {
        1 << 20
    }
}
/// Window bits (Node's default, BROTLI_DEFAULT_WINDOW).
const LGWIN: i32 = 22;

pub(crate) struct ParallelBrotli {
    /// Quality of block `i`: `qualities[i % len]` (`levels::brotli_qualities`).
    qualities: &'static [u32],
    /// Blocks submitted so far.
    blocks: usize,
    block: Vec<u8>,
    dict: Vec<u8>,
    first: bool,
    cat: BroCatli,
    workers: Arc<Workers>,
    queue: Ordered<Result<Vec<u8>>>,
}

impl ParallelBrotli {
    pub(crate) fn new(
        qualities: &'static [u32],
        threads: usize,
        workers: Arc<Workers>,
    ) -> ParallelBrotli {
        ParallelBrotli {
            qualities,
            blocks: 0,
            block: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            first: true,
            cat: BroCatli::new(),
            workers,
            queue: Ordered::new(2 * threads.max(1)),
        }
    }

    fn collect(&mut self, out: &mut Vec<u8>, r: Result<Vec<u8>>) -> Result<()> {
        let part = r?;
        self.cat.new_brotli_file();
        let mut in_off = 0;
        loop {
            let mut out_off = out.len();
            out.resize(out.len() + part.len() - in_off + 1024, 0);
            let res = self.cat.stream(&part, &mut in_off, out, &mut out_off);
            out.truncate(out_off);
            match res {
                BroCatliResult::NeedsMoreOutput => continue,
                BroCatliResult::Success | BroCatliResult::NeedsMoreInput => break,
                e => {
                    return Err(CodecError::Internal(format!(
                        "brotli concatenation failed: {e:?}"
                    )))
                }
            }
        }
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
                Vec::with_capacity(CHUNK)
            },
        );
        let quality = self.quality_of(self.blocks);
        self.blocks += 1;
        let dict = std::mem::take(&mut self.dict);
        if !last {
            // The next block's dictionary: the last dict_size bytes of input so far.
            let size = dict_size(self.quality_of(self.blocks));
            let mut next = Vec::with_capacity(size.min(dict.len() + data.len()));
            let keep_old = size.saturating_sub(data.len()).min(dict.len());
            next.extend_from_slice(&dict[dict.len() - keep_old..]);
            next.extend_from_slice(&data[data.len().saturating_sub(size)..]);
            self.dict = next;
        }
        let first = self.first;
        self.first = false;
        self.queue.push(
            self.workers
                .submit(move || brotli_block(quality, first, &dict, &data)),
        );
        Ok(())
    }

    fn quality_of(&self, block: usize) -> u32 {
        self.qualities[block % self.qualities.len()]
    }
}

fn brotli_block(quality: u32, first: bool, dict: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut s = BrotliEncoderStateStruct::new(StandardAlloc::default());
    s.params.quality = quality as i32;
    s.params.lgwin = LGWIN;
    s.params.appendable = true;
    // No size hint, like Node's streaming encoder (createBrotliCompress), the level reference of
    // FORMAT.md 2.1. A >= 1 MiB hint (what brotliCompressSync passes for a large buffer) selects
    // heavier hashers: q4 output 7 % smaller, but 1.4x slower (measured, 2 threads).
    s.params.size_hint = 0;
    if !first {
        s.params.catable = true;
        s.params.magic_number = false;
        if !dict.is_empty() {
            s.set_custom_dictionary(dict.len(), dict);
        }
    }
    let mut out = vec![0u8; data.len() + data.len() / 8 + 1024];
    let (mut avail_in, mut in_off, mut out_off) = (data.len(), 0usize, 0usize);
    loop {
        let mut avail_out = out.len() - out_off;
        let ok = s.compress_stream(
            BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
            &mut avail_in,
            data,
            &mut in_off,
            &mut avail_out,
            &mut out,
            &mut out_off,
            &mut None,
            &mut |_, _, _, _| (),
        );
        if !ok {
            return Err(CodecError::Internal("brotli encoder failed".into()));
        }
        if s.is_finished() {
            break;
        }
        if avail_out == 0 {
            out.resize(out.len() * 2, 0);
        }
    }
    out.truncate(out_off);
    Ok(out)
}

impl Compressor for ParallelBrotli {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            if self.block.len() == CHUNK {
                self.submit(false, out)?;
            }
            let n = (CHUNK - self.block.len()).min(input.len());
            self.block.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        while let Some(r) = self.queue.try_oldest()? {
            self.collect(out, r)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.submit(true, out)?;
        while let Some(r) = self.queue.wait_oldest()? {
            self.collect(out, r)?;
        }
        let mut out_off = out.len();
        out.resize(out.len() + 64, 0);
        let res = self.cat.finish(out, &mut out_off);
        out.truncate(out_off);
        match res {
            BroCatliResult::Success => Ok(()),
            e => Err(CodecError::Internal(format!(
                "brotli concatenation failed: {e:?}"
            ))),
        }
    }
}

/// Streaming brotli decompressor; data after the end of the stream is an error.
pub(crate) struct BrotliDecompressor {
    state: Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>,
    done: bool,
}

impl BrotliDecompressor {
    pub(crate) fn new() -> BrotliDecompressor {
        BrotliDecompressor {
            state: Box::new(BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            )),
            done: false,
        }
    }
}

impl Decompressor for BrotliDecompressor {
    fn push(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize> {
        let mut avail_in = input.len();
        let mut in_off = 0usize;
        if self.done {
            if input.is_empty() {
                return Ok(0);
            }
            return Err(CodecError::decompress(
                "brotli",
                "unexpected data after the end of the stream",
            ));
        }
        loop {
            if out.total_len() >= limit {
                return Ok(in_off);
            }
            let base = out.len();
            let grow = output_step(avail_in, out, limit);
            out.resize(base + grow, 0);
            let mut avail_out = grow;
            let mut out_off = base;
            let mut total = 0usize;
            let res = BrotliDecompressStream(
                &mut avail_in,
                &mut in_off,
                input,
                &mut avail_out,
                &mut out_off,
                out,
                &mut total,
                &mut self.state,
            );
            out.truncate(out_off);
            match res {
                BrotliResult::ResultSuccess => {
                    self.done = true;
                    if avail_in > 0 {
                        return Err(CodecError::decompress(
                            "brotli",
                            "unexpected data after the end of the stream",
                        ));
                    }
                    return Ok(in_off);
                }
                BrotliResult::NeedsMoreInput => return Ok(in_off),
                BrotliResult::NeedsMoreOutput => continue,
                BrotliResult::ResultFailure => {
                    return Err(CodecError::decompress("brotli", "invalid brotli stream"));
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Output, limit: usize) -> Result<bool> {
        if !self.done {
            // A stream whose last metablock is missing cannot be completed.
            self.push(&[], out, limit)?;
        }
        end_verdict(
            self.done,
            out.total_len() >= limit,
            "brotli",
            "the stream ends before its end marker (truncated)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(qualities: &'static [u32], data: &[u8]) -> Vec<u8> {
        let mut c = ParallelBrotli::new(qualities, 2, Arc::new(Workers::new(2)));
        let mut out = Vec::new();
        c.push(data, &mut out).unwrap();
        c.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn a_schedule_compresses_its_blocks_at_their_qualities_into_one_stream() {
        // Varied JSON-like lines, 4 blocks: the q3/q4 schedule (two blocks each) lands strictly
        // between q3 alone and q4 alone, and decodes to the input.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut data = Vec::with_capacity(4 * CHUNK + 200);
        while data.len() < 4 * CHUNK {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let line = format!(
                "{{\"id\":\"u{}\",\"n\":{},\"city\":\"c{}\",\"tag\":\"{:x}\"}}\n",
                x % 1_000_003,
                (x >> 20) % 10_007,
                (x >> 40) % 97,
                x >> 48
            );
            data.extend_from_slice(line.as_bytes());
        }
        let q3 = compress(&[3], &data).len();
        let q4 = compress(&[4], &data).len();
        let mixed = compress(&[3, 4], &data);
        let (lo, hi) = (q3.min(q4), q3.max(q4));
        assert!(
            mixed.len() > lo && mixed.len() < hi,
            "q3 {q3} mixed {} q4 {q4}",
            mixed.len()
        );
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut ::brotli::Decompressor::new(&mixed[..], 4096),
            &mut back,
        )
        .unwrap();
        assert_eq!(back, data);
    }
}
