//! Every rejection of FORMAT.md 2.5, each asserting its specific error code (and the start of
//! the message). Streams use compression `none` and 1024-byte segments so the byte layout is known:
//! 3000 bytes -> header (87) || seg0 (4+1024+16) || seg1 (1044) || seg2 final (4+952+16).
use crate::common::*;
use s3db_backup_core::*;

const H: usize = 87;
const S: usize = 1044;
const SEG0: usize = H;
const SEG1: usize = H + S;
const SEG2: usize = H + 2 * S;

fn plaintext() -> Vec<u8> {
    Rng(77).bytes(3000)
}

fn stream() -> Vec<u8> {
    let s = encode(
        enc_opts(Compression::None, Some(KEY), 1024, 2),
        &plaintext(),
        ODD,
    )
    .unwrap();
    assert_eq!(s.len(), SEG2 + 4 + 952 + 16);
    s
}

/// Decodes `bytes` whole and in 7-byte chunks, with 1 and 3 threads; all must fail with `code`.
/// Returns the error message.
fn reject(bytes: &[u8], code: &str) -> String {
    reject_with(bytes, code, Some(Compression::None), KEY)
}

fn reject_with(bytes: &[u8], code: &str, expected: Option<Compression>, key: [u8; 32]) -> String {
    let mut msg = String::new();
    for (sizes, threads) in [(&[usize::MAX][..], 1), (&[7][..], 3), (&[1044, 1][..], 2)] {
        let sizes: Vec<usize> = sizes.iter().map(|&s| s.min(bytes.len().max(1))).collect();
        let opts = DecoderOptions {
            compression: expected,
            key: Some(key),
            threads,
            output_limit: 0,
        };
        match decode(opts, bytes, &sizes) {
            Ok(out) => panic!(
                "This is a security issue: a stream that must fail with {code} decoded to {} bytes",
                out.len()
            ),
            Err(e) => {
                assert_eq!(e.code(), code, "chunks {sizes:?}: {e}");
                if !msg.is_empty() {
                    assert_eq!(
                        msg,
                        e.to_string(),
                        "the message must not depend on chunking"
                    );
                }
                msg = e.to_string();
            }
        }
    }
    msg
}

fn with(mut s: Vec<u8>, at: usize, f: impl FnOnce(&mut u8)) -> Vec<u8> {
    f(&mut s[at]);
    s
}

#[test]
fn intact_stream_decodes() {
    assert_eq!(
        decode(dec_opts(Compression::None, Some(KEY), 2), &stream(), ODD).unwrap(),
        plaintext()
    );
}

#[test]
fn empty_stream_is_header_final_frame_and_tag() {
    let s = encode(enc_opts(Compression::None, Some(KEY), 1024, 1), &[], ODD).unwrap();
    assert_eq!(s.len(), 87 + 4 + 16);
    assert_eq!(&s[87..91], &[0x80, 0, 0, 0]);
    assert_eq!(
        decode(dec_opts(Compression::None, Some(KEY), 1), &s, ODD).unwrap(),
        b""
    );
}

#[test]
fn truncated_header() {
    let s = stream();
    for n in [0, 1, 8, 50, 86] {
        let m = reject(&s[..n], "ERR_TRUNCATED_HEADER");
        assert!(m.starts_with("stream is truncated: it ends inside the 87-byte header"));
    }
}

#[test]
fn bad_magic() {
    let m = reject(&with(stream(), 0, |b| *b ^= 1), "ERR_NOT_ENCRYPTED_STREAM");
    assert!(m.starts_with("not an s3db-backup encrypted stream (bad magic)"));
    // A plain gzip stream given to an encrypted reader.
    let gz = encode_all(EncoderOptions::new(Compression::Gzip), &Rng(5).bytes(500)).unwrap();
    reject_with(
        &gz,
        "ERR_NOT_ENCRYPTED_STREAM",
        Some(Compression::Gzip),
        KEY,
    );
}

