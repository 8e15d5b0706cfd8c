//! The one error type of the codec core. Every variant has a stable `code()` ("ERR_...") and a
//! Display message that starts with the text of docs/FORMAT.md 2.5 (the JS twin gives the same).
//! Invariant: messages never contain key material, salts or plaintext.

use std::fmt;

/// A codec failure. Stream errors are sticky: once a reader or writer returned one, every further
/// call returns a clone of the same error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer than 87 bytes in all.
    TruncatedHeader,
    /// The first 8 bytes are not `S3DBBKUP`.
    NotEncryptedStream,
    /// Unknown version, algorithm, reserved byte or compression byte.
    UnsupportedVersion {
        version: u8,
        algorithm: u8,
        reserved: u8,
        compression: u8,
    },
    /// The header names another compression than the caller expects.
    CompressionMismatch { found: String, expected: String },
    /// segment_size out of 1024 ..= 16 MiB.
    BadHeader { segment_size: u32 },
    /// key_check differs: the stream was encrypted with another master key.
    WrongKey,
    /// header_mac differs.
    HeaderTampered,
    /// The stream ends right after the header or a non-final segment. `after` is the index of
    /// the last complete segment, `None` when there is none.
    Truncated { after: Option<u64> },
    /// The stream ends inside segment `segment`'s frame, ciphertext or tag.
    TruncatedSegment { segment: u64 },
    /// Segment `segment` has a length that breaks the rules of FORMAT.md 2.2.
    BadSegmentLength { segment: u64, len: u32 },
    /// Segment `segment` authenticates as segment `actual`.
    SegmentOrder { segment: u64, actual: u64 },
    /// Segment `segment` fails authentication.
    SegmentAuth { segment: u64 },
    /// Bytes after the final segment.
    TrailingData,
    /// Decompression failed (corrupt unencrypted stream, or a writer bug).
    Decompress { codec: &'static str, detail: String },
    /// A caller passed an invalid option (names the option and what is accepted).
    InvalidOption {
        option: &'static str,
        problem: String,
    },
    /// A wrapped master key did not authenticate under the key-encryption key.
    WrongPassphrase,
    /// write() or finish() after finish() or after an error-free end.
    Finished,
    /// A broken internal invariant (a worker thread died). Never caused by input.
    Internal(String),
}

impl CodecError {
    /// The stable error code, as in FORMAT.md 2.5 ("ERR_...").
    pub fn code(&self) -> &'static str {
        match self {
            CodecError::TruncatedHeader => "ERR_TRUNCATED_HEADER",
            CodecError::NotEncryptedStream => "ERR_NOT_ENCRYPTED_STREAM",
            CodecError::UnsupportedVersion { .. } => "ERR_UNSUPPORTED_VERSION",
            CodecError::CompressionMismatch { .. } => "ERR_COMPRESSION_MISMATCH",
            CodecError::BadHeader { .. } => "ERR_BAD_HEADER",
            CodecError::WrongKey => "ERR_WRONG_KEY",
            CodecError::HeaderTampered => "ERR_HEADER_TAMPERED",
            CodecError::Truncated { .. } => "ERR_TRUNCATED",
            CodecError::TruncatedSegment { .. } => "ERR_TRUNCATED_SEGMENT",
            CodecError::BadSegmentLength { .. } => "ERR_BAD_SEGMENT_LENGTH",
            CodecError::SegmentOrder { .. } => "ERR_SEGMENT_ORDER",
            CodecError::SegmentAuth { .. } => "ERR_SEGMENT_AUTH",
            CodecError::TrailingData => "ERR_TRAILING_DATA",
            CodecError::Decompress { .. } => "ERR_DECOMPRESS",
            CodecError::InvalidOption { .. } => "ERR_INVALID_OPTION",
            CodecError::WrongPassphrase => "ERR_WRONG_PASSPHRASE",
            CodecError::Finished => "ERR_STREAM_FINISHED",
            CodecError::Internal(_) => "ERR_INTERNAL",
        }
    }

    pub(crate) fn decompress(codec: &'static str, detail: impl Into<String>) -> CodecError {
        CodecError::Decompress {
            codec,
            detail: detail.into(),
        }
    }

    pub(crate) fn option(option: &'static str, problem: impl Into<String>) -> CodecError {
        CodecError::InvalidOption {
            option,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::TruncatedHeader => {
                write!(f, "stream is truncated: it ends inside the 87-byte header")
            }
            CodecError::NotEncryptedStream => {
                write!(f, "not an s3db-backup encrypted stream (bad magic)")
            }
            CodecError::UnsupportedVersion { version, algorithm, reserved, compression } => write!(
                f,
                "unsupported stream version/algorithm: version {version}, algorithm {algorithm}, reserved {reserved}, compression {compression} (this reader knows version 1, algorithm 1, reserved 0, compression 0-4)"
            ),
            CodecError::CompressionMismatch { found, expected } => write!(
                f,
                "stream was written with compression {found}, but the reader expects {expected}"
            ),
            CodecError::BadHeader { segment_size } => write!(
                f,
                "invalid segment size {segment_size} in the stream header (allowed: 1024 to 16777216)"
            ),
            CodecError::WrongKey => {
                write!(f, "wrong key: this stream was encrypted with another key")
            }
            CodecError::HeaderTampered => write!(
                f,
                "header authentication failed: the stream header was modified or corrupted"
            ),
            CodecError::Truncated { after: Some(n) } => write!(
                f,
                "stream is truncated: it ends after segment {n} without its final segment"
            ),
            CodecError::Truncated { after: None } => write!(
                f,
                "stream is truncated: it ends after the header without its final segment"
            ),
            CodecError::TruncatedSegment { segment } => {
                write!(f, "stream is truncated inside segment {segment}")
            }
            CodecError::BadSegmentLength { segment, len } => write!(
                f,
                "segment {segment} has an invalid length ({len} bytes)"
            ),
            CodecError::SegmentOrder { segment, actual } => write!(
                f,
                "segment {segment} is out of order: it is segment {actual} (segments reordered or duplicated)"
            ),
            CodecError::SegmentAuth { segment } => write!(
                f,
                "segment {segment} failed authentication: the data is corrupted or was tampered with"
            ),
            CodecError::TrailingData => write!(f, "unexpected data after the final segment"),
            CodecError::Decompress { codec, detail } => write!(f, "{codec} data is corrupt: {detail}"),
            CodecError::InvalidOption { option, problem } => {
                write!(f, "invalid codec option \"{option}\": {problem}")
            }
            CodecError::WrongPassphrase => write!(
                f,
                "wrong passphrase: the key file could not be unlocked (authentication of the wrapped key failed)"
            ),
            CodecError::Finished => write!(
                f,
                "the stream is already finished (or failed): create a new encoder/decoder"
            ),
            CodecError::Internal(what) => write!(f, "s3db-backup codec internal error: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

pub type Result<T> = std::result::Result<T, CodecError>;
