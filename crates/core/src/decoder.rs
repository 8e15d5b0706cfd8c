//! The streaming decoder: optionally the segmented AES-256-GCM reader (2.5), then decompression.
//!
//! `write` returns the plaintext ready so far, and only plaintext whose segment tag verified;
//! `finish` checks the stream ended properly. Errors are sticky (the same error for every further
//! call). Without a key the input must be a plain stream of `compression`; with a key the header
//! must name `compression` when one is given (`ERR_COMPRESSION_MISMATCH` otherwise).
//! Note: output per call is bounded by the input times the codec's ratio, not by a fixed size.

use std::sync::Arc;

use crate::compress::{self, Decompressor};
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
}

impl DecoderOptions {
    pub fn new(compression: Compression) -> DecoderOptions {
        DecoderOptions {
            compression: Some(compression),
            key: None,
            threads: 0,
        }
    }
}

pub struct Decoder {
    opener: Option<Opener>,
    plain_none: bool,
    decompressor: Option<Box<dyn Decompressor>>,
    made: bool,
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
        let workers = Arc::new(Workers::new(threads));
        match opts.key {
            Some(master) => Ok(Decoder {
                opener: Some(Opener::new(
                    master,
                    opts.compression,
                    threads,
                    Arc::clone(&workers),
                )),
                plain_none: false,
                decompressor: None,
                made: false,
                workers,
                threads,
                state: State::Open,
                seen_in: 0,
                seen_out: 0,
            }),
            None => {
                let c = opts.compression.ok_or_else(|| {
                    CodecError::option("compression", "is required to read an unencrypted stream")
                })?;
                Ok(Decoder {
                    opener: None,
                    plain_none: c == Compression::None,
                    decompressor: compress::decompressor(c, threads, &workers)?,
                    made: true,
                    workers,
                    threads,
                    state: State::Open,
                    seen_in: 0,
                    seen_out: 0,
                })
            }
        }
    }

    fn write_inner(&mut self, inputs: &[&[u8]], finish: bool) -> Result<Output> {
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
                (((len + pending) as f64 * ratio * 1.05) as usize + (64 << 10)).min(MAX_RESERVE),
            );
        }
        self.seen_in += len as u64;
        for input in inputs {
            self.decode_into(input, false, &mut out)?;
        }
        if finish {
            self.decode_into(&[], true, &mut out)?;
        }
        self.seen_out += out.total_len() as u64;
        Ok(out)
    }

    fn decode_into(&mut self, input: &[u8], finish: bool, out: &mut Output) -> Result<()> {
        match &mut self.opener {
            None => match &mut self.decompressor {
                Some(d) => {
                    d.push(input, out)?;
                    if finish {
                        d.finish(out)?;
                    }
                }
                None => {
                    debug_assert!(self.plain_none);
                    out.extend_from_slice(input);
                }
            },
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
                            let r = d.push(&plain, out);
                            buffers.put(plain);
                            r
                        }
                        None => {
                            out.push_piece(plain);
                            Ok(())
                        }
                    }
                };
                if finish {
                    opener.finish(&mut sink)?;
                } else {
                    opener.push(input, &mut sink)?;
                }
                if finish {
                    if !self.made {
                        self.decompressor = compress::decompressor(
                            opener
                                .compression()
                                .expect("decoder: internal error: header read at finish"),
                            self.threads,
                            &self.workers,
                        )?;
                        self.made = true;
                    }
                    if let Some(d) = &mut self.decompressor {
                        d.finish(out)?;
                    }
                }
            }
        }
        Ok(())
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
        let r = self.write_inner(inputs, false);
        self.state.settle(&r, false);
        r.map(Output::into_pieces)
    }

    /// Ends the stream: fails unless it ended exactly with its final segment / end marker.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        self.finish_pieces().map(join)
    }

    /// As `finish`, with the remaining plaintext as pieces (see `write_pieces`).
    pub fn finish_pieces(&mut self) -> Result<Vec<Vec<u8>>> {
        self.state.check()?;
        let r = self.write_inner(&[], true);
        self.state.settle(&r, true);
        r.map(Output::into_pieces)
    }
}

/// Decodes a whole buffer in one go (tests, vectors, small data).
pub fn decode_all(opts: DecoderOptions, input: &[u8]) -> Result<Vec<u8>> {
    let mut d = Decoder::new(opts)?;
    let mut out = d.write(input)?;
    out.extend_from_slice(&d.finish()?);
    Ok(out)
}
