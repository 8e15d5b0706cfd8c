//! Fuzz bodies, shared by the cargo-fuzz targets in `fuzz/` (nightly) and by the stable
//! `tests/it/fuzz_stable.rs`, which runs them over many pseudo-random inputs. Neither may panic on
//! any input; `tamper` also checks the security property: a changed stream never decodes.
#![doc(hidden)]

use crate::{Compression, Decoder, DecoderOptions, Encoder, EncoderOptions};

const KEY: [u8; 32] = [0x42; 32];

/// Output limit from a selector byte: none, or one small enough to stop most calls.
fn limit_of(b: u8) -> usize {
    match b % 3 {
        0 => 0,
        1 => 1,
        _ => 1 + b as usize * 509,
    }
}

/// Decodes `input` with one write, then writes no input while the decoder has `more()`.
fn write_through(d: &mut Decoder, input: &[u8]) -> crate::Result<Vec<u8>> {
    let mut out = d.write(input)?;
    while d.more() {
        out.extend_from_slice(&d.write(&[])?);
    }
    Ok(out)
}

/// Finishes the stream, calling `finish` again while the decoder has `more()`.
fn finish_through(d: &mut Decoder) -> crate::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        out.extend_from_slice(&d.finish()?);
        if !d.more() {
            return Ok(out);
        }
    }
}

/// Feeds arbitrary bytes to a decoder (plain or encrypted, any codec, any chunking).
pub fn decode_arbitrary(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let sel = data[0];
    let compression = Compression::from_byte(sel % 5).expect("fuzzing: internal error: 0..5");
    let encrypted = sel & 0x80 != 0;
    let threads = 1 + ((sel >> 3) & 1) as usize;
    let chunk = 1 + data[1] as usize * 37;
    let opts = DecoderOptions {
        compression: Some(compression),
        key: encrypted.then_some(KEY),
        threads,
        output_limit: limit_of(sel >> 4),
    };
    let mut d = Decoder::new(opts).expect("fuzzing: internal error: valid options");
    for c in data[2..].chunks(chunk) {
        if write_through(&mut d, c).is_err() {
            // Sticky: a second call must give the same error.
            let e1 = d.write(&[]).unwrap_err();
            assert_eq!(d.finish().unwrap_err(), e1);
            return;
        }
    }
    let _ = finish_through(&mut d);
}

/// Encrypts `data[9..]` (codec from `data[0]`), applies the mutation described by `data[1..9]`,
/// and decodes: an unchanged stream must give the plaintext back, a changed one must fail.
pub fn tamper(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let compression = Compression::from_byte(data[0] % 5).expect("fuzzing: internal error: 0..5");
    let plain = &data[9..data.len().min(9 + 20_000)];
    let mut o = EncoderOptions::new(compression);
    o.key = Some(KEY);
    o.segment_size = 1024;
    o.threads = 2;
    let mut e = Encoder::new(o).expect("fuzzing: internal error: valid options");
    let mut stream = e.write(plain).expect("encode");
    stream.extend_from_slice(&e.finish().expect("encode"));
    let original = stream.clone();

    let pos = u32::from_le_bytes([data[2], data[3], data[4], data[5]]) as usize % stream.len();
    let len = 1 + (u16::from_le_bytes([data[6], data[7]]) as usize % 2048);
    match data[1] % 6 {
        0 => stream[pos] ^= 1 << (data[8] % 8),
        1 => stream.truncate(pos),
        2 => stream.insert(pos, data[8]),
        3 => {
            let end = (pos + len).min(stream.len());
            stream.drain(pos..end);
        }
        4 => {
            let end = (pos + len).min(stream.len());
            let copy = stream[pos..end].to_vec();
            let at = (pos + data[8] as usize * 97) % (stream.len() + 1);
            stream.splice(at..at, copy);
        }
        _ => stream.extend_from_slice(&data[2..9]),
    }
    let opts = DecoderOptions {
        compression: Some(compression),
        key: Some(KEY),
        threads: 1 + (data[8] & 1) as usize,
        output_limit: limit_of(data[8] >> 1),
    };
    let mut d = Decoder::new(opts).expect("fuzzing: internal error: valid options");
    let chunk = 1 + data[8] as usize * 13;
    let mut out = Vec::new();
    let mut result = Ok(());
    for c in stream.chunks(chunk) {
        match write_through(&mut d, c) {
            Ok(o) => out.extend_from_slice(&o),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        match finish_through(&mut d) {
            Ok(o) => out.extend_from_slice(&o),
            Err(e) => result = Err(e),
        }
    }
    if stream == original {
        assert!(result.is_ok(), "an intact stream failed: {result:?}");
        assert_eq!(out, plain);
    } else {
        assert!(
            result.is_err(),
            "This is a security issue: a modified stream decoded ({} bytes)",
            out.len()
        );
    }
}
