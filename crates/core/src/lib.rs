//! s3db-backup codec core: streaming compression (gzip, deflate, brotli, zstd, none) and
//! segmented AES-256-GCM with HKDF-SHA256 keys, exactly as docs/FORMAT.md section 2 specifies.
//!
//! Pure Rust (no N-API); `crates/napi` is a thin shell over [`Encoder`], [`Decoder`] and the key
//! primitives. Invariants: a decoder releases a segment's plaintext only after its tag verified;
//! stream errors are sticky and carry the stable codes of FORMAT.md 2.5 ([`CodecError::code`]);
//! memory stays about `threads x (block + segment)` whatever the stream length, and, with a
//! decoder's `output_limit`, one call's output stays about that limit whatever the ratio.

#![deny(clippy::all)]

pub mod compress;
mod decoder;
mod encoder;
mod error;
pub mod format;
pub mod fuzzing;
mod keys;
mod open;
mod output;
mod pool;
mod seal;

pub use compress::levels;
pub use decoder::{decode_all, Decoder, DecoderOptions};
pub use encoder::{encode_all, resolve_threads, Encoder, EncoderOptions};
pub use error::{CodecError, Result};
pub use format::Compression;
pub use keys::{key_check, pbkdf2_hmac_sha256, unwrap_master_key, wrap_master_key};
