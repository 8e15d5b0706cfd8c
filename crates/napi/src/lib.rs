//! N-API shell over `s3db_backup_core` (a thin binding: option conversion, `AsyncTask`
//! wrappers, and ONE error chokepoint, `map_error`, that turns a core error into a JS Error whose
//! `code` is the core's "ERR_..." code and whose message is the core's message).
//!
//! Invariants: `write`/`finish` run off the JS thread; calls on one encoder/decoder must be
//! serialized by the caller (await each promise) -- a call while another is in flight throws
//! `ERR_CONCURRENT_CALL` at once instead of racing. `more()` answers for the last settled call
//! without taking the stream's lock (it never waits for a call in flight).
#![deny(clippy::all)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi::{Env, JsError, Task};
use napi_derive::napi;
use s3db_backup_core::{self as core, CodecError, Compression};

/// The one place where a core error becomes a JS error (`err.code`, `err.message`).
fn map_error(err: &CodecError) -> napi::Error<String> {
    napi::Error::new(err.code().to_string(), err.to_string())
}

fn option_error(option: &'static str, problem: String) -> napi::Error<String> {
    map_error(&CodecError::InvalidOption { option, problem })
}

/// Options of `NativeEncoder` / `NativeDecoder`.
#[napi(object)]
pub struct NativeCodecOptions {
    /// 'gzip' | 'deflate' | 'brotli' | 'zstd' | 'none'
    pub compression: String,
    /// Node-semantics level (zlib 1-9, brotli 0-11, zstd 1-22); default gzip/deflate 6, brotli 4, zstd 3.
    pub level: Option<i32>,
    /// 32-byte master key; absent = no encryption.
    pub key: Option<Buffer>,
    /// Plaintext bytes per encrypted segment (1024 to 16 MiB, default 1 MiB). Encoder only.
    pub segment_size: Option<u32>,
    /// Worker threads (default: every core).
    pub threads: Option<u32>,
    /// Decoder only: soft limit of one call's output in bytes (default: none). A call that
    /// reaches it sets `more()`: call `write` with no input (or `finish` again) before more input.
    pub output_limit: Option<f64>,
    /// TEST ONLY: fixed 32-byte salt (never in production: it reuses GCM nonces).
    pub test_salt: Option<Buffer>,
    /// TEST ONLY: fixed 7-byte nonce prefix.
    pub test_nonce_prefix: Option<Buffer>,
}

fn fixed<const N: usize>(
    b: &Option<Buffer>,
    option: &'static str,
) -> std::result::Result<Option<[u8; N]>, napi::Error<String>> {
    match b {
        None => Ok(None),
        Some(b) => <[u8; N]>::try_from(&b[..])
            .map(Some)
            .map_err(|_| option_error(option, format!("must be {N} bytes, got {}", b.len()))),
    }
}

fn compression(o: &NativeCodecOptions) -> std::result::Result<Compression, napi::Error<String>> {
    Compression::parse(&o.compression).map_err(|e| map_error(&e))
}

enum Stream {
    Encoder(core::Encoder),
    Decoder(core::Decoder),
}

impl Stream {
    /// `Some(chunks)` = one write of their concatenation; `None` = finish. The output comes as
    /// pieces in order (an encoder's sealed segments and a decoder's gzip members, unjoined).
    fn run(&mut self, chunks: Option<&[Buffer]>) -> core::Result<Vec<Vec<u8>>> {
        let slices = chunks.map(|cs| cs.iter().map(|c| &c[..]).collect::<Vec<&[u8]>>());
        match (self, slices.as_deref()) {
            (Stream::Encoder(e), Some(c)) => e.write_pieces(c),
            (Stream::Encoder(e), None) => e.finish_pieces(),
            (Stream::Decoder(d), Some(c)) => d.write_pieces(c),
            (Stream::Decoder(d), None) => d.finish_pieces(),
        }
    }

