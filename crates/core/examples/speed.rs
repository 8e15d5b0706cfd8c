//! Core-level throughput probe (not a test, not a benchmark of record): `speed MiB` times the
//! encoder/decoder without N-API, to separate core speed from binding overhead.
use s3db_backup_core::*;
use std::time::Instant;
fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(128);
    let mut data = Vec::with_capacity(mib << 20);
    let mut i = 0u64;
    while data.len() < mib << 20 {
        data.extend_from_slice(format!("{{\"id\":{i},\"name\":\"user {}\",\"email\":\"u{}@example.com\",\"v\":{}}}\n", i % 977, i % 5113, i * 7919 % 100003).as_bytes());
        i += 1;
    }
    data.truncate(mib << 20);
    let mb = data.len() as f64 / 1e6;
    let only = std::env::args().nth(2).unwrap_or_default();
    for (c, level, key) in [(Compression::None, None, true), (Compression::Gzip, Some(6), false), (Compression::Gzip, Some(6), true)] {
        if !only.is_empty() && only != format!("{c:?}{}", if key { "+key" } else { "" }) {
            continue;
        }
        for batch in [2usize << 20, 8 << 20] {
            let mut o = EncoderOptions::new(c);
            o.level = level;
            o.key = key.then_some([7; 32]);
            let out = encode_all(o.clone(), &data).unwrap();
            let t = Instant::now();
            let mut e = Encoder::new(o).unwrap();
            let mut n = 0;
            for ch in data.chunks(batch) {
                n += e.write(ch).unwrap().len();
            }
            n += e.finish().unwrap().len();
            assert_eq!(n, out.len());
            let enc_s = t.elapsed().as_secs_f64();
            if std::env::var("SKIP_ENCODE").is_ok() {
                let mut d = Decoder::new(DecoderOptions { compression: Some(c), key: key.then_some([7; 32]), threads: 0 }).unwrap();
                for _ in 0..0 { let _ = d.write(&[]); }
            }
            let dreps: usize = std::env::var("DECODE_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
            for _ in 1..dreps {
                let mut d = Decoder::new(DecoderOptions { compression: Some(c), key: key.then_some([7; 32]), threads: 0 }).unwrap();
                let mut n = 0;
                for ch in out.chunks(batch / 4) {
                    n += d.write(ch).unwrap().len();
                }
                n += d.finish().unwrap().len();
                assert_eq!(n, data.len());
            }
            let t = Instant::now();
            let mut d = Decoder::new(DecoderOptions { compression: Some(c), key: key.then_some([7; 32]), threads: 0 }).unwrap();
            let mut n = 0;
            for ch in out.chunks(batch / 4) {
                n += d.write(ch).unwrap().len();
            }
            n += d.finish().unwrap().len();
            assert_eq!(n, data.len());
            let dec_s = t.elapsed().as_secs_f64();
            println!("{:?} level {:?} key {key} batch {} MiB: encode {:.0} MB/s, decode {:.0} MB/s", c, level, batch >> 20, mb / enc_s, mb / dec_s);
        }
    }
}
