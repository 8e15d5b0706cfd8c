//! Maps Node-semantics compression levels to this core's backends BY RATIO (docs/FORMAT.md 2.1).
//!
//! Node's gzip/deflate is Chromium's zlib; ours is zlib-rs (a zlib-ng port) whose levels are other
//! algorithms (zlib-rs level 1 is `deflate_quick`, far worse than zlib level 1). The tables pick,
//! for each Node level, the fastest zlib-rs level whose output on JSON-lines records is at most
//! ~1 % larger than Node's at that level (measured with `examples/calibrate.rs`, see the numbers
//! in the comments). Brotli is a port of the same C encoder, zstd is the same C library.

use crate::error::{CodecError, Result};
use crate::format::Compression;

pub const DEFAULT_ZLIB_LEVEL: i32 = 6;
pub const DEFAULT_BROTLI_QUALITY: i32 = 4;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Node zlib level (index) -> zlib-rs level. Index 0 is "stored" in both.
/// Ratios on 16 MiB of JSON-lines records (Node 20 `gzipSync` vs our pigz-style gzip):
///
/// | Node level | Node ratio | zlib-rs level | our ratio |
/// |---|---|---|---|
/// | 1 | 3.916 | 2 | 3.948 |
/// | 2 | 4.093 | 3 | 4.211 |
/// | 3 | 4.309 | 4 | 4.519 |
/// | 4 | 4.370 | 4 | 4.519 |
/// | 5 | 4.681 | 5 | 4.696 |
/// | 6 | 4.846 | 6 | 4.818 (0.6 % larger output) |
/// | 7 | 4.918 | 7 | 4.917 |
/// | 8, 9 | 4.950 | 8 | 4.949 (zlib-rs 9 gives 4.758: worse) |
///
/// zlib-rs level 1 (`deflate_quick`, ratio 3.01) is never used.
const ZLIB_MAP: [u32; 10] = [0, 2, 3, 4, 4, 5, 6, 7, 8, 8];

/// Node brotli quality (index) -> Rust brotli quality. Same encoder design (a port of C brotli);
/// blocks get a 16 MiB size hint like Node's one-shot call. Measured: Node q0 3.658 vs Rust q0
/// 3.539 (3 % larger), so q0 maps to q1 (4.145); q1 4.159/4.145, q2 4.210/4.205, q3 4.227/4.228,
/// q4 4.814/4.835, q5 4.957/4.959, q6 5.189/5.186. Higher qualities map to themselves.
const BROTLI_MAP: [u32; 12] = [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// The zlib-rs level for a Node-semantics gzip/deflate `level` (0-9, -1 or `None` = 6).
pub fn zlib_level(compression: Compression, level: Option<i32>) -> Result<u32> {
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
    Ok(ZLIB_MAP[l as usize])
}

/// The Node-semantics level itself (for the gzip XFL / zlib FLEVEL header bits).
pub fn node_zlib_level(level: Option<i32>) -> i32 {
    match level {
        None | Some(-1) => DEFAULT_ZLIB_LEVEL,
        Some(l) => l,
    }
}

/// The brotli quality for a Node-semantics `level` (0-11, `None` = 4).
pub fn brotli_quality(level: Option<i32>) -> Result<u32> {
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
        assert_eq!(zlib_level(Compression::Gzip, None).unwrap(), ZLIB_MAP[6]);
        assert_eq!(brotli_quality(None).unwrap(), BROTLI_MAP[4]);
        assert_eq!(zstd_level(None).unwrap(), 3);
        assert_eq!(
            zlib_level(Compression::Gzip, Some(10)).unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
        assert_eq!(
            brotli_quality(Some(12)).unwrap_err().code(),
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
        // zlib-rs level 1 (deflate_quick) is never used for a Node level >= 1.
        assert!(ZLIB_MAP[1..].iter().all(|&l| l >= 2));
    }
}
