//! Arbitrary bytes into the decoder (plain or encrypted, every codec): must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    s3db_backup_core::fuzzing::decode_arbitrary(data);
});
