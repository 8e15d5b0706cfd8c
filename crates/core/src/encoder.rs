//! The streaming encoder: compression (2.1), then optionally the segmented AES-256-GCM layer (2.2).
//!
//! `write` accepts any chunk size and returns the stream bytes ready so far (possibly none);
//! `finish` returns the rest. Work runs on `threads` worker threads with a bounded number of
//! blocks/segments in flight, so memory is about `threads x (block + segment)` whatever the length.
//! Errors are sticky; after `finish` every call fails with `ERR_STREAM_FINISHED`.

use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};

use crate::compress::{self, Compressor};
use crate::error::{CodecError, Result};
use crate::format::*;
use crate::output::{join, Output};
use crate::pool::Workers;
use crate::seal::Sealer;

/// Options of an [`Encoder`]. Levels are in Node's terms (see `compress::levels`).
#[derive(Clone, Debug)]
pub struct EncoderOptions {
    pub compression: Compression,
    /// Node-semantics level; `None` = the codec's default (gzip/deflate 6, brotli 4, zstd 3).
    pub level: Option<i32>,
    /// 32-byte master key; `None` = no encryption (a plain standard stream).
    pub key: Option<[u8; KEY_LEN]>,
    /// Plaintext bytes per segment (1024 ..= 16 MiB); default 1 MiB.
    pub segment_size: u32,
    /// Worker threads; 0 = every core (`available_parallelism`).
    pub threads: usize,
    /// TEST ONLY: fixes the salt. Reusing a salt and nonce prefix with the same key reuses GCM
    /// nonces and destroys confidentiality; production code must leave this `None`.
    pub test_salt: Option<[u8; SALT_LEN]>,
    /// TEST ONLY: fixes the nonce prefix (see `test_salt`).
    pub test_nonce_prefix: Option<[u8; NONCE_PREFIX_LEN]>,
}

impl EncoderOptions {
    pub fn new(compression: Compression) -> EncoderOptions {
        EncoderOptions {
            compression,
            level: None,
            key: None,
            segment_size: DEFAULT_SEGMENT_SIZE,
            threads: 0,
            test_salt: None,
            test_nonce_prefix: None,
        }
    }
}

/// `threads` option -> thread count (0 = every core).
pub fn resolve_threads(threads: usize) -> Result<usize> {
    match threads {
        0 => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
        1..=256 => Ok(threads),
        n => Err(CodecError::option(
            "threads",
            format!("must be 1-256 (0 = every core), got {n}"),
        )),
    }
}

pub(crate) enum State {
    Open,
    Finished,
    Failed(CodecError),
}

impl State {
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            State::Open => Ok(()),
            State::Finished => Err(CodecError::Finished),
            State::Failed(e) => Err(e.clone()),
        }
    }

    /// After a call: an error makes the stream failed for good (sticky); a `finish` that
    /// succeeded makes it finished.
    pub(crate) fn settle<T>(&mut self, r: &Result<T>, finishing: bool) {
        match r {
            Err(e) => *self = State::Failed(e.clone()),
            Ok(_) if finishing => *self = State::Finished,
            Ok(_) => {}
        }
    }
}

pub struct Encoder {
    compressor: Option<Box<dyn Compressor>>,
    sealer: Option<Sealer>,
    state: State,
}

impl Encoder {
    pub fn new(opts: EncoderOptions) -> Result<Encoder> {
        let threads = resolve_threads(opts.threads)?;
        if !segment_size_ok(opts.segment_size) {
            return Err(CodecError::option(
                "segmentSize",
                format!(
                    "must be {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE} bytes, got {}",
                    opts.segment_size
                ),
            ));
        }
        let workers = Arc::new(Workers::new(threads));
        let compressor = compress::compressor(opts.compression, opts.level, threads, &workers)?;
        let sealer = match opts.key {
            None => None,
            Some(master) => {
                let rng = SystemRandom::new();
                let salt = match opts.test_salt {
                    Some(s) => s,
                    None => random(&rng)?,
                };
                let prefix = match opts.test_nonce_prefix {
                    Some(p) => p,
                    None => random(&rng)?,
                };
                Some(Sealer::new(
                    &master,
                    opts.compression,
                    opts.segment_size,
                    salt,
                    prefix,
                    threads,
                    workers,
                ))
            }
        };
        Ok(Encoder {
            compressor,
            sealer,
            state: State::Open,
        })
    }

    fn write_inner(&mut self, inputs: &[&[u8]]) -> Result<Output> {
        let mut out = Output::new();
        match (&mut self.compressor, &mut self.sealer) {
            (None, None) => inputs.iter().for_each(|i| out.extend_from_slice(i)),
            (None, Some(s)) => {
                for input in inputs {
                    s.push(input, &mut out)?;
                }
            }
            (Some(c), None) => {
                for input in inputs {
                    c.push(input, &mut out)?;
                }
            }
            (Some(c), Some(s)) => {
                let mut mid = Vec::new();
                for input in inputs {
                    c.push(input, &mut mid)?;
                }
                s.push(&mid, &mut out)?;
            }
        }
        Ok(out)
    }

    fn finish_inner(&mut self) -> Result<Output> {
        let mut out = Output::new();
        match (&mut self.compressor, &mut self.sealer) {
            (None, None) => {}
            (None, Some(s)) => s.finish(&mut out)?,
            (Some(c), None) => c.finish(&mut out)?,
            (Some(c), Some(s)) => {
                let mut mid = Vec::new();
                c.finish(&mut mid)?;
                s.push(&mid, &mut out)?;
                s.finish(&mut out)?;
            }
        }
        Ok(out)
    }

    /// Encodes `input`; returns the stream bytes produced so far (may be empty).
    pub fn write(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.write_chunks(&[input])
    }

    /// Encodes `inputs` in order, as one `write` of their concatenation (no copy to join them).
    pub fn write_chunks(&mut self, inputs: &[&[u8]]) -> Result<Vec<u8>> {
        self.write_pieces(inputs).map(join)
    }

    /// As `write_chunks`, with the stream bytes as pieces in order (none empty), not joined:
    /// each sealed segment is handed over as it is.
    pub fn write_pieces(&mut self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
        self.state.check()?;
        let r = self.write_inner(inputs);
        self.state.settle(&r, false);
        r.map(Output::into_pieces)
    }

    /// Ends the stream; returns the remaining bytes (trailer, final segment).
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        self.finish_pieces().map(join)
    }

    /// As `finish`, with the remaining stream bytes as pieces (see `write_pieces`).
    pub fn finish_pieces(&mut self) -> Result<Vec<Vec<u8>>> {
        self.state.check()?;
        let r = self.finish_inner();
        self.state.settle(&r, true);
        r.map(Output::into_pieces)
    }
}

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    rng.fill(&mut b)
        .map_err(|_| CodecError::Internal("the system random generator failed".into()))?;
    Ok(b)
}

/// Encodes a whole buffer in one go (tests, vectors, small data).
pub fn encode_all(opts: EncoderOptions, input: &[u8]) -> Result<Vec<u8>> {
    let mut e = Encoder::new(opts)?;
    let mut out = e.write(input)?;
    out.extend_from_slice(&e.finish()?);
    Ok(out)
}
