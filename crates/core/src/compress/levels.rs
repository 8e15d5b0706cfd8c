//! Maps Node-semantics compression levels to this core's backends BY RATIO (docs/FORMAT.md 2.1).
//!
//! Node's gzip/deflate is Chromium's zlib. Our deflate (zlib wrapper) is zlib-rs (a zlib-ng port)
//! whose levels are other algorithms, so its levels map to tuned zlib-rs settings that reproduce
//! zlib's (see `ZLIB_MAP`); our gzip members are compressed whole by libdeflate (`GZIP_MAP`).
//! Brotli is a port of the same C encoder (`BROTLI_MAP`), zstd is the same C library.
//! Measured with `examples/calibrate.rs` against Node 20 on JSON-lines records.

use crate::error::{CodecError, Result};
use crate::format::Compression;

pub const DEFAULT_ZLIB_LEVEL: i32 = 6;
pub const DEFAULT_BROTLI_QUALITY: i32 = 4;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// zlib-rs settings for one Node zlib level: a base level choosing the algorithm
/// (`deflate_fast` = 2, `deflate_slow` = 7, stored = 0) and `deflateTune(good, lazy, nice, chain)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZlibParams {
    pub base_level: i32,
    pub tune: Option<(i32, i32, i32, i32)>,
}

/// Node zlib level (index) -> zlib-rs settings. Node (Chromium zlib) runs `deflate_fast` for
/// levels 1-3 and `deflate_slow` for 4-9 with zlib's configuration table; zlib-rs's own levels are
/// other algorithms (its level 1 is `deflate_quick`, ratio 2.84 vs Node's 3.75; its level 6 is
/// `deflate_medium`, output 1.7 % larger than Node's level 6 on the benchmark corpus). So each
/// Node level uses zlib-rs's algorithm of the same family, tuned to zlib's parameters.
/// Ratios on 16 MiB of `benches/corpus.js` (Node `deflateRawSync` / this map, single stream):
///
/// | Node level | Node | ours |
/// |---|---|---|
/// | 1 | 3.7513 | 3.7640 |
/// | 2 | 3.9299 | 3.9365 |
/// | 3 | 4.0627 | 4.0644 |
/// | 4 | 4.1046 | 4.1057 |
/// | 5 | 4.4462 | 4.4476 |
/// | 6 | 4.5380 | 4.4956 (64 MiB, parallel; 0.95 % larger output, ~15 % faster: see below) |
/// | 7 | 4.6502 | 4.6506 |
/// | 8 | 4.7336 | 4.7336 |
/// | 9 | 4.7336 | 4.7336 (level 8's parameters: zlib-rs with zlib's level-9 table gives 3.73) |
///
/// The parallel encoder's 1 MiB blocks (primed with 32 KiB) cost about 0.1 % on top.
///
/// Level 6 (the default, the level backups run at) trades ratio for speed inside FORMAT.md's
/// 1.5 % budget: zlib's own level-6 tuning (8, 16, 128, 128) ran at 104-114 MB/s on 2 threads,
/// (8, 32, 128, 32) at 113-131 MB/s (64 MiB of the corpus, `calibrate FILE 2 grid`, alternating
/// runs). Its ratio stays between Node's levels 5 (4.4462) and 7, so levels remain ordered.
const ZLIB_MAP: [ZlibParams; 10] = [
    ZlibParams {
        base_level: 0,
        tune: None,
    },
    fast(4, 4, 8, 4),
    fast(4, 5, 16, 8),
    fast(4, 6, 32, 32),
    slow(4, 4, 16, 16),
    slow(8, 16, 32, 32),
    slow(8, 32, 128, 32),
    slow(8, 32, 128, 256),
    slow(32, 128, 258, 1024),
    slow(32, 128, 258, 1024),
];

const fn fast(good: i32, lazy: i32, nice: i32, chain: i32) -> ZlibParams {
    ZlibParams {
        base_level: 2,
        tune: Some((good, lazy, nice, chain)),
    }
}