    /// An encoder's output per call is bounded by its input: only a decoder has `more`.
    fn more(&self) -> bool {
        match self {
            Stream::Encoder(_) => false,
            Stream::Decoder(d) => d.more(),
        }
    }
}

/// State shared by a JS object and its in-flight task. `stream` is `None` once closed: its
/// buffers and worker threads are freed then, not when the JS object is garbage-collected.
struct Shared {
    stream: Mutex<Option<Stream>>,
    busy: AtomicBool,
    /// `more()` of the stream after the last call (set before the call's promise settles).
    more: AtomicBool,
    /// `close()` was called: no call starts any more; the stream is dropped at once, or by the
    /// call in flight when it ends (`StreamTask::finally`, on the JS thread like `close()`).
    closed: AtomicBool,
}

impl Shared {
    fn new(stream: Stream) -> Arc<Shared> {
        Arc::new(Shared {
            stream: Mutex::new(Some(stream)),
            busy: AtomicBool::new(false),
            more: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// Drops the stream (joining its worker threads after their current job) unless a call is in
    /// flight, whose `finally` does it. Only ever called on the JS thread, as `task()` is.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if !self.busy.load(Ordering::Acquire) {
            self.drop_stream();
        }
    }

    fn drop_stream(&self) {
        let taken = match self.stream.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(taken);
        self.more.store(false, Ordering::Release);
    }
}

impl Shared {
    fn task(
        self: &Arc<Self>,
        what: &str,
        chunks: Option<Vec<Buffer>>,
    ) -> std::result::Result<AsyncTask<StreamTask>, napi::Error<String>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(napi::Error::new(
                "ERR_STREAM_CLOSED".to_string(),
                format!("{what}() was called after close(): the stream's state is freed"),
            ));
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(napi::Error::new(
                "ERR_CONCURRENT_CALL".to_string(),
                format!("{what}() was called while another write()/finish() on the same object is still running: await each call before the next"),
            ));
        }
        Ok(AsyncTask::new(StreamTask {
            shared: Arc::clone(self),
            chunks,
            failure: None,
        }))
    }
}

pub struct StreamTask {
    shared: Arc<Shared>,
    /// Input of `write`/`writeChunks`; `None` for `finish`. Read in place (no copy) on the
    /// worker thread; the JS side must not modify these buffers until the promise settles.
    chunks: Option<Vec<Buffer>>,
    failure: Option<CodecError>,
}

impl Task for StreamTask {
    type Output = Vec<Vec<u8>>;
    type JsValue = Vec<Buffer>;

    fn compute(&mut self) -> napi::Result<Vec<Vec<u8>>> {
        let mut stream = self.shared.stream.lock().map_err(|_| {
            napi::Error::new(
                Status::GenericFailure,
                "codec state poisoned by an earlier panic",
            )
        })?;
        let Some(stream) = stream.as_mut() else {
            // (task() refuses a closed stream, and close() never drops one while a call is in flight)
            return Err(napi::Error::new(
                Status::GenericFailure,
                "codec stream already closed",
            ));
        };
        let r = stream.run(self.chunks.as_deref());
        self.shared.more.store(stream.more(), Ordering::Release);
        r.map_err(|e| {
            let generic = napi::Error::new(Status::GenericFailure, e.to_string());
            self.failure = Some(e);
            generic
        })
    }

