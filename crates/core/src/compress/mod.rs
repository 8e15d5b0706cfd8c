//! Compression backends behind one push interface (docs/FORMAT.md 2.1).
//!
//! A `Compressor` turns input pushed in arbitrary chunks into ONE standard stream of its codec;
//! a `Decompressor` does the reverse and fails with `ERR_DECOMPRESS` on corrupt or truncated data.
//! Parallel backends keep at most a bounded number of blocks in flight (see `deflate`, `brotli`),
//! so memory does not grow with the stream length.

use std::sync::Arc;

use crate::error::Result;
use crate::format::Compression;
use crate::output::Output;
use crate::pool::Workers;

pub(crate) use backlog::Backlog;

mod backlog;
pub(crate) mod brotli;
pub(crate) mod deflate;
pub(crate) mod gunzip;
pub(crate) mod gzip;
pub mod levels;
mod whole_member;
pub(crate) mod zstd;

/// Streaming compressor: `push` may emit nothing yet; `finish` emits the rest and the trailer.
pub(crate) trait Compressor: Send {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()>;
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<()>;
}

/// Streaming decompressor. Output goes to `out`'s tail, or, for a buffer made whole elsewhere, as
/// a piece of its own.
///
/// The output limit (`DecoderOptions::output_limit`) is what keeps a decoder's memory bounded
/// whatever the compression ratio: one compressed byte can stand for thousands (zeros, a record
/// repeated), so a call must be able to stop before it has used its input up.
/// Progress invariant, relied on by `Backlog` and `Decoder::more`: a call takes less than all of
/// its input, or keeps output back, ONLY when `out` holds `limit` bytes or more
/// (`Output::total_len`). The limit is soft: the step that crosses it completes (a serial
/// inflater's step writes at most the tail's spare room, reserved exactly from what is left of
/// the limit, 32 KiB at least; a gzip member or a segment is emitted whole).
pub(crate) trait Decompressor: Send {
    /// Decompresses from `input` until it is used up or `out` holds `limit` bytes; returns the
    /// bytes of `input` taken. Output held back by the limit comes on the next call, which may
    /// have no input.
    fn push(&mut self, input: &[u8], out: &mut Output, limit: usize) -> Result<usize>;
    /// Ends the stream once all input was taken: `Ok(true)` once it ended with its end marker,
    /// `Ok(false)` when it stopped at `limit` with output still held back (call it again), an
    /// error if the stream is cut short.
    fn finish(&mut self, out: &mut Output, limit: usize) -> Result<bool>;
    /// Whether the caller should reserve room for the expected output in `out`'s tail (false
    /// when the output arrives as whole pieces, which a reservation would only waste).
    fn writes_in_place(&self) -> bool {
        true
    }
}

/// Output room for one step of a serial decompressor with `input_left` bytes to read: about 4x
/// that (256 KiB to 8 MiB), never more than what is left of `limit` (32 KiB at least, so a step
/// crosses the limit by at most that). zlib-rs and libzstd write into ALL the spare room of the
/// tail, so they must reserve it exactly (`reserve_exact`: `reserve` may double the capacity).
pub(crate) fn output_step(input_left: usize, out: &Output, limit: usize) -> usize {
    let room = limit.saturating_sub(out.total_len()).max(32 * 1024);
    input_left
        .saturating_mul(4)
        .clamp(256 * 1024, 8 << 20)
        .min(room)
}

/// The verdict of a serial decompressor's `finish` after its last push: `Ok(true)` once the stream
/// `ended`; `Ok(false)` when output may be `held_back` by the limit (its end may yet come: call
/// again); else the stream was cut short: `ERR_DECOMPRESS` saying `truncated`.
pub(crate) fn end_verdict(
    ended: bool,
    held_back: bool,
    codec: &'static str,
    truncated: &'static str,
) -> Result<bool> {
    if ended {
        return Ok(true);
    }
    if held_back {
        return Ok(false);
    }
    Err(crate::error::CodecError::decompress(codec, truncated))
}

/// Builds the compressor for `compression` at a Node-semantics `level` (`None` = default).
/// `Compression::None` has no compressor (the caller passes bytes through).
pub(crate) fn compressor(
    compression: Compression,
    level: Option<i32>,
    threads: usize,
    workers: &Arc<Workers>,
) -> Result<Option<Box<dyn Compressor>>> {
    Ok(match compression {
        Compression::None => {
            levels::check_none(level)?;
            None
        }
        Compression::Gzip => Some(Box::new(gzip::ParallelGzip::new(
            levels::gzip_levels(level)?,
            levels::node_zlib_level(level),
            threads,
            Arc::clone(workers),
        ))),
        Compression::Deflate => Some(Box::new(deflate::ParallelDeflate::new(
            levels::zlib_params(compression, level)?,
            levels::node_zlib_level(level),
            threads,
            Arc::clone(workers),
        ))),
        Compression::Brotli => Some(Box::new(brotli::ParallelBrotli::new(
            levels::brotli_qualities(level)?,
            threads,
            Arc::clone(workers),
        ))),
        Compression::Zstd => Some(Box::new(zstd::ZstdCompressor::new(
            levels::zstd_level(level)?,
            threads,
        )?)),
    })
}

/// Builds the decompressor for `compression`; gzip inflates its members on `workers`.
pub(crate) fn decompressor(
    compression: Compression,
    threads: usize,
    workers: &Arc<Workers>,
) -> Result<Option<Box<dyn Decompressor>>> {
    Ok(match compression {
        Compression::None => None,
        Compression::Gzip => Some(Box::new(gunzip::ParallelGunzip::new(
            threads,
            Arc::clone(workers),
        ))),
        Compression::Deflate => Some(Box::new(deflate::Inflater::new(false))),
        Compression::Brotli => Some(Box::new(brotli::BrotliDecompressor::new())),
        Compression::Zstd => Some(Box::new(zstd::ZstdDecompressor::new()?)),
    })
}

/// Appends `v` to `out`, taking the allocation when `out` is still empty (saves a copy).
pub(crate) fn append(out: &mut Vec<u8>, v: Vec<u8>) {
    if out.is_empty() && out.capacity() <= v.capacity() {
        *out = v;
    } else {
        out.extend_from_slice(&v);
    }
}

/// Calibration hook (examples/calibrate.rs): deflate (zlib) with raw zlib-rs settings, bypassing
/// the Node-level map. Not part of the API.
#[doc(hidden)]
pub fn deflate_with_backend_params(
    params: levels::ZlibParams,
    threads: usize,
    data: &[u8],
) -> Result<Vec<u8>> {
    let workers = Arc::new(Workers::new(threads));
    let mut c = deflate::ParallelDeflate::new(params, 6, threads, workers);
    let mut out = Vec::new();
    c.push(data, &mut out)?;
    c.finish(&mut out)?;
    Ok(out)
}