const fn slow(good: i32, lazy: i32, nice: i32, chain: i32) -> ZlibParams {
    ZlibParams {
        base_level: 7,
        tune: Some((good, lazy, nice, chain)),
    }
}

/// Node brotli quality (index) -> Rust brotli quality. Same encoder design (a port of C brotli);
/// like Node's streaming encoder, blocks get no size hint. Ratios on 32 MiB of the corpus, Node
/// `createBrotliCompress` fed 64 KiB chunks / this encoder (2 threads, 1 MiB blocks): q0 3.265 /
/// 3.994 (Rust q0 is 3 % worse than C q0 one-shot, so q0 maps to q1), q1 3.766/3.994, q2
/// 4.156/4.164, q3 4.267/4.273, q4 4.436/4.457, q5 4.804/4.841, q6 4.959/4.996 (1 MiB
/// dictionaries). With `brotli::dict_size` (64 KiB to q6, q2 unprimed), 32 MiB: q2 4.176, q3
/// 4.298, q4 4.485, q5 4.851, q6 4.969; q7-q9 (1 MiB) 5.143/5.215/5.260 vs Node 5.150/5.246/5.307.
/// Higher qualities map to themselves.
///
/// As for gzip, a Node quality is a schedule: block `i` is compressed at `schedule[i % len]`.
/// Quality 4 (the default) alternates Rust q3 and q4: q4 alone compresses 1 % better than Node's
/// q4 but runs ~1.2x slower than q3, whose output is 3.1 % larger than Node's q4 (outside the
/// 1.5 % budget); the two alternated land at 4.387 (32 MiB), 1.12 % larger than Node's 4.436,
/// ~1.1x the speed of q4 alone (A/B runs, 2 threads), and still between Node's q3 and q5.
/// Blocks are independent brotli streams stitched together, so a schedule changes nothing for
/// readers.
const BROTLI_MAP: [&[u32]; 12] = [
    &[1],
    &[1],
    &[2],
    &[3],
    &[3, 4],
    &[5],
    &[6],
    &[7],
    &[8],
    &[9],
    &[10],
    &[11],
];

/// Node gzip level (index) -> the libdeflate levels of gzip members (2 MiB of input compressed
/// whole, docs/FORMAT.md 2.1), as a schedule: member `i` is deflated at `schedule[i % len]`.
/// Each Node level gets the fastest schedule whose output is at most 1.5 % larger than Node's,
/// except level 9, which gets a ratio above Node's (who asks for 9 wants the smallest).
///
/// Level 6 (the default, the level backups run at) falls between libdeflate's levels: its level 6
/// is 1.3 % SMALLER than Node's and its level 5 1.99 % larger (outside the budget), so three
/// members in four go at 5 and one at 6: 1.17 % larger than Node's, ~1.2x the speed of level 6
/// alone. Members are independent, so a schedule changes nothing for readers. Its ratio stays
/// between Node's levels 5 and 7, so levels remain ordered.
///
/// Ratios on 32 MiB of `benches/corpus.js` (`examples/calibrate.rs`), the level-6 row on 64 MiB
/// (hence 4.5981 there for libdeflate 6, 4.5992 in row 7); Node `gzipSync` / libdeflate
/// (libdeflater 1.26) on 2 MiB members. Percentages are of output size. Single-core MB/s in one run:
/// libdeflate 5: 113-121, the level-6 schedule: 109, libdeflate 6: 90-95, Node 6: 48-60.
///
/// | Node level | Node | ours (libdeflate schedule) |
/// |---|---|---|
/// | 1 | 3.7522 | 3.8627 (1) |
/// | 2 | 3.9309 | 3.9053 (2) |
/// | 3 | 4.0633 | 4.0312 (3) |
/// | 4 | 4.1063 | 4.2069 (4) |
/// | 5 | 4.4475 | 4.4512 (5) |
/// | 6 | 4.5388 | 4.4863 (5, 5, 5, 6); libdeflate 6 alone: 4.5981, 5 alone: 4.4503 |
/// | 7 | 4.6520 | 4.5992 (6) |
/// | 8 | 4.7359 | 4.7103 (7) |
/// | 9 | 4.7359 | 4.8664 (8) |
const GZIP_MAP: [&[i32]; 10] = [
    &[0],
    &[1],
    &[2],
    &[3],
    &[4],
    &[5],
    &[5, 5, 5, 6],
    &[6],
    &[7],
    &[8],
];

