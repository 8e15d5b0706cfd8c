//! Level calibration and throughput check (not a test): `cargo run --release -p s3db_backup_core
//! --example calibrate -- FILE [threads] [all|zlib|grid|codecs|gzip|brotli]`. Prints, for FILE
//! (JSON-lines records), the ratio of each zlib-rs level through the pigz-style encoder, then MB/s (of uncompressed input) and ratio of
//! every codec at its default and mapped levels, plain and encrypted, encode and decode.
use std::time::Instant;

use s3db_backup_core::*;

fn mbps(bytes: usize, t: Instant) -> f64 {
    bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
}

fn run(
    data: &[u8],
    c: Compression,
    level: Option<i32>,
    key: Option<[u8; 32]>,
    threads: usize,
    batch: usize,
) {
    let mut o = EncoderOptions::new(c);
    o.level = level;
    o.key = key;
    o.threads = threads;
    let t = Instant::now();
    let mut e = Encoder::new(o).unwrap();
    let mut enc = Vec::new();
    for ch in data.chunks(batch) {
        enc.extend_from_slice(&e.write(ch).unwrap());
    }
    enc.extend_from_slice(&e.finish().unwrap());
    let enc_speed = mbps(data.len(), t);
    let mut d = Decoder::new(DecoderOptions {
        compression: Some(c),
        key,
        threads,
        output_limit: 0,
    })
    .unwrap();
    let t = Instant::now();
    let mut n = 0;
    for ch in enc.chunks(batch) {
        n += d.write(ch).unwrap().len();
    }
    n += d.finish().unwrap().len();
    assert_eq!(n, data.len());
    let dec_speed = mbps(data.len(), t);
    println!(
        "{:8} level {:>4} {:9} threads {threads}: encode {enc_speed:7.1} MB/s  decode {dec_speed:7.1} MB/s  ratio {:.4}",
        c.name(),
        level.map(|l| l.to_string()).unwrap_or("def".into()),
        if key.is_some() { "encrypted" } else { "plain" },
        data.len() as f64 / enc.len() as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1]).expect("usage: calibrate FILE [threads] [what]");
    let threads: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(0);
    let what = args.get(3).cloned().unwrap_or_else(|| "all".into());
    let batch = 1 << 20;
    if what == "all" || what == "zlib" {
        for l in 1..=9 {
            for params in [
                levels::ZlibParams {
                    base_level: l,
                    tune: None,
                },
                levels::zlib_params(Compression::Gzip, Some(l)).unwrap(),
            ] {
                let t = Instant::now();
                let out =
                    compress::deflate_with_backend_params(params, threads.max(1), &data).unwrap();
                let r = data.len() as f64 / out.len() as f64;
                println!("{params:?}: ratio {r:.4}  {:.1} MB/s", mbps(data.len(), t));
            }
        }
    }
    if what == "grid" {
        // Candidate zlib-rs tunings between Node's levels 5 and 6 (ratio vs speed).
        for (base, tune) in [
            (7, (8, 16, 128, 128)),
            (7, (8, 24, 128, 48)),
            (7, (8, 32, 128, 32)),
            (7, (8, 16, 128, 128)),
            (7, (8, 24, 128, 48)),
            (7, (8, 32, 128, 32)),
            (7, (8, 16, 128, 128)),
            (7, (8, 24, 128, 48)),
            (7, (8, 32, 128, 32)),
        ] {
            let params = levels::ZlibParams {
                base_level: base,
                tune: Some(tune),
            };
            let t = Instant::now();
            let out = compress::deflate_with_backend_params(params, threads.max(1), &data).unwrap();
            let r = data.len() as f64 / out.len() as f64;
            println!("{params:?}: ratio {r:.4}  {:.1} MB/s", mbps(data.len(), t));
        }
    }
    let key = Some([7u8; 32]);
    if what == "all" || what == "codecs" {
        for (c, levels) in [
            (Compression::Gzip, vec![Some(1), None, Some(9)]),
            (Compression::Deflate, vec![None]),
            (Compression::Brotli, vec![Some(1), None, Some(6)]),
            (Compression::Zstd, vec![None, Some(9)]),
            (Compression::None, vec![None]),
        ] {
            for l in levels {
                run(&data, c, l, None, threads, batch);
                run(&data, c, l, key, threads, batch);
            }
        }
    }
    if what == "gzip" {
        // Every gzip level on one core: the ratio and speed `levels::GZIP_MAP` was chosen by.
        for l in 1..=9 {
            run(&data, Compression::Gzip, Some(l), None, 1, batch);
        }
    }
    if what.starts_with("brotli") {
        for q in 0..=6 {
            run(&data, Compression::Brotli, Some(q), None, threads, batch);
        }
    }
}
