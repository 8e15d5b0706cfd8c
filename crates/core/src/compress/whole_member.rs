//! Inflates ONE complete gzip member held in memory, exactly, with libdeflate.
//!
//! "Exactly" is the invariant the parallel reader relies on: a member is accepted only if the
//! bytes given are one gzip member to their last byte (header, deflate data, CRC-32 and ISIZE all
//! checked by libdeflate) and it fills the output buffer of its recorded size (ISIZE). So a member
//! inflated here gives the same bytes a serial gzip reader gives for the same span of the stream,
//! never fewer: libdeflate's plain entry points stop at the end of the deflate data and ignore
//! what follows, which would let a wrong length field swallow the next member unseen. The safe
//! wrapper (libdeflater) does not return the consumed length, so this calls libdeflate's `_ex`
//! entry point through `libdeflate-sys` (the same library build libdeflater links).

use libdeflate_sys as ld;

/// Why a member was not accepted (the caller then reads the span serially).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a valid gzip member (bad header, deflate data, CRC-32 or ISIZE).
    BadData,
    /// Valid, but it does not end at the end of the bytes given.
    TrailingBytes,
    /// It inflates to another size than the buffer (its ISIZE).
    WrongSize,
}

/// A libdeflate decompressor (~32 KiB of tables), one per worker thread, reused.
pub(crate) struct WholeMemberInflater {
    d: std::ptr::NonNull<ld::libdeflate_decompressor>,
}

// SAFETY: the decompressor is plain heap state owned by this value and used by one thread at a
// time (`&mut self`); libdeflate keeps no thread-local or global state.
unsafe impl Send for WholeMemberInflater {}

impl WholeMemberInflater {
    pub(crate) fn new() -> WholeMemberInflater {
        // SAFETY: no preconditions; a null return means out of memory.
        let d = unsafe { ld::libdeflate_alloc_decompressor() };
        WholeMemberInflater {
            d: std::ptr::NonNull::new(d)
                .expect("libdeflate: out of memory allocating a decompressor"),
        }
    }

    /// Inflates `member` (one whole gzip member) into a new buffer of exactly `size` bytes (its
    /// ISIZE). The buffer is written by libdeflate only, never zeroed first: its length is set
    /// to `size` only after libdeflate reported filling it exactly.
    pub(crate) fn inflate(&mut self, member: &[u8], size: usize) -> Result<Vec<u8>, Refused> {
        let mut out: Vec<u8> = Vec::with_capacity(size);
        let mut consumed = 0usize;
        // SAFETY: `self.d` is a live decompressor (freed only in Drop); `member` is valid for
        // reads of its length and `out`'s allocation for writes of `size` bytes for the call;
        // libdeflate writes at most `size` bytes and the one `usize` behind `consumed`. A null
        // `actual_out_nbytes_ret` makes it fail unless the output fills all `size` bytes.
        let rc = unsafe {
            ld::libdeflate_gzip_decompress_ex(
                self.d.as_ptr(),
                member.as_ptr().cast(),
                member.len(),
                out.as_mut_ptr().cast(),
                size,
                &mut consumed,
                std::ptr::null_mut(),
            )
        };
        match rc {
            ld::libdeflate_result_LIBDEFLATE_SUCCESS if consumed == member.len() => {
                // SAFETY: success with a null `actual_out_nbytes_ret` means all `size` bytes
                // were written (libdeflate returns SHORT_OUTPUT otherwise).
                unsafe { out.set_len(size) };
                Ok(out)
            }
            ld::libdeflate_result_LIBDEFLATE_SUCCESS => Err(Refused::TrailingBytes),
            ld::libdeflate_result_LIBDEFLATE_SHORT_OUTPUT
            | ld::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Err(Refused::WrongSize),
            _ => Err(Refused::BadData),
        }
    }
}

impl Drop for WholeMemberInflater {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed exactly once.
        unsafe { ld::libdeflate_free_decompressor(self.d.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_whole_member_inflates_and_anything_else_is_refused_with_its_reason() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let member = gz(&data);
        let mut w = WholeMemberInflater::new();
        let n = data.len();
        assert_eq!(w.inflate(&member, n), Ok(data.clone()));
        // The member followed by the start of another: the bytes given are not ONE member.
        let two = [member.clone(), member.clone()].concat();
        assert_eq!(w.inflate(&two, n), Err(Refused::TrailingBytes));
        // Cut short (libdeflate may see the cut as bad data or as too little output).
        assert!(w.inflate(&member[..member.len() - 1], n).is_err());
        assert!(w.inflate(&member[..member.len() / 2], n).is_err());
        let mut flipped = member.clone();
        flipped[member.len() - 6] ^= 1; // CRC-32
        assert_eq!(w.inflate(&flipped, n), Err(Refused::BadData));
        assert_eq!(w.inflate(&member, n - 1), Err(Refused::WrongSize));
        assert_eq!(w.inflate(&member, n + 1), Err(Refused::WrongSize));
    }
}
