//! Peak memory probe (not a test): `rss CODEC LEVEL MiB` streams MiB of records through an
//! encrypting encoder and decoder in 1 MiB writes; run under `/usr/bin/time -v` for max RSS.
use s3db_backup_core::*;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let c = Compression::parse(&a[1]).unwrap();
    let level: Option<i32> = a[2].parse().ok();
    let mib: usize = a[3].parse().unwrap();
    let mut chunk = Vec::new();
    let mut i = 0u64;
    while chunk.len() < 1 << 20 {
        chunk.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"user {}\",\"v\":{}}}\n",
                i % 977,
                i * 7919 % 100003
            )
            .as_bytes(),
        );
        i += 1;
    }
    chunk.truncate(1 << 20);
    let mut o = EncoderOptions::new(c);
    o.level = level;
    o.key = Some([1; 32]);
    o.threads = 2;
    let mut e = Encoder::new(o).unwrap();
    let mut d = Decoder::new(DecoderOptions {
        compression: Some(c),
        key: Some([1; 32]),
        threads: 2,
        output_limit: 0,
    })
    .unwrap();
    let mut n = 0;
    for _ in 0..mib {
        let enc = e.write(&chunk).unwrap();
        n += d.write(&enc).unwrap().len();
    }
    let enc = e.finish().unwrap();
    n += d.write(&enc).unwrap().len() + d.finish().unwrap().len();
    assert_eq!(n, mib << 20);
}
