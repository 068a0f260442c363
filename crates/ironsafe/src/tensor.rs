//! Tensors as the format sees them: a dtype, a shape and little-endian bytes.

use std::borrow::Cow;

use crate::slice::{SliceIndex, SliceIter, SliceRanges};
use crate::{Dtype, Error, Result};

/// The number of bits `shape` elements of `dtype` take, or `None` on overflow.
#[must_use]
pub fn bit_len(dtype: Dtype, shape: &[usize]) -> Option<usize> {
    let elements = shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))?;
    dtype.bits_for(elements)
}

/// The number of bytes a named tensor takes, with the format's errors: an
/// overflowing shape, or a sub-byte tensor that does not fill whole bytes.
pub(crate) fn byte_len(tensor: &str, dtype: Dtype, shape: &[usize]) -> Result<usize> {
    let bits = bit_len(dtype, shape).ok_or_else(|| Error::SizeOverflow {
        tensor: tensor.to_owned(),
        shape: shape.to_vec(),
    })?;
    if bits % 8 != 0 {
        return Err(Error::MisalignedTensor {
            tensor: tensor.to_owned(),
            dtype,
            shape: shape.to_vec(),
            bits,
        });
    }
    Ok(bits / 8)
}

/// Anything the writer can serialize as a tensor.
pub trait View {
    /// The element type.
    fn dtype(&self) -> Dtype;
    /// The shape, outermost dimension first.
    fn shape(&self) -> &[usize];
    /// The bytes, little-endian and row-major. Borrowed when they already are.
    fn data(&self) -> Cow<'_, [u8]>;
    /// The length of [`View::data`], known without producing the bytes.
    fn data_len(&self) -> usize;
}

/// A tensor borrowed from a buffer: no bytes are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorView<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// A view of `data` as a tensor; fails unless `data` is exactly the size
    /// `dtype` and `shape` call for.
    pub fn new(dtype: Dtype, shape: &'a [usize], data: &'a [u8]) -> Result<Self> {
        let expected = bit_len(dtype, shape)
            .filter(|bits| bits % 8 == 0)
            .map(|bits| bits / 8);
        if expected != Some(data.len()) {
            return Err(Error::InvalidTensorView {
                dtype,
                shape: shape.to_vec(),
                expected,
                actual: data.len(),
            });
        }
        Ok(Self { dtype, shape, data })
    }

    /// A view whose size the caller has already validated.
    pub(crate) fn new_unchecked(dtype: Dtype, shape: &'a [usize], data: &'a [u8]) -> Self {
        debug_assert_eq!(bit_len(dtype, shape), Some(data.len() * 8));
        Self { dtype, shape, data }
    }

    /// The element type.
    #[must_use]
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape, outermost dimension first.
    #[must_use]
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// The bytes, little-endian and row-major.
    #[must_use]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The selected part of the tensor, as contiguous byte runs in row-major
    /// order; see [`SliceIndex`]. Nothing is copied.
    pub fn slice(&self, indices: &[SliceIndex]) -> Result<SliceIter<'a>> {
        let ranges = SliceRanges::new(self.dtype, self.shape, self.data.len() * 8, indices)?;
        Ok(SliceIter::new(self.data, ranges))
    }
}

impl View for TensorView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl<T: View + ?Sized> View for &T {
    fn dtype(&self) -> Dtype {
        (**self).dtype()
    }

    fn shape(&self) -> &[usize] {
        (**self).shape()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        (**self).data()
    }

    fn data_len(&self) -> usize {
        (**self).data_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_check_their_size() {
        let bytes = [0u8; 12];
        let view = TensorView::new(Dtype::F32, &[3], &bytes).unwrap();
        assert_eq!(
            (view.dtype(), view.shape(), view.data().len()),
            (Dtype::F32, &[3][..], 12)
        );

        let err = TensorView::new(Dtype::F32, &[2, 2], &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a F32 tensor of shape [2, 2] needs 16 bytes, got 12 bytes"
        );

        let err = TensorView::new(Dtype::F4, &[3], &bytes[..2]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTensorView { expected: None, .. }),
            "{err}"
        );

        let err = TensorView::new(Dtype::U64, &[usize::MAX, 2], &bytes).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTensorView { expected: None, .. }),
            "{err}"
        );
    }

    #[test]
    fn sub_byte_and_empty_shapes_have_sizes() {
        assert_eq!(byte_len("t", Dtype::F4, &[2, 3]).unwrap(), 3);
        assert_eq!(byte_len("t", Dtype::F6_E3M2, &[4]).unwrap(), 3);
        assert_eq!(byte_len("t", Dtype::F64, &[]).unwrap(), 8);
        assert_eq!(byte_len("t", Dtype::F64, &[0, 7]).unwrap(), 0);
        let err = byte_len("w", Dtype::F6_E2M3, &[3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor `w` (F6_E2M3, shape [3]) is 18 bits, not a whole number of bytes"
        );
        let err = byte_len("big", Dtype::U8, &[usize::MAX, 2]).unwrap_err();
        assert!(matches!(err, Error::SizeOverflow { ref tensor, .. } if tensor == "big"));
    }
}
