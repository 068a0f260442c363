//! Tensor memory given as a raw address and length: the one place this crate
//! uses `unsafe`.
//!
//! # Contract
//!
//! Writing: `TensorSpec(data_ptr=..., data_len=...)` is the reference's
//! interface for handing tensor memory to the writer without a copy. Whoever
//! builds the spec promises that `data_len` bytes at `data_ptr` are readable
//! and stay alive and unchanged until the `serialize`/`serialize_file` call
//! that takes the spec returns; the Python layer keeps the tensors referenced
//! for that long. The writer only reads the bytes.
//!
//! Reading: `Reader.read_into` fills memory the caller allocated (a fresh
//! torch tensor or numpy array), so that loaded bytes land in their final
//! place in one copy; `Reader.read_range_into` fills a pinned staging buffer
//! on the way to a GPU. The caller promises that each destination is writable
//! for its whole length, stays alive, and is touched by nobody else until
//! the call returns. That destinations do not overlap is checked here.

use std::borrow::Cow;
use std::ops::Range;

use ironsafe::{Dtype, View};

/// A tensor in memory this crate does not own; see the module contract.
#[derive(Debug, Clone)]
pub(crate) struct RawView {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    /// An address, kept as an integer: the bytes are only read through
    /// [`View::data`], under the contract.
    pub(crate) address: usize,
    pub(crate) len: usize,
}

impl View for RawView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if self.len == 0 {
            // A null or dangling address is fine for an empty tensor, but not
            // for `from_raw_parts`.
            return Cow::Borrowed(&[]);
        }
        // SAFETY: by the module contract, `len` bytes at `address` are
        // readable and unchanged for the duration of the write that calls
        // this; `u8` has no alignment requirement.
        let bytes = unsafe { std::slice::from_raw_parts(self.address as *const u8, self.len) };
        Cow::Borrowed(bytes)
    }

    fn data_len(&self) -> usize {
        self.len
    }
}

/// Memory this crate does not own, to be filled; see the module contract.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawDest {
    pub(crate) address: usize,
    pub(crate) len: usize,
}

impl RawDest {
    fn range(self) -> Range<usize> {
        self.address..self.address.saturating_add(self.len)
    }
}

/// The destinations as slices, once checked not to overlap one another (nor
/// to start at null or wrap around the address space).
pub(crate) fn dest_slices(dests: &mut [RawDest]) -> Result<Vec<&mut [u8]>, String> {
    let mut ranges: Vec<Range<usize>> = dests
        .iter()
        .map(|d| d.range())
        .filter(|r| !r.is_empty())
        .collect();
    ranges.sort_unstable_by_key(|r| r.start);
    if let Some(bad) = dests
        .iter()
        .find(|d| d.len > 0 && (d.address == 0 || d.address.checked_add(d.len).is_none()))
    {
        return Err(format!(
            "invalid destination address {:#x} for {} bytes",
            bad.address, bad.len
        ));
    }
    if ranges.windows(2).any(|pair| pair[0].end > pair[1].start) {
        return Err("destinations overlap".to_owned());
    }
    Ok(dests
        .iter()
        .map(|dest| {
            if dest.len == 0 {
                return &mut [][..];
            }
            // SAFETY: by the module contract the caller owns `len` writable
            // bytes at `address` for the duration of the call and nobody
            // else touches them; no two destinations overlap (checked above),
            // so the slices are disjoint.
            unsafe { std::slice::from_raw_parts_mut(dest.address as *mut u8, dest.len) }
        })
        .collect())
}