#[test]
fn unknown_version_algorithm_or_reserved() {
    for at in [8, 9, 11] {
        let m = reject(&with(stream(), at, |b| *b = 2), "ERR_UNSUPPORTED_VERSION");
        assert!(m.starts_with("unsupported stream version/algorithm"));
    }
    // Unknown compression byte with no expectation named.
    reject_with(
        &with(stream(), 10, |b| *b = 9),
        "ERR_UNSUPPORTED_VERSION",
        None,
        KEY,
    );
}

#[test]
fn compression_mismatch() {
    let m = reject_with(
        &stream(),
        "ERR_COMPRESSION_MISMATCH",
        Some(Compression::Gzip),
        KEY,
    );
    assert!(
        m.starts_with("stream was written with compression none"),
        "{m}"
    );
    reject(&with(stream(), 10, |b| *b = 3), "ERR_COMPRESSION_MISMATCH");
    reject(&with(stream(), 10, |b| *b = 9), "ERR_COMPRESSION_MISMATCH");
    // With no expectation, a changed compression byte is caught by the header MAC.
    reject_with(
        &with(stream(), 10, |b| *b = 1),
        "ERR_HEADER_TAMPERED",
        None,
        KEY,
    );
}

#[test]
fn segment_size_out_of_range() {
    for size in [0u32, 1023, 16 * 1024 * 1024 + 1, u32::MAX] {
        let mut s = stream();
        s[12..16].copy_from_slice(&size.to_be_bytes());
        let m = reject(&s, "ERR_BAD_HEADER");
        assert!(m.starts_with("invalid segment size"));
    }
}

#[test]
fn wrong_key() {
    let m = reject_with(
        &stream(),
        "ERR_WRONG_KEY",
        Some(Compression::None),
        [0x43; 32],
    );
    assert!(m.starts_with("wrong key: this stream was encrypted with another key"));
    reject(&with(stream(), 20, |b| *b ^= 0x80), "ERR_WRONG_KEY");
}

#[test]
fn header_tampering() {
    // salt, nonce prefix, header_mac
    for at in [32, 63, 64, 70, 71, 86] {
        let m = reject(&with(stream(), at, |b| *b ^= 1), "ERR_HEADER_TAMPERED");
        assert!(m.starts_with("header authentication failed"));
    }
    // Another valid segment size.
    let mut s = stream();
    s[12..16].copy_from_slice(&2048u32.to_be_bytes());
    reject(&s, "ERR_HEADER_TAMPERED");
}

#[test]
fn truncation_at_segment_boundaries() {
    let s = stream();
    let m = reject(&s[..H], "ERR_TRUNCATED");
    assert_eq!(
        m,
        "stream is truncated: it ends after the header without its final segment"
    );
    let m = reject(&s[..SEG1], "ERR_TRUNCATED");
    assert_eq!(
        m,
        "stream is truncated: it ends after segment 0 without its final segment"
    );
    let m = reject(&s[..SEG2], "ERR_TRUNCATED");
    assert_eq!(
        m,
        "stream is truncated: it ends after segment 1 without its final segment"
    );
}

#[test]
fn truncation_inside_segments() {
    let s = stream();
    for (cut, seg) in [
        (SEG0 + 1, 0),
        (SEG0 + 4, 0),
        (SEG0 + 500, 0),
        (SEG1 - 1, 0),
        (SEG1 + 3, 1),
        (SEG2 + 4 + 952, 2),
        (s.len() - 1, 2),
    ] {
        let m = reject(&s[..cut], "ERR_TRUNCATED_SEGMENT");
        assert_eq!(m, format!("stream is truncated inside segment {seg}"));
    }
}

#[test]
fn invalid_segment_lengths() {
    let s = stream();
    // Non-final segment shorter than segment_size.
    let mut t = s.clone();
    t[SEG0..SEG0 + 4].copy_from_slice(&1000u32.to_be_bytes());
    let m = reject(&t, "ERR_BAD_SEGMENT_LENGTH");
    assert!(m.starts_with("segment 0 has an invalid length"), "{m}");
    // Final segment longer than segment_size.
    let mut t = s.clone();
    t[SEG2..SEG2 + 4].copy_from_slice(&(0x8000_0000u32 | 1025).to_be_bytes());
    assert!(reject(&t, "ERR_BAD_SEGMENT_LENGTH").starts_with("segment 2 has"));
    // An empty final segment that is not the first one.
    let mut t = s[..SEG2].to_vec();
    t.extend_from_slice(&[0x80, 0, 0, 0]);
    t.extend_from_slice(&[0u8; 16]);
    assert!(reject(&t, "ERR_BAD_SEGMENT_LENGTH").starts_with("segment 2 has"));
}

