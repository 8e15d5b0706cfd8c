//! Gzip as a series of self-sized members (FORMAT.md 2.1): the layout is what the format says,
//! each member is a gzip file of its own, the parallel reader falls back to serial reading for
//! members written by other tools, and damage is an error, never output that passes as good.
use std::io::{Read, Write};

use crate::common::*;
use s3db_backup_core::*;

const BLOCK: usize = 2 << 20;

fn ours(data: &[u8]) -> Vec<u8> {
    encode(enc_opts(Compression::Gzip, None, 1 << 20, 2), data, ODD).unwrap()
}

/// Reads `stream`; a reader stopped every 100 KB by an output limit must give the same answer,
/// byte for byte or error for error (serial rereads, truncation and damage included).
fn read(stream: &[u8]) -> Result<Vec<u8>> {
    let whole = decode(dec_opts(Compression::Gzip, None, 2), stream, ODD);
    let mut limited = dec_opts(Compression::Gzip, None, 2);
    limited.output_limit = 100_000;
    assert_eq!(decode(limited, stream, ODD), whole, "with an output limit");
    whole
}

/// (offset, length, last flag) of every member, from the `S3` subfields.
fn members(gz: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut at = 0;
    let mut v = Vec::new();
    while at < gz.len() {
        let h = &gz[at..at + 21];
        assert_eq!(
            &h[..4],
            &[0x1f, 0x8b, 8, 0x04],
            "member at {at}: gzip magic, FLG = FEXTRA"
        );
        assert_eq!(
            &h[10..16],
            &[9, 0, b'S', b'3', 5, 0],
            "member at {at}: XLEN 9, subfield S3 of 5 bytes"
        );
        let len = u32::from_le_bytes(h[16..20].try_into().unwrap()) as usize;
        v.push((at, len, h[20] == 1));
        at += len;
    }
    assert_eq!(at, gz.len(), "member lengths add up to the stream");
    v
}

