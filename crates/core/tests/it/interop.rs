//! Unencrypted output is the standard stream of its codec: read by flate2's MultiGzDecoder (gzip
//! is a series of members, FORMAT.md 2.1) / ZlibDecoder, the brotli crate's reader, libzstd, and by `gzip -d` / `zstd -d` when
//! those tools are installed. And our decoders read streams written by the standard encoders.
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::common::*;
use s3db_backup_core::*;

fn sizes() -> Vec<usize> {
    vec![0, 1, 1 << 20, (1 << 20) + 1, 3 * 1024 * 1024 + 5]
}

fn ours(c: Compression, data: &[u8], threads: usize) -> Vec<u8> {
    encode(enc_opts(c, None, 1 << 20, threads), data, ODD).unwrap()
}

fn tool(cmd: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed");
    Some(out.stdout)
}

#[test]
fn gzip_is_standard_multi_member_gzip() {
    for n in sizes() {
        let data = records(n, 11);
        let gz = ours(Compression::Gzip, &data, 2);
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        // flate2's multi-member decoder (what `gzip -d` and Node's gunzip do) reads it all.
        let mut d = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out, data, "n = {n}");
        if let Some(out) = tool("gzip", &["-d", "-c"], &gz) {
            assert_eq!(out, data, "gzip -d, n = {n}");
        } else {
            eprintln!("gzip not installed: checked with flate2 only");
        }
    }
}

#[test]
fn deflate_is_one_zlib_stream() {
    for n in sizes() {
        let data = records(n, 12);
        let z = ours(Compression::Deflate, &data, 3);
        assert_eq!(z[0], 0x78);
        assert_eq!(u16::from_be_bytes([z[0], z[1]]) % 31, 0);
        let mut d = flate2::read::ZlibDecoder::new(&z[..]);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out, data, "n = {n}");
    }
}

#[test]
fn brotli_is_one_standard_stream() {
    for n in sizes() {
        let data = records(n, 13);
        let b = ours(Compression::Brotli, &data, 2);
        let mut out = Vec::new();
        brotli::Decompressor::new(&b[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data, "n = {n}");
    }
}

#[test]
fn zstd_is_standard() {
    for n in sizes() {
        let data = records(n, 14);
        let z = ours(Compression::Zstd, &data, 2);
        assert_eq!(zstd::stream::decode_all(&z[..]).unwrap(), data, "n = {n}");
        if let Some(out) = tool("zstd", &["-d", "-c", "-q"], &z) {
            assert_eq!(out, data, "zstd -d, n = {n}");
        } else {
            eprintln!("zstd not installed: checked with libzstd only");
        }
    }
}

#[test]
fn we_read_streams_of_the_standard_encoders() {
    let data = records(2_500_000, 15);
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    g.write_all(&data).unwrap();
    let gz = g.finish().unwrap();
    assert_eq!(
        decode(dec_opts(Compression::Gzip, None, 1), &gz, ODD).unwrap(),
        data
    );
    // Two members back to back, as `cat a.gz b.gz` (gzip -d reads both).
    let mut two = gz.clone();
    two.extend_from_slice(&gz);
    let mut both = data.clone();
    both.extend_from_slice(&data);
    assert_eq!(
        decode(dec_opts(Compression::Gzip, None, 1), &two, ODD).unwrap(),
        both
    );

    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    z.write_all(&data).unwrap();
    assert_eq!(
        decode(
            dec_opts(Compression::Deflate, None, 1),
            &z.finish().unwrap(),
            ODD
        )
        .unwrap(),
        data
    );

    let mut b = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut b, 4096, 5, 22);
        w.write_all(&data).unwrap();
    }
    assert_eq!(
        decode(dec_opts(Compression::Brotli, None, 1), &b, ODD).unwrap(),
        data
    );

    let z = zstd::stream::encode_all(&data[..], 3).unwrap();
    let mut two = z.clone();
    two.extend_from_slice(&z);
    assert_eq!(
        decode(dec_opts(Compression::Zstd, None, 1), &two, ODD).unwrap(),
        both
    );

    if let Some(gz) = tool("gzip", &["-c", "-6"], &data) {
        assert_eq!(
            decode(dec_opts(Compression::Gzip, None, 1), &gz, ODD).unwrap(),
            data
        );
    }
}

#[test]
fn parallel_output_does_not_depend_on_thread_count_or_chunking() {
    let data = records(3 << 20, 16);
    for c in [Compression::Gzip, Compression::Deflate, Compression::Brotli] {
        let a = encode(enc_opts(c, None, 1 << 20, 1), &data, ODD).unwrap();
        let b = encode(enc_opts(c, None, 1 << 20, 3), &data, &[1 << 20]).unwrap();
        assert_eq!(a, b, "{}", c.name());
    }
}

#[test]
fn large_streams_in_one_mib_writes_decode() {
    // Regression: the output buffer filling up exactly as a zstd frame ends.
    let data = records(16 << 20, 1);
    for c in [Compression::Zstd, Compression::Gzip, Compression::Brotli] {
        let enc = encode(enc_opts(c, None, 1 << 20, 2), &data, &[1 << 20]).unwrap();
        assert_eq!(
            decode(dec_opts(c, None, 2), &enc, &[1 << 20]).unwrap(),
            data,
            "{}",
            c.name()
        );
    }
}
