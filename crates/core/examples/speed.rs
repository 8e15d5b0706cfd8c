//! Core-level throughput probe (not a test, not the benchmark of record): `speed [MiB] [CASE]`
//! times the encoder and decoder without N-API, to tell core speed from binding overhead.
//! CASE: `None+key`, `Gzip`, `Gzip+key` (default: all). `DECODE_REPS=N` decodes N times (the
//! last one is timed), for profiling the decoder with `perf record`.
use s3db_backup_core::*;
use std::time::Instant;

/// Decodes `stored` in `chunk`-byte writes; returns the plaintext length.
fn decode(c: Compression, key: Option<[u8; 32]>, stored: &[u8], chunk: usize) -> usize {
    let mut d = Decoder::new(DecoderOptions {
        compression: Some(c),
        key,
        threads: 0,
        output_limit: 0,
    })
    .unwrap();
    let mut n = 0;
    for ch in stored.chunks(chunk) {
        n += d.write(ch).unwrap().len();
    }
    n + d.finish().unwrap().len()
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(128);
    let only = std::env::args().nth(2).unwrap_or_default();
    let decode_reps: usize = std::env::var("DECODE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut data = Vec::with_capacity(mib << 20);
    let mut i = 0u64;
    while data.len() < mib << 20 {
        data.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"user {}\",\"email\":\"u{}@example.com\",\"v\":{}}}\n",
                i % 977,
                i % 5113,
                i * 7919 % 100003
            )
            .as_bytes(),
        );
        i += 1;
    }
    data.truncate(mib << 20);
    let mb = data.len() as f64 / 1e6;
    for (c, level, encrypted) in [
        (Compression::None, None, true),
        (Compression::Gzip, Some(6), false),
        (Compression::Gzip, Some(6), true),
    ] {
        if !only.is_empty() && only != format!("{c:?}{}", if encrypted { "+key" } else { "" }) {
            continue;
        }
        let key = encrypted.then_some([7; 32]);
        for batch in [2usize << 20, 8 << 20] {
            let mut o = EncoderOptions::new(c);
            o.level = level;
            o.key = key;
            let stored = encode_all(o.clone(), &data).unwrap();
            let t = Instant::now();
            let mut e = Encoder::new(o).unwrap();
            let mut n = 0;
            for ch in data.chunks(batch) {
                n += e.write(ch).unwrap().len();
            }
            n += e.finish().unwrap().len();
            assert_eq!(n, stored.len());
            let enc_s = t.elapsed().as_secs_f64();
            for _ in 1..decode_reps {
                assert_eq!(decode(c, key, &stored, batch / 4), data.len());
            }
            let t = Instant::now();
            assert_eq!(decode(c, key, &stored, batch / 4), data.len());
            let dec_s = t.elapsed().as_secs_f64();
            println!("{c:?} level {level:?} key {encrypted} batch {} MiB: encode {:.0} MB/s, decode {:.0} MB/s", batch >> 20, mb / enc_s, mb / dec_s);
        }
    }
}