fn gunzip_one(member: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(member)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn every_2_mib_of_input_is_one_member_that_reads_alone_and_only_the_last_is_flagged() {
    for n in [0, 1, BLOCK, BLOCK + 1, 5 * BLOCK + 3] {
        let data = records(n, 21);
        let gz = ours(&data);
        let m = members(&gz);
        assert_eq!(m.len(), n.div_ceil(BLOCK).max(1), "members of {n} bytes");
        for (i, &(at, len, last)) in m.iter().enumerate() {
            assert_eq!(
                last,
                i + 1 == m.len(),
                "last flag of member {i} of {n} bytes"
            );
            let want = &data[(i * BLOCK).min(n)..((i + 1) * BLOCK).min(n)];
            assert_eq!(
                gunzip_one(&gz[at..at + len]),
                want,
                "member {i} of {n} bytes alone"
            );
        }
        assert_eq!(read(&gz).unwrap(), data);
    }
}

/// Member `i` is deflated at `levels::gzip_levels`'s schedule position `i % len` (FORMAT.md 2.1,
/// levels.rs: the default level 6 runs three members in four at libdeflate 5, one at 6).
#[test]
fn members_follow_the_level_schedule() {
    let schedule = compress::levels::gzip_levels(None).unwrap();
    assert_eq!(schedule, &[5, 5, 5, 6]);
    let n = (schedule.len() + 1) * BLOCK + 7;
    let data = records(n, 22);
    let gz = ours(&data);
    for (i, &(at, len, _)) in members(&gz).iter().enumerate() {
        let level = schedule[i % schedule.len()];
        let block = &data[i * BLOCK..((i + 1) * BLOCK).min(n)];
        let mut deflater =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut want = vec![0; deflater.deflate_compress_bound(block.len())];
        let k = deflater.deflate_compress(block, &mut want).unwrap();
        assert_eq!(
            &gz[at + 21..at + len - 8],
            &want[..k],
            "member {i}: raw deflate of libdeflate level {level}"
        );
    }
}

#[test]
fn streams_of_other_writers_and_mixtures_are_read_serially_from_the_first_foreign_member() {
    let data = records(3 * BLOCK + 77, 22);
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    g.write_all(&data[..BLOCK + 5]).unwrap();
    let foreign = g.finish().unwrap();
    let own = ours(&data);
    // ours + foreign + ours (as `cat a.gz b.gz c.gz`): every part, in order.
    let mixed = [own.clone(), foreign.clone(), own.clone()].concat();
    let want = [data.clone(), data[..BLOCK + 5].to_vec(), data.clone()].concat();
    assert_eq!(read(&mixed).unwrap(), want);
    // foreign first, then ours.
    let mixed = [foreign, own].concat();
    let want = [data[..BLOCK + 5].to_vec(), data.clone()].concat();
    assert_eq!(read(&mixed).unwrap(), want);
}

#[test]
fn a_cut_between_members_is_reported_as_truncation() {
    let data = records(3 * BLOCK, 23);
    let gz = ours(&data);
    let m = members(&gz);
    for &(at, _, _) in &m[1..] {
        let err = read(&gz[..at]).unwrap_err();
        assert_eq!(err.code(), "ERR_DECOMPRESS");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
    // Inside a member too.
    let err = read(&gz[..m[1].0 + 100]).unwrap_err();
    assert_eq!(err.code(), "ERR_DECOMPRESS");
}

/// What any gzip reader makes of a stream (flate2's multi-member reader, as `gzip -d`).
fn gunzip_all(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(stream)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn set_length(stream: &mut [u8], at: usize, length: usize) {
    stream[at + 16..at + 20].copy_from_slice(&(length as u32).to_le_bytes());
}

#[test]
fn a_wrong_member_length_is_not_trusted_the_data_reads_whole_as_gzip_d_reads_it() {
    let data = records(3 * BLOCK + 5000, 24);
    let gz = ours(&data);
    let m = members(&gz);
    for (i, &(at, len, _)) in m.iter().enumerate() {
        for delta in [-1i64, 1, 1000, -1000, -(len as i64) + 31, 64 << 20] {
            let mut bad = gz.clone();
            set_length(&mut bad, at, (len as i64 + delta) as usize);
            assert!(
                gunzip_all(&bad) == data,
                "gzip -d, member {i} length {delta:+}"
            );
            assert!(
                read(&bad).unwrap() == data,
                "member {i} with length {delta:+}"
            );
        }
    }
}

#[test]
fn a_length_spanning_two_identical_members_does_not_hide_the_second() {
    // Three identical blocks make byte-identical first and second members (same data, same
    // length, neither last). A length spanning both ends, as far as the deflate data and the
    // trailer at its end can tell, like a valid member: only the end of the deflate data shows
    // that 1 member's worth of bytes was left unread. Read as one member, a block would vanish.
    let block = records(BLOCK, 31);
    let data = [block.clone(), block.clone(), block].concat();
    let gz = ours(&data);
    let m = members(&gz);
    assert_eq!(gz[m[0].0..m[1].0], gz[m[1].0..m[2].0], "identical members");
    let mut bad = gz.clone();
    set_length(&mut bad, 0, 2 * m[0].1);
    assert!(gunzip_all(&bad) == data, "gzip -d reads all three blocks");
    let back = read(&bad).unwrap();
    assert!(back == data, "read {} of {} bytes", back.len(), data.len());
}

#[test]
fn a_damaged_member_is_an_error_with_or_without_a_wrong_length() {
    let data = records(3 * BLOCK, 25);
    let gz = ours(&data);
    let m = members(&gz);
    let (at, len, _) = m[1];
    // A flipped bit in the deflate data or in the CRC-32 of the middle member.
    for pos in [at + 21 + len / 2, at + len - 6] {
        for length in [len, len + 1, len - 1] {
            let mut bad = gz.clone();
            bad[pos] ^= 0x10;
            set_length(&mut bad, at, length);
            assert_eq!(
                read(&bad).unwrap_err().code(),
                "ERR_DECOMPRESS",
                "flip at {pos}, length {length} of {len}"
            );
        }
    }
    // The last-member flag set on a middle member: the stream still reads whole (members after
    // a "last" one are a concatenated file, as `cat` makes), never less than the bytes hold.
    let mut early = gz.clone();
    early[at + 20] = 1;
    assert_eq!(read(&early).unwrap(), data);
}

/// One member in this format around raw deflate data (what `member_header` writes).
fn handmade_member(plain: &[u8], last: bool) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(plain).unwrap();
    let body = e.finish().unwrap();
    let total = (21 + body.len() + 8) as u32;
    let mut m = vec![
        0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 3, 9, 0, b'S', b'3', 5, 0,
    ];
    m.extend_from_slice(&total.to_le_bytes());
    m.push(u8::from(last));
    m.extend_from_slice(&body);
    let mut crc = flate2::Crc::new();
    crc.update(plain);
    m.extend_from_slice(&crc.sum().to_le_bytes());
    m.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    m
}

#[test]
fn a_member_recording_more_than_64_mib_is_read_by_the_general_reader() {
    // This project writes 2 MiB of input per member; the format allows more. Above 64 MiB of
    // output a member is not inflated into one buffer of its recorded size but streamed.
    let big = vec![b'x'; (64 << 20) + 3];
    let small = records(1000, 25);
    let stream = [handmade_member(&big, false), handmade_member(&small, true)].concat();
    let out = read(&stream).unwrap();
    assert_eq!(out.len(), big.len() + small.len());
    assert!(out[..big.len()] == big[..] && out[big.len()..] == small[..]);
}