/// The libdeflate level schedule for a Node-semantics gzip `level` (0-9, -1 or `None` = 6).
pub fn gzip_levels(level: Option<i32>) -> Result<&'static [i32]> {
    Ok(GZIP_MAP[node_level_index(Compression::Gzip, level)?])
}

/// The zlib-rs settings for a Node-semantics deflate `level` (0-9, -1 or `None` = 6).
pub fn zlib_params(compression: Compression, level: Option<i32>) -> Result<ZlibParams> {
    Ok(ZLIB_MAP[node_level_index(compression, level)?])
}

/// A Node zlib level checked and resolved (0-9; -1 or `None` = 6).
fn node_level_index(compression: Compression, level: Option<i32>) -> Result<usize> {
    let l = match level {
        None | Some(-1) => DEFAULT_ZLIB_LEVEL,
        Some(l @ 0..=9) => l,
        Some(l) => {
            return Err(CodecError::option(
                "level",
                format!(
                    "{l} is not a {} level: use 1-9 (0 = store, -1 = default 6)",
                    compression.name()
                ),
            ))
        }
    };
    Ok(l as usize)
}

/// The Node-semantics level itself (for the gzip XFL / zlib FLEVEL header bits).
pub fn node_zlib_level(level: Option<i32>) -> i32 {
    match level {
        None | Some(-1) => DEFAULT_ZLIB_LEVEL,
        Some(l) => l,
    }
}

/// The Rust brotli quality schedule for a Node-semantics `level` (0-11, `None` = 4).
pub fn brotli_qualities(level: Option<i32>) -> Result<&'static [u32]> {
    let q = match level {
        None => DEFAULT_BROTLI_QUALITY,
        Some(q @ 0..=11) => q,
        Some(q) => {
            return Err(CodecError::option(
                "level",
                format!("{q} is not a brotli quality: use 0-11"),
            ))
        }
    };
    Ok(BROTLI_MAP[q as usize])
}

/// The zstd level (1-22, `None` = 3).
pub fn zstd_level(level: Option<i32>) -> Result<i32> {
    match level {
        None => Ok(DEFAULT_ZSTD_LEVEL),
        Some(l @ 1..=22) => Ok(l),
        Some(l) => Err(CodecError::option(
            "level",
            format!("{l} is not a zstd level: use 1-22"),
        )),
    }
}

/// `none` takes no level.
pub fn check_none(level: Option<i32>) -> Result<()> {
    match level {
        None => Ok(()),
        Some(l) => Err(CodecError::option(
            "level",
            format!("compression \"none\" takes no level, got {l}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        assert_eq!(
            zlib_params(Compression::Deflate, None).unwrap(),
            ZLIB_MAP[6]
        );
        assert_eq!(gzip_levels(None).unwrap(), GZIP_MAP[6]);
        assert_eq!(gzip_levels(Some(-1)).unwrap(), GZIP_MAP[6]);
        assert_eq!(
            gzip_levels(Some(10)).unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
        assert_eq!(brotli_qualities(None).unwrap(), BROTLI_MAP[4]);
        assert_eq!(zstd_level(None).unwrap(), 3);
        assert_eq!(
            zlib_params(Compression::Gzip, Some(10)).unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
        assert_eq!(
            brotli_qualities(Some(12)).unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
        assert_eq!(
            zstd_level(Some(0)).unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
        assert_eq!(
            check_none(Some(1)).unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
        // zlib-rs level 1 (deflate_quick) and its medium levels are never used.
        assert!(ZLIB_MAP[1..]
            .iter()
            .all(|p| p.base_level == 2 || p.base_level == 7));
    }
}
