//! A valid encrypted stream, mutated as the input says: must never panic, and a changed stream
//! must never decode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    s3db_backup_core::fuzzing::tamper(data);
});
