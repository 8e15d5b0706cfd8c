//! Test vectors of FORMAT.md 2.7 in `__test__/fixtures/vectors/` (shared with the JS twin).
//! This test rebuilds every vector and requires the committed files to equal it byte for byte,
//! and decodes each stream. Regenerate after an intended format change (a new version!) with
//! `S3DB_WRITE_VECTORS=1 cargo test -p s3db_backup_core --release --test it vectors`.
use std::path::PathBuf;

use crate::common::*;
use s3db_backup_core::*;
use serde_json::{json, Value};

const MASTER: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const SALT: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const PREFIX: &str = "f0f1f2f3f4f5f6";
const LENGTHS: [usize; 5] = [0, 1, 1024, 1025, 3000];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn b64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

/// byte i of a vector plaintext = (i * 31 + 7) mod 256
fn plain(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

fn opts() -> EncoderOptions {
    let mut o = EncoderOptions::new(Compression::None);
    o.key = Some(arr(MASTER));
    o.segment_size = 1024;
    o.threads = 2;
    o.test_salt = Some(arr(SALT));
    o.test_nonce_prefix = Some(arr(PREFIX));
    o
}

fn stream_vectors() -> Value {
    let cases: Vec<Value> = LENGTHS
        .iter()
        .map(|&n| {
            let p = plain(n);
            let s = encode(opts(), &p, &[7, 1000]).unwrap();
            json!({ "name": format!("len-{n}"), "plaintextLength": n, "plaintext": hex(&p), "stream": hex(&s) })
        })
        .collect();
    json!({
        "description": "FORMAT.md 2.2-2.4: exact encrypted streams (compression none) for a fixed master key, salt and nonce prefix. Both implementations must produce them byte for byte and decode them.",
        "formatVersion": 1,
        "compression": "none",
        "segmentSize": 1024,
        "masterKey": MASTER,
        "salt": SALT,
        "noncePrefix": PREFIX,
        "plaintextRule": "byte i = (i * 31 + 7) mod 256",
        "keyCheck": hex(&key_check(&arr(MASTER))),
        "cases": cases,
    })
}

fn error_vectors() -> Value {
    let s = encode(opts(), &plain(3000), &[3000]).unwrap();
    let (h, seg) = (87usize, 1044usize);
    let flip = |at: usize| {
        let mut t = s.clone();
        t[at] ^= 1;
        t
    };
    let set = |at: usize, bytes: &[u8]| {
        let mut t = s.clone();
        t[at..at + bytes.len()].copy_from_slice(bytes);
        t
    };
    let mut swapped = s[..h].to_vec();
    swapped.extend_from_slice(&s[h + seg..h + 2 * seg]);
    swapped.extend_from_slice(&s[h..h + seg]);
    swapped.extend_from_slice(&s[h + 2 * seg..]);
    let mut duplicated = s[..h + seg].to_vec();
    duplicated.extend_from_slice(&s[h..]);
    let mut trailing = s.clone();
    trailing.push(0);
    let other_key = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("truncated-header", s[..50].to_vec(), "none", MASTER),
        ("bad-magic", flip(0), "none", MASTER),
        ("unsupported-version", set(8, &[2]), "none", MASTER),
        ("compression-mismatch", s.clone(), "gzip", MASTER),
        (
            "bad-segment-size",
            set(12, &1000u32.to_be_bytes()),
            "none",
            MASTER,
        ),
        ("wrong-key", s.clone(), "none", other_key),
        ("header-tampered-salt", flip(40), "none", MASTER),
        ("truncated-after-header", s[..h].to_vec(), "none", MASTER),
        (
            "truncated-after-segment-0",
            s[..h + seg].to_vec(),
            "none",
            MASTER,
        ),
        (
            "truncated-inside-segment-1",
            s[..h + seg + 10].to_vec(),
            "none",
            MASTER,
        ),
        (
            "bad-segment-length",
            set(h, &1000u32.to_be_bytes()),
            "none",
            MASTER,
        ),
        ("segment-auth", flip(h + seg + 50), "none", MASTER),
        ("segments-swapped", swapped, "none", MASTER),
        ("segment-duplicated", duplicated, "none", MASTER),
        ("trailing-data", trailing, "none", MASTER),
    ];
    let cases: Vec<Value> = cases
        .into_iter()
        .map(|(name, stream, expect, key)| {
            let opts = DecoderOptions {
                compression: Some(Compression::parse(expect).unwrap()),
                key: Some(arr(key)),
                threads: 2,
                output_limit: 0,
            };
            let e = decode(opts, &stream, &[stream.len().max(1)]).unwrap_err();
            json!({ "name": name, "key": key, "expectedCompression": expect, "stream": hex(&stream),
                    "code": e.code(), "message": e.to_string() })
        })
        .collect();
    json!({
        "description": "FORMAT.md 2.5: tampered variants of the len-3000 stream of stream-none-1024.json; each must fail with `code`. `message` is the Rust core's exact message (it starts with the text of FORMAT.md 2.5).",
        "formatVersion": 1,
        "segmentSize": 1024,
        "cases": cases,
    })
}