    fn resolve(&mut self, _env: Env, output: Vec<Vec<u8>>) -> napi::Result<Vec<Buffer>> {
        Ok(output.into_iter().map(Buffer::from).collect())
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Vec<Buffer>> {
        match self.failure.take() {
            Some(e) => Err(napi::Error::from(
                JsError::from(map_error(&e)).into_unknown(env),
            )),
            None => Err(err),
        }
    }

    fn finally(self, _env: Env) -> napi::Result<()> {
        self.shared.busy.store(false, Ordering::Release);
        if self.shared.closed.load(Ordering::Acquire) {
            self.shared.drop_stream();
        }
        Ok(())
    }
}

/// `write`, `writeChunks` and `finish` of a stream class (the same three calls on an encoder and a
/// decoder: each starts one `StreamTask` on the class's `Shared` state).
macro_rules! stream_methods {
    ($class:ident, $write_doc:literal, $chunks_doc:literal, $finish_doc:literal) => {
        #[napi]
        impl $class {
            #[doc = $write_doc]
            #[napi(ts_return_type = "Promise<Buffer[]>")]
            pub fn write(
                &self,
                chunk: Buffer,
            ) -> std::result::Result<AsyncTask<StreamTask>, napi::Error<String>> {
                self.shared.task("write", Some(vec![chunk]))
            }

            #[doc = $chunks_doc]
            #[napi(ts_return_type = "Promise<Buffer[]>")]
            pub fn write_chunks(
                &self,
                chunks: Vec<Buffer>,
            ) -> std::result::Result<AsyncTask<StreamTask>, napi::Error<String>> {
                self.shared.task("writeChunks", Some(chunks))
            }

            #[doc = $finish_doc]
            #[napi(ts_return_type = "Promise<Buffer[]>")]
            pub fn finish(
                &self,
            ) -> std::result::Result<AsyncTask<StreamTask>, napi::Error<String>> {
                self.shared.task("finish", None)
            }

            /// Whether the last call stopped at `outputLimit` with output still to come: call
            /// `write` with no input (or `finish` again) before giving more input.
            #[napi]
            pub fn more(&self) -> bool {
                self.shared.more.load(Ordering::Acquire)
            }

            /// Frees the stream's buffers and worker threads now (once the call in flight, if
            /// any, has ended) rather than when this object is garbage-collected; later calls
            /// fail with ERR_STREAM_CLOSED. Idempotent.
            #[napi]
            pub fn close(&self) {
                self.shared.close();
            }
        }
    };
}

/// Streaming encoder: compression, then (with `key`) segmented AES-256-GCM (docs/FORMAT.md 2).
#[napi]
pub struct NativeEncoder {
    shared: Arc<Shared>,
}

#[napi]
impl NativeEncoder {
    #[napi(constructor)]
    pub fn new(options: NativeCodecOptions) -> std::result::Result<Self, napi::Error<String>> {
        let mut o = core::EncoderOptions::new(compression(&options)?);
        o.level = options.level;
        o.key = fixed::<32>(&options.key, "key")?;
        if let Some(s) = options.segment_size {
            o.segment_size = s;
        }
        o.threads = options.threads.unwrap_or(0) as usize;
        o.test_salt = fixed::<32>(&options.test_salt, "testSalt")?;
        o.test_nonce_prefix = fixed::<7>(&options.test_nonce_prefix, "testNoncePrefix")?;
        let e = core::Encoder::new(o).map_err(|e| map_error(&e))?;
        Ok(NativeEncoder {
            shared: Shared::new(Stream::Encoder(e)),
        })
    }
}

stream_methods!(
    NativeEncoder,
    "Encodes `chunk`; resolves to the stream bytes produced so far, as pieces in order (may be none).",
    "Encodes `chunks` in order as one write of their concatenation (saves joining them in JS).",
    "Ends the stream; resolves to the remaining bytes."
);

/// Streaming decoder; releases plaintext only after its segment authenticated. With `key`, the
/// header's compression must equal `compression` (ERR_COMPRESSION_MISMATCH otherwise).
#[napi]
pub struct NativeDecoder {
    shared: Arc<Shared>,
}

#[napi]
impl NativeDecoder {
    #[napi(constructor)]
    pub fn new(options: NativeCodecOptions) -> std::result::Result<Self, napi::Error<String>> {
        let o = core::DecoderOptions {
            compression: Some(compression(&options)?),
            key: fixed::<32>(&options.key, "key")?,
            threads: options.threads.unwrap_or(0) as usize,
            output_limit: match options.output_limit {
                None => 0,
                // A JS number: refused unless whole and in range (NaN fails every comparison).
                Some(n) if n >= 1.0 && n <= u32::MAX as f64 && n.fract() == 0.0 => n as usize,
                Some(n) => {
                    return Err(option_error(
                        "outputLimit",
                        format!(
                            "must be a whole number of bytes from 1 to {}, got {n}",
                            u32::MAX
                        ),
                    ))
                }
            },
        };
        let d = core::Decoder::new(o).map_err(|e| map_error(&e))?;
        Ok(NativeDecoder {
            shared: Shared::new(Stream::Decoder(d)),
        })
    }
}

stream_methods!(
    NativeDecoder,
    "Decodes `chunk`; resolves to the verified plaintext produced so far, as pieces in order (may be none).",
    "Decodes `chunks` in order as one write of their concatenation (saves joining them in JS).",
    "Ends the stream; rejects unless it ended exactly with its final segment / end marker."
);

pub struct Pbkdf2Task {
    passphrase: Buffer,
    salt: Buffer,
    iterations: u32,
    length: u32,
    failure: Option<CodecError>,
}

impl Task for Pbkdf2Task {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        core::pbkdf2_hmac_sha256(
            &self.passphrase,
            &self.salt,
            self.iterations,
            self.length as usize,
        )
        .map_err(|e| {
            let generic = napi::Error::new(Status::GenericFailure, e.to_string());
            self.failure = Some(e);
            generic
        })
    }

