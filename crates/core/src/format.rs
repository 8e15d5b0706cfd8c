//! Constants and small value types of the codec stream format (docs/FORMAT.md section 2).
//! All integers are big-endian. Nothing here does I/O or crypto.

use crate::error::{CodecError, Result};

pub const MAGIC: &[u8; 8] = b"S3DBBKUP";
pub const VERSION: u8 = 1;
/// AES-256-GCM segments, HKDF-SHA256 keys.
pub const ALGORITHM: u8 = 1;
pub const HEADER_LEN: usize = 87;
/// Bytes of the header covered by header_mac.
pub const HEADER_MAC_OFFSET: usize = 71;
pub const FRAME_LEN: usize = 4;
pub const TAG_LEN: usize = 16;
pub const SALT_LEN: usize = 32;
pub const NONCE_PREFIX_LEN: usize = 7;
pub const KEY_LEN: usize = 32;
pub const MIN_SEGMENT_SIZE: u32 = 1024;
pub const MAX_SEGMENT_SIZE: u32 = 16 * 1024 * 1024;
pub const DEFAULT_SEGMENT_SIZE: u32 = 1024 * 1024;
/// Bit 31 of a frame: this is the final segment.
pub const LAST_FLAG: u32 = 0x8000_0000;
/// Highest segment counter a stream may use.
pub const MAX_SEGMENT_INDEX: u64 = u32::MAX as u64;

/// The compression of a stream; the discriminant is the header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Deflate = 2,
    Brotli = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_byte(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Deflate),
            3 => Some(Compression::Brotli),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Parses the option value used by the JS API (`'gzip' | 'deflate' | 'brotli' | 'zstd' | 'none'`).
    pub fn parse(name: &str) -> Result<Compression> {
        match name {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "deflate" => Ok(Compression::Deflate),
            "brotli" => Ok(Compression::Brotli),
            "zstd" => Ok(Compression::Zstd),
            other => Err(CodecError::option(
                "compression",
                format!(
                    "unknown compression {other:?}; use one of gzip, deflate, brotli, zstd, none"
                ),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
            Compression::Brotli => "brotli",
            Compression::Zstd => "zstd",
        }
    }

    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// The 4-byte frame of a segment: bit 31 = final, bits 0..30 = plaintext length.
pub fn frame(len: u32, last: bool) -> [u8; 4] {
    debug_assert!(len & LAST_FLAG == 0);
    (len | if last { LAST_FLAG } else { 0 }).to_be_bytes()
}

/// Splits a frame into (len, last).
pub fn parse_frame(bytes: [u8; 4]) -> (u32, bool) {
    let v = u32::from_be_bytes(bytes);
    (v & !LAST_FLAG, v & LAST_FLAG != 0)
}

/// nonce_i = nonce_prefix (7) || u32(i) || last (1 byte).
pub fn nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = last as u8;
    n
}

/// Checks a segment size against FORMAT.md 2.3.
pub fn segment_size_ok(size: u32) -> bool {
    (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_sets_bit_31_only_on_last() {
        assert_eq!(frame(1024, false), [0, 0, 4, 0]);
        assert_eq!(frame(5, true), [0x80, 0, 0, 5]);
        assert_eq!(parse_frame([0x80, 0, 0, 5]), (5, true));
        assert_eq!(parse_frame([0, 0x10, 0, 0]), (1 << 20, false));
    }

    #[test]
    fn nonce_layout_is_prefix_counter_flag() {
        let n = nonce(&[1, 2, 3, 4, 5, 6, 7], 0x0a0b0c0d, true);
        assert_eq!(n, [1, 2, 3, 4, 5, 6, 7, 0x0a, 0x0b, 0x0c, 0x0d, 1]);
    }

    #[test]
    fn compression_names_and_bytes() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Deflate,
            Compression::Brotli,
            Compression::Zstd,
        ] {
            assert_eq!(Compression::parse(c.name()).unwrap(), c);
            assert_eq!(Compression::from_byte(c.byte()), Some(c));
        }
        assert_eq!(Compression::from_byte(5), None);
        assert_eq!(
            Compression::parse("lz4").unwrap_err().code(),
            "ERR_INVALID_OPTION"
        );
    }
}