#[test]
fn flipped_bits_in_body_fail_authentication() {
    let s = stream();
    for (at, seg) in [
        (SEG0 + 4, 0),
        (SEG1 + 600, 1),
        (SEG2 - 1, 1),
        (SEG2 + 10, 2),
        (s.len() - 1, 2),
    ] {
        let m = reject(&with(s.clone(), at, |b| *b ^= 0x10), "ERR_SEGMENT_AUTH");
        assert_eq!(
            m,
            format!(
                "segment {seg} failed authentication: the data is corrupted or was tampered with"
            )
        );
    }
    // Setting the last flag on segment 0 changes its AAD and nonce: authentication fails.
    reject(&with(s, SEG0, |b| *b |= 0x80), "ERR_SEGMENT_AUTH");
}

#[test]
fn swapped_segments_are_out_of_order() {
    let s = stream();
    let mut t = s[..SEG0].to_vec();
    t.extend_from_slice(&s[SEG1..SEG2]);
    t.extend_from_slice(&s[SEG0..SEG1]);
    t.extend_from_slice(&s[SEG2..]);
    let m = reject(&t, "ERR_SEGMENT_ORDER");
    assert_eq!(
        m,
        "segment 0 is out of order: it is segment 1 (segments reordered or duplicated)"
    );
}

#[test]
fn duplicated_segment_is_out_of_order() {
    let s = stream();
    let mut t = s[..SEG1].to_vec();
    t.extend_from_slice(&s[SEG0..SEG1]);
    t.extend_from_slice(&s[SEG1..]);
    let m = reject(&t, "ERR_SEGMENT_ORDER");
    assert!(
        m.starts_with("segment 1 is out of order: it is segment 0"),
        "{m}"
    );
}

#[test]
fn dropped_middle_segment_is_out_of_order() {
    let s = stream();
    let mut t = s[..SEG1].to_vec();
    t.extend_from_slice(&s[SEG2..]);
    let m = reject(&t, "ERR_SEGMENT_ORDER");
    assert!(
        m.starts_with("segment 1 is out of order: it is segment 2"),
        "{m}"
    );
}

#[test]
fn segment_from_another_stream_fails_authentication() {
    let s = stream();
    let other = stream(); // fresh salt: other keys
    let mut t = s[..SEG1].to_vec();
    t.extend_from_slice(&other[SEG1..SEG2]);
    t.extend_from_slice(&s[SEG2..]);
    reject(&t, "ERR_SEGMENT_AUTH");
}

#[test]
fn appended_bytes_are_trailing_data() {
    let s = stream();
    let mut t = s.clone();
    t.push(0);
    let m = reject(&t, "ERR_TRAILING_DATA");
    assert!(m.starts_with("unexpected data after the final segment"));
    let mut t = s.clone();
    t.extend_from_slice(&s[SEG0..SEG1]);
    reject(&t, "ERR_TRAILING_DATA");
    // Two whole streams back to back.
    let mut t = s.clone();
    t.extend_from_slice(&s);
    reject(&t, "ERR_TRAILING_DATA");
}

#[test]
fn the_first_failure_in_stream_order_wins() {
    // Segment 0 corrupt AND trailing data: segment 0's error is reported, whatever the threads.
    let mut t = with(stream(), SEG0 + 100, |b| *b ^= 1);
    t.push(1);
    reject(&t, "ERR_SEGMENT_AUTH");
    // Segment 1 corrupt and the stream truncated later.
    let t = with(stream(), SEG1 + 100, |b| *b ^= 1);
    reject(&t[..SEG2 + 10], "ERR_SEGMENT_AUTH");
}