    fn resolve(&mut self, _env: Env, output: Vec<u8>) -> napi::Result<Buffer> {
        Ok(output.into())
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Buffer> {
        match self.failure.take() {
            Some(e) => Err(napi::Error::from(
                JsError::from(map_error(&e)).into_unknown(env),
            )),
            None => Err(err),
        }
    }
}

/// PBKDF2-HMAC-SHA256 off the JS thread.
#[napi(ts_return_type = "Promise<Buffer>")]
pub fn pbkdf2_sha256(
    passphrase: Buffer,
    salt: Buffer,
    iterations: u32,
    length: u32,
) -> AsyncTask<Pbkdf2Task> {
    AsyncTask::new(Pbkdf2Task {
        passphrase,
        salt,
        iterations,
        length,
        failure: None,
    })
}

/// `HMAC-SHA256(master, "s3db-backup/v1/key-check")[0..16]`.
#[napi]
pub fn key_check(master: Buffer) -> std::result::Result<Buffer, napi::Error<String>> {
    let m = fixed::<32>(&Some(master), "master")?.expect("napi: internal error: Some in, Some out");
    Ok(core::key_check(&m).to_vec().into())
}

/// AES-256-GCM(kek, nonce, aad "s3db-backup/v1/key-wrap", master) -> ciphertext || tag (48 bytes).
#[napi]
pub fn wrap_master_key(
    kek: Buffer,
    nonce: Buffer,
    master: Buffer,
) -> std::result::Result<Buffer, napi::Error<String>> {
    core::wrap_master_key(&kek, &nonce, &master)
        .map(Buffer::from)
        .map_err(|e| map_error(&e))
}

/// Inverse of `wrapMasterKey`; a failing tag throws ERR_WRONG_PASSPHRASE.
#[napi]
pub fn unwrap_master_key(
    kek: Buffer,
    nonce: Buffer,
    wrapped: Buffer,
) -> std::result::Result<Buffer, napi::Error<String>> {
    core::unwrap_master_key(&kek, &nonce, &wrapped)
        .map(|m| Buffer::from(m.to_vec()))
        .map_err(|e| map_error(&e))
}

/// Version of the native core.
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Revision of this binding's JS-facing API, checked by the loader (src/codec/native-binding.ts)
/// so that an addon built from older sources is refused with "rebuild it" instead of failing
/// mid-stream. 2: `write`/`writeChunks`/`finish` resolve to `Buffer[]` (pieces in order).
/// 3: decoders take `outputLimit`, and streams have `more()`. 4: streams have `close()`.
#[napi]
pub fn native_api() -> u32 {
    4
}
