//! The streaming decoder: optionally the segmented AES-256-GCM reader (2.5), then decompression.
//!
//! `write` returns the plaintext ready so far, and only plaintext whose segment tag verified;
//! `finish` checks the stream ended properly. Errors are sticky (the same error for every further
//! call). Without a key the input must be a plain stream of `compression`; with a key the header
//! must name `compression` when one is given (`ERR_COMPRESSION_MISMATCH` otherwise).
//!
//! Output per call: with `output_limit`, a call stops decompressing once its output reaches the
//! limit and keeps the compressed bytes it did not read (`Backlog`); `more()` then says so, and
//! the caller calls `write_pieces(&[])` (or `finish_pieces()` again) before giving more input.
//! The limit is soft: the step that crosses it completes (see `compress::Decompressor`): a serial
//! inflater's step is sized from the limit (32 KiB at least), a gzip member or an opened segment
//! comes whole. So a call's output stays within the limit plus one such step however well the
//! data compresses. Without a limit, a call inflates all it is given.

use std::borrow::Cow;
use std::sync::Arc;

use crate::compress::{self, Backlog, Decompressor};
use crate::encoder::{resolve_threads, State};
use crate::error::{CodecError, Result};
use crate::format::*;
use crate::open::Opener;
use crate::output::{join, Output};
use crate::pool::Workers;

#[derive(Clone, Debug)]
pub struct DecoderOptions {
    /// Expected compression; required without a key, checked against the header with one.
    pub compression: Option<Compression>,
    /// 32-byte master key; `None` = the input is a plain (unencrypted) stream.
    pub key: Option<[u8; KEY_LEN]>,
    /// Worker threads for segment decryption and gzip members; 0 = every core.
    pub threads: usize,
    /// Soft limit of one call's plaintext output in bytes (see the module comment); 0 = none.
    pub output_limit: usize,
}

impl DecoderOptions {
    pub fn new(compression: Compression) -> DecoderOptions {
        DecoderOptions {
            compression: Some(compression),
            key: None,
            threads: 0,
            output_limit: 0,
        }
    }
}

pub struct Decoder {
    opener: Option<Opener>,
    /// `opener.finish` has run (a finish stopped by the limit is called again).
    opened_all: bool,
    plain_none: bool,
    decompressor: Option<Box<dyn Decompressor>>,
    made: bool,
    /// Compressed bytes taken but not yet decompressed (the limit stopped the decompressor).
    backlog: Backlog,
    limit: usize,
    /// The last call's output reached the limit: call again before giving more input.
    more: bool,
    /// `finish_pieces` has been called and has not completed yet.
    finishing: bool,
    /// Workers of the stream (segment opening and gzip members) and their count.
    workers: Arc<Workers>,
    threads: usize,
    state: State,
    /// Stream bytes read and plaintext bytes produced so far: their ratio sizes each call's output
    /// buffer up front, so it is not regrown (and copied) several times per call.
    seen_in: u64,
    seen_out: u64,
}

/// Upper bound of the up-front output reservation of one call (a bomb-like ratio must not make
/// one call reserve gigabytes; the buffer still grows as needed beyond it).
const MAX_RESERVE: usize = 64 << 20;

impl Decoder {
    pub fn new(opts: DecoderOptions) -> Result<Decoder> {
        let threads = resolve_threads(opts.threads)?;
        let workers = Arc::new(Workers::for_decoding(threads));
        let (opener, plain_none, decompressor, made) = match opts.key {
            Some(master) => (
                Some(Opener::new(
                    master,
                    opts.compression,
                    threads,
                    Arc::clone(&workers),
                )),
                false,
                None,
                false,
            ),
            None => {
                let c = opts.compression.ok_or_else(|| {
                    CodecError::option("compression", "is required to read an unencrypted stream")
                })?;
                (
                    None,
                    c == Compression::None,
                    compress::decompressor(c, threads, &workers)?,
                    true,
                )
            }
        };
        Ok(Decoder {
            opener,
            opened_all: false,
            plain_none,
            decompressor,
            made,
            backlog: Backlog::default(),
            limit: match opts.output_limit {
                0 => usize::MAX,
                n => n,
            },
            more: false,
            finishing: false,
            workers,
            threads,
            state: State::Open,
            seen_in: 0,
            seen_out: 0,
        })
    }

    /// Decodes `inputs` (and, when `finish`, ends the stream); the bool is whether the stream
    /// ended (always false when not finishing).
    fn write_inner(&mut self, inputs: &[&[u8]], finish: bool) -> Result<(Output, bool)> {
        let len: usize = inputs.iter().map(|i| i.len()).sum();
        // Encrypted: this call may also deliver segments that earlier calls left in flight.
        let pending = self.opener.as_ref().map_or(0, Opener::pending_bytes);
        let mut out = Output::new();
        let in_place = match &self.decompressor {
            Some(d) => d.writes_in_place(),
            None => self.opener.is_none(), // `none`: plain input is copied; segments are pieces
        };
        if self.seen_in > 0 && len > 0 && in_place {
            let ratio = self.seen_out as f64 / self.seen_in as f64;
            out.reserve(
                (((len + pending) as f64 * ratio * 1.05) as usize + (64 << 10))
                    .min(MAX_RESERVE)
                    .min(self.limit),
            );
        }
        self.seen_in += len as u64;
        // Bytes the limit held back in the last call go first.
        if let Some(d) = &mut self.decompressor {
            self.backlog.feed(d.as_mut(), &mut out, self.limit)?;
        }
        for input in inputs {
            self.decode_into(Some(input), &mut out)?;
        }
        let ended = finish && self.finish_into(&mut out)?;
        self.seen_out += out.total_len() as u64;
        self.more = !ended && out.total_len() >= self.limit;
        Ok((out, ended))
    }