#[test]
fn errors_are_sticky() {
    let t = with(stream(), SEG1 + 7, |b| *b ^= 1);
    let mut d = Decoder::new(dec_opts(Compression::None, Some(KEY), 2)).unwrap();
    let e1 = match d.write(&t) {
        Err(e) => e,
        Ok(_) => d.finish().unwrap_err(),
    };
    assert_eq!(e1.code(), "ERR_SEGMENT_AUTH");
    assert_eq!(d.write(&[]).unwrap_err(), e1);
    assert_eq!(d.write(&t).unwrap_err(), e1);
    assert_eq!(d.finish().unwrap_err(), e1);
}

#[test]
fn plaintext_of_a_failing_segment_is_never_released() {
    let p = plaintext();
    let t = with(stream(), SEG1 + 500, |b| *b ^= 1);
    for chunk in [1usize, 7, 100, 1044, 5000] {
        let mut d = Decoder::new(dec_opts(Compression::None, Some(KEY), 2)).unwrap();
        let mut released = Vec::new();
        let mut failed = false;
        for c in t.chunks(chunk) {
            match d.write(c) {
                Ok(out) => released.extend_from_slice(&out),
                Err(e) => {
                    assert_eq!(e.code(), "ERR_SEGMENT_AUTH");
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            assert_eq!(d.finish().unwrap_err().code(), "ERR_SEGMENT_AUTH");
        }
        assert!(
            released.len() <= 1024,
            "chunk {chunk}: released {} bytes, beyond segment 0",
            released.len()
        );
        assert_eq!(released, p[..released.len()]);
    }
}

#[test]
fn compressed_encrypted_streams_reject_tampering_too() {
    let data = records(400_000, 2);
    for c in [
        Compression::Gzip,
        Compression::Brotli,
        Compression::Zstd,
        Compression::Deflate,
    ] {
        let s = encode(enc_opts(c, Some(KEY), 4096, 2), &data, ODD).unwrap();
        reject_with(
            &with(s.clone(), s.len() / 2, |b| *b ^= 4),
            "ERR_SEGMENT_AUTH",
            Some(c),
            KEY,
        );
        reject_with(&s[..s.len() - 20], "ERR_TRUNCATED_SEGMENT", Some(c), KEY);
        let boundary = 87 + (4096 + 20) * 3;
        reject_with(&s[..boundary], "ERR_TRUNCATED", Some(c), KEY);
    }
}

#[test]
fn corrupt_plain_streams_are_decompress_errors() {
    let data = records(200_000, 4);
    for c in [
        Compression::Gzip,
        Compression::Deflate,
        Compression::Brotli,
        Compression::Zstd,
    ] {
        let s = encode_all(enc_opts(c, None, 1 << 20, 2), &data).unwrap();
        // Truncated.
        let e = decode(dec_opts(c, None, 1), &s[..s.len() - 3], ODD).unwrap_err();
        assert_eq!(e.code(), "ERR_DECOMPRESS", "{}: {e}", c.name());
        assert!(
            e.to_string()
                .starts_with(&format!("{} data is corrupt: ", c.name())),
            "{e}"
        );
        // Garbage appended (gzip: a new member must start with the gzip magic).
        let mut t = s.clone();
        t.extend_from_slice(b"garbage!");
        assert_eq!(
            decode(dec_opts(c, None, 1), &t, ODD).unwrap_err().code(),
            "ERR_DECOMPRESS",
            "{}",
            c.name()
        );
        // Empty input is not a stream of a compressed codec.
        assert_eq!(
            decode(dec_opts(c, None, 1), &[], ODD).unwrap_err().code(),
            "ERR_DECOMPRESS"
        );
    }
    // Flipped bit in gzip's CRC.
    let mut s = encode_all(enc_opts(Compression::Gzip, None, 1 << 20, 2), &data).unwrap();
    let n = s.len();
    s[n - 6] ^= 1;
    assert_eq!(
        decode(dec_opts(Compression::Gzip, None, 1), &s, ODD)
            .unwrap_err()
            .code(),
        "ERR_DECOMPRESS"
    );
}