fn keyfile_vector() -> Value {
    let passphrase = "correct horse battery staple";
    let salt = unhex("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
    let nonce = unhex("0c0d0e0f1011121314151617");
    let iterations = 100_000;
    let kek = pbkdf2_hmac_sha256(passphrase.as_bytes(), &salt, iterations, 32).unwrap();
    let wrapped = wrap_master_key(&kek, &nonce, &unhex(MASTER)).unwrap();
    assert_eq!(
        unwrap_master_key(&kek, &nonce, &wrapped).unwrap().to_vec(),
        unhex(MASTER)
    );
    json!({
        "description": "FORMAT.md 2.6: a key file for a fixed passphrase, PBKDF2 salt, wrap nonce and master key.",
        "passphrase": passphrase,
        "masterKey": MASTER,
        "kek": hex(&kek),
        "keyFile": {
            "format": "s3db-backup-key",
            "version": 1,
            "kdf": { "name": "pbkdf2-hmac-sha256", "iterations": iterations, "salt": b64(&salt) },
            "wrap": { "name": "aes-256-gcm", "nonce": b64(&nonce), "ciphertext": b64(&wrapped) },
            "keyCheck": hex(&key_check(&arr(MASTER))),
            "createdAt": "2026-01-01T00:00:00.000Z"
        }
    })
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/vectors")
}

#[test]
fn committed_vectors_equal_what_the_core_produces() {
    let files = [
        ("stream-none-1024.json", stream_vectors()),
        ("stream-errors.json", error_vectors()),
        ("keyfile.json", keyfile_vector()),
    ];
    for (name, v) in files {
        let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let path = dir().join(name);
        if std::env::var_os("S3DB_WRITE_VECTORS").is_some() {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (generate with S3DB_WRITE_VECTORS=1)",
                path.display()
            )
        });
        assert!(
            committed == text,
            "{name} differs from what the core produces now: the stream format changed"
        );
    }
}

#[test]
fn vector_streams_decode_and_their_layout_is_as_specified() {
    let v = stream_vectors();
    for c in v["cases"].as_array().unwrap() {
        let s = unhex(c["stream"].as_str().unwrap());
        let p = unhex(c["plaintext"].as_str().unwrap());
        assert_eq!(&s[..8], b"S3DBBKUP");
        assert_eq!(&s[8..16], &[1, 1, 0, 0, 0, 0, 4, 0]);
        assert_eq!(hex(&s[32..64]), SALT);
        assert_eq!(hex(&s[64..71]), PREFIX);
        let dec = DecoderOptions {
            compression: Some(Compression::None),
            key: Some(arr(MASTER)),
            threads: 1,
            output_limit: 0,
        };
        assert_eq!(decode(dec, &s, &[1]).unwrap(), p);
    }
    let k = keyfile_vector();
    let kf = &k["keyFile"];
    assert_eq!(kf["wrap"]["ciphertext"].as_str().unwrap().len(), 64); // 48 bytes in B64
    assert_eq!(b64(b"hello"), "aGVsbG8=");
}
