//! zstd compression on libzstd's own worker threads (`NbWorkers`, one frame), and the streaming
//! decompressor (accepts several frames back to back, as `zstd -d` does).

use zstd::stream::raw::{CParameter, Decoder, Encoder, InBuffer, Operation, OutBuffer};

use super::{end_verdict, output_step, Compressor, Decompressor};
use crate::error::{CodecError, Result};
use crate::output::Output;

pub(crate) struct ZstdCompressor {
    enc: Encoder<'static>,
}

fn internal(e: std::io::Error) -> CodecError {
    CodecError::Internal(format!("zstd: {e}"))
}

impl ZstdCompressor {
    pub(crate) fn new(level: i32, threads: usize) -> Result<ZstdCompressor> {
        let mut enc = Encoder::new(level).map_err(internal)?;
        if threads > 1 {
            enc.set_parameter(CParameter::NbWorkers(threads as u32))
                .map_err(internal)?;
            // Bounded memory: libzstd's default job is 4 x the window (8+ MiB per worker, and it
            // keeps several jobs in flight); 1 MiB jobs keep the encoder near threads x 1 MiB.
            enc.set_parameter(CParameter::JobSize(1 << 20))
                .map_err(internal)?;
        }
        enc.set_parameter(CParameter::ChecksumFlag(true))
            .map_err(internal)?;
        Ok(ZstdCompressor { enc })
    }
}

fn reserve(out: &mut Vec<u8>, n: usize) {
    if out.capacity() - out.len() < n / 2 {
        out.reserve(n);
    }
}

impl Compressor for ZstdCompressor {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut inb = InBuffer::around(input);
        while inb.pos() < input.len() {
            reserve(out, 256 * 1024);
            let pos = out.len();
            let mut outb = OutBuffer::around_pos(out, pos);
            self.enc.run(&mut inb, &mut outb).map_err(internal)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        loop {
            reserve(out, 256 * 1024);
            let pos = out.len();
            let mut outb = OutBuffer::around_pos(out, pos);
            let left = self.enc.finish(&mut outb, true).map_err(internal)?;
            if left == 0 {
                return Ok(());
            }
        }
    }
}

pub(crate) struct ZstdDecompressor {
    dec: Decoder<'static>,
    /// libzstd's hint: 0 exactly when a frame just ended.
    hint: usize,
    any: bool,
    /// The last call filled the output buffer: more output may be pending.
    more_out: bool,
}

impl ZstdDecompressor {
    pub(crate) fn new() -> Result<ZstdDecompressor> {
        Ok(ZstdDecompressor {
            dec: Decoder::new().map_err(internal)?,
            hint: 1,
            any: false,
            more_out: false,
        })
    }
}

impl Decompressor for ZstdDecompressor {
    fn push(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize> {
        if input.is_empty() && !self.more_out {
            return Ok(0);
        }
        let mut inb = InBuffer::around(input);
        if !input.is_empty() {
            self.any = true;
        }
        while out.total_len() < limit {
            let want = output_step(input.len() - inb.pos(), out, limit);
            if out.capacity() - out.len() < want / 2 {
                out.reserve_exact(want);
            }
            let tail: &mut Vec<u8> = out; // a growable Vec: a slice would cap the output
            let pos = tail.len();
            let mut outb = OutBuffer::around_pos(tail, pos);
            self.hint = self
                .dec
                .run(&mut inb, &mut outb)
                .map_err(|e| CodecError::decompress("zstd", e.to_string()))?;
            // hint 0: a frame ended and is fully flushed; calling again would start the next.
            let full = outb.pos() == outb.capacity() && self.hint != 0;
            self.more_out = full;
            if inb.pos() == input.len() && !full {
                break;
            }
        }
        Ok(inb.pos())
    }

    fn finish(&mut self, out: &mut Output, limit: usize) -> Result<bool> {
        self.push(&[], out, limit)?;
        end_verdict(
            self.any && self.hint == 0,
            self.more_out && out.total_len() >= limit,
            "zstd",
            "the stream ends before the end of its frame (truncated)",
        )
    }
}
