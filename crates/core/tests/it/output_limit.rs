//! The decoder's output limit (`DecoderOptions::output_limit`): however well the data compresses,
//! one call's output stays near the limit, and a caller that follows `more()` gets every byte.
//! The input is zeros, which every codec shrinks 1000x and more: without the limit one 64 KiB
//! write inflates to tens of MiB (checked below, so the test cannot pass on a tame input).
use std::io::Write;

use crate::common::*;
use s3db_backup_core::*;

const MIB: usize = 1 << 20;
const LIMIT: usize = MIB;
const PLAIN: usize = 96 * MIB;
const WRITE: usize = 64 * 1024;

/// What a caller saw: plaintext bytes, whether all were zero, the largest output of one call, and
/// how many calls had no input (made because `more()` said so).
struct Seen {
    bytes: usize,
    zeros: bool,
    largest: usize,
    again: usize,
}

impl Seen {
    fn take(&mut self, out: Vec<u8>) {
        self.bytes += out.len();
        self.zeros &= out.iter().all(|&b| b == 0);
        self.largest = self.largest.max(out.len());
    }
}

/// Decodes `stream` in 64 KiB writes, following `more()` after each write and at the finish.
fn run(mut opts: DecoderOptions, limit: usize, stream: &[u8]) -> Seen {
    opts.output_limit = limit;
    let mut d = Decoder::new(opts).unwrap();
    let mut seen = Seen {
        bytes: 0,
        zeros: true,
        largest: 0,
        again: 0,
    };
    for c in stream.chunks(WRITE) {
        seen.take(d.write(c).unwrap());
        while d.more() {
            seen.again += 1;
            seen.take(d.write(&[]).unwrap());
        }
    }
    loop {
        seen.take(d.finish().unwrap());
        if !d.more() {
            return seen;
        }
        seen.again += 1;
    }
}

/// (name, decoder options, stream of PLAIN zeros, bound of one call's output under LIMIT).
fn bombs() -> Vec<(String, DecoderOptions, Vec<u8>, usize)> {
    let zeros = vec![0u8; PLAIN];
    let mut cases = Vec::new();
    for c in [
        Compression::Gzip,
        Compression::Deflate,
        Compression::Brotli,
        Compression::Zstd,
    ] {
        // Serial readers stop within one step of the limit (its spare room, sized from the
        // limit, 32 KiB at least); the parallel gunzip emits whole members (2 MiB each), the last
        // one crossing it.
        let bound = if c == Compression::Gzip {
            LIMIT + 2 * MIB
        } else {
            LIMIT + 64 * 1024
        };
        for key in [None, Some(KEY)] {
            let stream = encode_all(enc_opts(c, key, MIB as u32, 2), &zeros).unwrap();
            let name = format!(
                "{} {}",
                c.name(),
                if key.is_some() { "encrypted" } else { "plain" }
            );
            cases.push((name, dec_opts(c, key, 2), stream, bound));
        }
    }
    // Gzip of another writer: one member without a length, read by the serial inflater.
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    g.write_all(&zeros).unwrap();
    let foreign = g.finish().unwrap();
    cases.push((
        "gzip of flate2 (serial)".into(),
        dec_opts(Compression::Gzip, None, 2),
        foreign,
        LIMIT + 64 * 1024,
    ));
    cases
}

#[test]
fn one_call_outputs_about_the_limit_whatever_the_ratio_and_every_byte_comes_through() {
    for (name, opts, stream, bound) in bombs() {
        assert!(
            stream.len() * 300 < PLAIN,
            "{name}: zeros must compress 300x+"
        );
        let free = run(opts.clone(), 0, &stream);
        assert_eq!(
            (free.bytes, free.zeros, free.again),
            (PLAIN, true, 0),
            "{name}"
        );
        assert!(
            free.largest > 24 * MIB,
            "{name}: without a limit one call inflates {} bytes (the input is not a bomb?)",
            free.largest
        );
        let limited = run(opts, LIMIT, &stream);
        assert_eq!((limited.bytes, limited.zeros), (PLAIN, true), "{name}");
        assert!(
            limited.largest <= bound,
            "{name}: one call gave {} bytes, over {bound}",
            limited.largest
        );
        assert!(
            limited.again >= PLAIN / bound,
            "{name}: the calls made because of more(): {}",
            limited.again
        );
    }
}

#[test]
fn a_finish_stopped_at_the_limit_is_called_again_and_refuses_more_input() {
    let zeros = vec![0u8; 16 * MIB];
    for key in [None, Some(KEY)] {
        let stream = encode_all(enc_opts(Compression::Brotli, key, MIB as u32, 2), &zeros).unwrap();
        let mut opts = dec_opts(Compression::Brotli, key, 2);
        opts.output_limit = LIMIT;
        let mut d = Decoder::new(opts).unwrap();
        // One write of the whole stream (plain: it stops at the limit; encrypted: its one segment
        // may still be in flight on a worker). The caller may finish without draining first: the
        // finish drains, a limit at a time.
        let mut got = d.write(&stream).unwrap().len();
        assert_eq!(d.more(), key.is_none() || got > 0);
        got += d.finish().unwrap().len();
        assert!(d.more(), "the finish stops at the limit");
        let err = d.write(b"x").unwrap_err();
        assert_eq!(err.code(), "ERR_STREAM_FINISHED");
        let mut calls = 1;
        while d.more() {
            let out = d.finish().unwrap();
            assert!(out.len() <= LIMIT + 64 * 1024);
            got += out.len();
            calls += 1;
        }
        assert_eq!(got, zeros.len());
        assert!(calls >= 8, "finish was called {calls} times");
        // Finished for good now.
        assert_eq!(d.finish().unwrap_err().code(), "ERR_STREAM_FINISHED");
    }
}

#[test]
fn a_truncated_stream_is_still_an_error_when_the_limit_stops_its_reader() {
    let zeros = vec![0u8; 16 * MIB];
    for c in [
        Compression::Gzip,
        Compression::Deflate,
        Compression::Brotli,
        Compression::Zstd,
    ] {
        let stream = encode_all(enc_opts(c, None, MIB as u32, 2), &zeros).unwrap();
        let cut = &stream[..stream.len() - 3];
        let mut opts = dec_opts(c, None, 2);
        opts.output_limit = LIMIT;
        let mut d = Decoder::new(opts).unwrap();
        let mut got = d.write(cut).unwrap().len();
        let err = loop {
            match d.finish() {
                Ok(out) if d.more() => got += out.len(),
                Ok(out) => panic!(
                    "{}: a cut stream finished cleanly ({} bytes)",
                    c.name(),
                    got + out.len()
                ),
                Err(e) => break e,
            }
        };
        assert_eq!(err.code(), "ERR_DECOMPRESS", "{}: {err}", c.name());
        assert!(got <= zeros.len());
    }
}