    /// Decodes `input`, or with `None` delivers what the segment reader still holds at the end.
    fn decode_into(&mut self, input: Option<&[u8]>, out: &mut Output) -> Result<()> {
        let limit = self.limit;
        let backlog = &mut self.backlog;
        match &mut self.opener {
            None => {
                let input = input.unwrap_or_default();
                match &mut self.decompressor {
                    Some(d) => {
                        backlog.offer(d.as_mut(), Cow::Borrowed(input), out, limit)?;
                    }
                    None => {
                        debug_assert!(self.plain_none);
                        out.extend_from_slice(input); // `none`: as long as its input
                    }
                }
            }
            Some(opener) => {
                let (dec, made) = (&mut self.decompressor, &mut self.made);
                let (workers, threads) = (&self.workers, self.threads);
                let buffers = opener.buffers();
                let mut sink = |c: Compression, plain: Vec<u8>| -> Result<()> {
                    if !*made {
                        *dec = compress::decompressor(c, threads, workers)?;
                        *made = true;
                    }
                    match dec {
                        Some(d) => {
                            if let Some(used) =
                                backlog.offer(d.as_mut(), Cow::Owned(plain), out, limit)?
                            {
                                buffers.put(used);
                            }
                        }
                        None => out.push_piece(plain), // `none`: as long as the segment
                    }
                    Ok(())
                };
                match input {
                    Some(input) => opener.push(input, &mut sink)?,
                    None => opener.finish(&mut sink)?,
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: true once it ended; false when the limit stopped it (call again).
    fn finish_into(&mut self, out: &mut Output) -> Result<bool> {
        if self.opener.is_some() && !self.opened_all {
            self.decode_into(None, out)?;
            self.opened_all = true;
            if !self.made {
                let c = self
                    .opener
                    .as_ref()
                    .and_then(Opener::compression)
                    .expect("decoder: internal error: header read at finish");
                self.decompressor = compress::decompressor(c, self.threads, &self.workers)?;
                self.made = true;
            }
        }
        match &mut self.decompressor {
            Some(d) => {
                self.backlog.feed(d.as_mut(), out, self.limit)?;
                if !self.backlog.is_empty() {
                    return Ok(false);
                }
                d.finish(out, self.limit)
            }
            None => Ok(true),
        }
    }

    /// Decodes `input`; returns the verified plaintext ready so far (may be empty).
    pub fn write(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.write_chunks(&[input])
    }

    /// Decodes `inputs` in order, as one `write` of their concatenation (no copy to join them).
    pub fn write_chunks(&mut self, inputs: &[&[u8]]) -> Result<Vec<u8>> {
        self.write_pieces(inputs).map(join)
    }

    /// As `write_chunks`, with the plaintext as pieces in order (none empty), not joined: a
    /// buffer made whole on a worker (a gzip member's output) is handed over without a copy.
    pub fn write_pieces(&mut self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
        self.state.check()?;
        if self.finishing {
            return Err(CodecError::Finished);
        }
        let r = self.write_inner(inputs, false);
        self.state.settle(&r, false);
        r.map(|(out, _)| out.into_pieces())
    }

    /// Ends the stream: fails unless it ended exactly with its final segment / end marker. With
    /// an output limit it may stop at the limit first: call it again while `more()` says so.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        self.finish_pieces().map(join)
    }

    /// As `finish`, with the remaining plaintext as pieces (see `write_pieces`).
    pub fn finish_pieces(&mut self) -> Result<Vec<Vec<u8>>> {
        self.state.check()?;
        self.finishing = true;
        let r = self.write_inner(&[], true);
        let ended = matches!(r, Ok((_, true)));
        self.state.settle(&r, ended);
        r.map(|(out, _)| out.into_pieces())
    }

    /// Whether the last call stopped at the output limit with plaintext still to come: call
    /// `write_pieces(&[])` (or, finishing, `finish_pieces()`) again before writing more input.
    /// Never true without an output limit.
    pub fn more(&self) -> bool {
        self.more
    }
}

/// Decodes a whole buffer in one go (tests, vectors, small data).
pub fn decode_all(opts: DecoderOptions, input: &[u8]) -> Result<Vec<u8>> {
    let mut d = Decoder::new(opts)?;
    let mut out = d.write(input)?;
    while d.more() {
        out.extend_from_slice(&d.write(&[])?);
    }
    loop {
        out.extend_from_slice(&d.finish()?);
        if !d.more() {
            return Ok(out);
        }
    }
}
