//! The core's integration tests, in one test binary (one LTO link under `--release`).
mod common;
mod fuzz_stable;
mod gzip_members;
mod interop;
mod output_limit;
mod roundtrip;
mod tamper;
mod vectors;
