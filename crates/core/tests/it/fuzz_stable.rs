//! The fuzz bodies of `fuzz/` on stable Rust: a few thousand pseudo-random inputs each, derived
//! from valid streams (so the decoders get past the header) and from raw noise. Any panic fails.
use crate::common::*;
use s3db_backup_core::fuzzing::{decode_arbitrary, tamper};
use s3db_backup_core::*;

#[test]
fn decoder_never_panics_on_noise() {
    let mut r = Rng(0x5eed);
    for i in 0..3000 {
        let n = r.below(if i % 10 == 0 { 20_000 } else { 600 }) as usize;
        decode_arbitrary(&r.bytes(n));
    }
}

#[test]
fn decoder_never_panics_on_mutated_valid_streams() {
    let mut r = Rng(0xfeed);
    for round in 0..300 {
        let c = ALL[round % 5];
        let encrypted = round % 2 == 0;
        let plain = records(r.below(6000) as usize, round as u64);
        let mut o = enc_opts(c, encrypted.then_some([0x42; 32]), 1024, 1);
        o.threads = 1;
        let mut s = encode_all(o, &plain).unwrap();
        for _ in 0..1 + r.below(4) {
            if s.is_empty() {
                break;
            }
            let at = r.below(s.len() as u64) as usize;
            match r.below(3) {
                0 => s[at] ^= 1 << r.below(8),
                1 => s.truncate(at),
                _ => s.insert(at, r.next() as u8),
            }
        }
        let mut input = vec![
            (c.byte()) | if encrypted { 0x80 } else { 0 },
            r.next() as u8,
        ];
        input.extend_from_slice(&s);
        decode_arbitrary(&input);
    }
}

#[test]
fn tampered_encrypted_streams_never_decode() {
    let mut r = Rng(0xbad);
    for _ in 0..1500 {
        let mut input = r.bytes(9);
        input.extend_from_slice(&records(r.below(5000) as usize, r.next()));
        tamper(&input);
    }
}
