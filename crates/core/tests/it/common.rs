//! Helpers shared by the integration tests: deterministic data and chunked feeding.
#![allow(dead_code)]

use s3db_backup_core::*;

/// xorshift64*: deterministic pseudo-random bytes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Deterministic JSON-lines "database records", exactly `n` bytes.
pub fn records(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let names = [
        "Ana", "Bruno", "Carla", "Diego", "Elisa", "Fabio", "Gabi", "Hugo",
    ];
    let words = [
        "order", "shipped", "pending", "refund", "customer", "premium", "invoice", "delivery",
    ];
    let mut out = Vec::with_capacity(n + 512);
    let mut i = 0u64;
    while out.len() < n {
        let line = format!(
            "{{\"id\":\"usr_{:08x}\",\"name\":\"{} {}\",\"age\":{},\"balance\":{}.{:02},\"tags\":[\"{}\",\"{}\"],\"bio\":\"{} {} {}\",\"n\":{}}}\n",
            i * 7919 + 13,
            names[r.below(8) as usize],
            names[r.below(8) as usize],
            18 + r.below(60),
            r.below(100000),
            r.below(100),
            words[r.below(8) as usize],
            words[r.below(8) as usize],
            words[r.below(8) as usize],
            words[r.below(8) as usize],
            words[r.below(8) as usize],
            r.next()
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Chunk sizes cycled through when feeding streams ("odd" on purpose).
pub const ODD: &[usize] = &[1, 7, 4099, 65537, 1, 300_001, 13];

/// Feeds `input` to `f` in chunks cycling through `sizes`; concatenates the outputs.
pub fn feed<F: FnMut(&[u8]) -> Result<Vec<u8>>>(
    input: &[u8],
    sizes: &[usize],
    mut f: F,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = sizes[i % sizes.len()].min(input.len() - pos);
        out.extend_from_slice(&f(&input[pos..pos + n])?);
        pos += n;
        i += 1;
    }
    Ok(out)
}

pub fn encode(opts: EncoderOptions, input: &[u8], sizes: &[usize]) -> Result<Vec<u8>> {
    let mut e = Encoder::new(opts)?;
    let mut out = feed(input, sizes, |c| e.write(c))?;
    out.extend_from_slice(&e.finish()?);
    Ok(out)
}

/// Decodes as a caller with an output limit must: after each write, writes no input while the
/// decoder has `more()`; `finish` is called again while it has.
pub fn decode(opts: DecoderOptions, input: &[u8], sizes: &[usize]) -> Result<Vec<u8>> {
    let mut d = Decoder::new(opts)?;
    let mut out = feed(input, sizes, |c| {
        let mut out = d.write(c)?;
        while d.more() {
            out.extend_from_slice(&d.write(&[])?);
        }
        Ok(out)
    })?;
    loop {
        out.extend_from_slice(&d.finish()?);
        if !d.more() {
            return Ok(out);
        }
    }
}

pub const KEY: [u8; 32] = [0x42; 32];

pub fn enc_opts(
    c: Compression,
    key: Option<[u8; 32]>,
    segment_size: u32,
    threads: usize,
) -> EncoderOptions {
    let mut o = EncoderOptions::new(c);
    o.key = key;
    o.segment_size = segment_size;
    o.threads = threads;
    o
}

pub fn dec_opts(c: Compression, key: Option<[u8; 32]>, threads: usize) -> DecoderOptions {
    DecoderOptions {
        compression: Some(c),
        key,
        threads,
        output_limit: 0,
    }
}

pub const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Deflate,
    Compression::Brotli,
    Compression::Zstd,
];
