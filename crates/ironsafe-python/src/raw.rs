//! Tensor bytes given as a raw address and length: the one place this crate
//! uses `unsafe`.
//!
//! # Contract
//!
//! `TensorSpec(data_ptr=..., data_len=...)` is the reference's interface for
//! handing tensor memory to the writer without a copy. Whoever builds the
//! spec promises that `data_len` bytes at `data_ptr` are readable and stay
//! alive and unchanged until the `serialize`/`serialize_file` call that takes
//! the spec returns; the Python layer keeps the tensors referenced for that
//! long. The writer only reads the bytes.

use std::borrow::Cow;

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
