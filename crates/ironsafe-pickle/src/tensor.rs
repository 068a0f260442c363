//! Tensors of a checkpoint: strided views of storages, checked against the
//! storage's bytes, and written out row-major.

use std::borrow::Cow;
use std::ops::Range;

use ironsafe::{Dtype, View};

use crate::error::{Error, Result};
use crate::value::TensorDesc;

/// The most bytes a view may have beyond its storage's size, by repeating
/// elements.
const MAX_REPEATED: usize = 1 << 30;

/// A tensor of a checkpoint: a strided view of one storage's bytes. Its
/// offset and strides are checked to stay inside the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    name: String,
    dtype: Dtype,
    element_size: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    /// In elements.
    offset: usize,
    storage_key: String,
    /// The storage's bytes in the checkpoint file.
    storage: Range<usize>,
    /// The number of bytes of the tensor, row-major.
    byte_len: usize,
}

impl Tensor {
    /// Checks the view `desc` of the storage at `storage` (a byte range of
    /// the file) and names it.
    pub(crate) fn new(name: String, desc: &TensorDesc, storage: Range<usize>) -> Result<Tensor> {
        let storage_key = desc.storage.as_str();
        let invalid = |problem: String| Error::InvalidTensor {
            tensor: name.clone(),
            problem,
        };
        let dtype = desc.dtype.safetensors.ok_or_else(|| {
            invalid(format!(
                "dtype torch.{} has no safetensors equivalent",
                desc.dtype.name
            ))
        })?;
        let element_size = desc.dtype.size;
        let to_usize = |values: &[u64]| -> Option<Vec<usize>> {
            values.iter().map(|&v| usize::try_from(v).ok()).collect()
        };
        let too_large = || invalid("the size, stride or offset overflows".into());
        let shape = to_usize(&desc.shape).ok_or_else(too_large)?;
        let strides = to_usize(&desc.strides).ok_or_else(too_large)?;
        let offset = usize::try_from(desc.offset).map_err(|_| too_large())?;
        let byte_len = shape
            .iter()
            .try_fold(element_size, |len, &dim| len.checked_mul(dim))
            .ok_or_else(too_large)?;
        // Only repeated elements (a zero or overlapping stride, as
        // `expand` makes) give a tensor more bytes than its storage; a few
        // bytes of file must not become terabytes of output.
        if byte_len > storage.len().max(MAX_REPEATED) {
            return Err(invalid(format!(
                "the view repeats the {} bytes of storage `{storage_key}` into {byte_len} \
                 bytes, more than the {MAX_REPEATED} bytes allowed",
                storage.len()
            )));
        }
        if byte_len > 0 {
            // The last element the view reaches, and the end of its bytes.
            let last = shape
                .iter()
                .zip(&strides)
                .try_fold(offset, |last, (&dim, &stride)| {
                    last.checked_add((dim - 1).checked_mul(stride)?)
                });
            let end = last
                .and_then(|last| last.checked_add(1)?.checked_mul(element_size))
                .ok_or_else(too_large)?;
            if end > storage.len() {
                return Err(invalid(format!(
                    "the view (offset {offset}, shape {shape:?}, stride {strides:?}) reaches byte \
                     {end} of storage `{storage_key}`, which has {} bytes",
                    storage.len()
                )));
            }
        }
        Ok(Tensor {
            name,
            dtype,
            element_size,
            shape,
            strides,
            offset,
            storage_key: storage_key.to_owned(),
            storage,
            byte_len,
        })
    }

    /// The flattened name, e.g. `encoder.layer.0.weight`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The strides, in elements, as torch saved them.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The offset into the storage, in elements.
    pub fn storage_offset(&self) -> usize {
        self.offset
    }

    /// The key of the storage the tensor views; tensors with the same key
    /// share memory in torch.
    pub fn storage_key(&self) -> &str {
        &self.storage_key
    }

    /// The storage's length in bytes.
    pub fn storage_len(&self) -> usize {
        self.storage.len()
    }

    /// The tensor's length in bytes once written row-major.
    pub fn byte_len(&self) -> usize {
        self.byte_len
    }

    /// Whether the bytes are already row-major and in one piece (torch's
    /// `is_contiguous`: dimensions of size 1 have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&dim, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return self.byte_len == 0;
            }
            expected *= dim;
        }
        true
    }

    /// Whether the tensor covers its whole storage from its first byte (the
    /// reference converter's `_is_complete`).
    pub fn is_complete(&self) -> bool {
        self.offset == 0 && self.byte_len == self.storage.len()
    }

    /// What makes two tensors the same view: storage, dtype, shape,
    /// strides and offset.
    pub(crate) fn view_key(&self) -> (&str, Dtype, &[usize], &[usize], usize) {
        (
            &self.storage_key,
            self.dtype,
            &self.shape,
            &self.strides,
            self.offset,
        )
    }

    /// The tensor's bytes within `file`, the checkpoint it was read from.
    pub(crate) fn data<'a>(&'a self, file: &'a [u8]) -> TensorData<'a> {
        TensorData {
            tensor: self,
            storage: &file[self.storage.clone()],
        }
    }
}

/// A tensor with its storage's bytes: what the writer takes. Contiguous
/// tensors are borrowed in place; strided ones are gathered when written.
#[derive(Debug, Clone, Copy)]
pub struct TensorData<'a> {
    tensor: &'a Tensor,
    storage: &'a [u8],
}

impl TensorData<'_> {
    /// Copies the elements in row-major order, one run of contiguous
    /// trailing dimensions at a time.
    fn gather(&self) -> Vec<u8> {
        let Tensor {
            shape,
            strides,
            offset,
            element_size,
            byte_len,
            ..
        } = self.tensor;
        // The trailing dimensions that are contiguous form one run.
        let mut run = 1;
        let mut outer = shape.len();
        while outer > 0 && (shape[outer - 1] == 1 || strides[outer - 1] == run) {
            run *= shape[outer - 1];
            outer -= 1;
        }
        let run = run * element_size;
        let (shape, strides) = (&shape[..outer], &strides[..outer]);
        let mut out = Vec::with_capacity(*byte_len);
        let mut index = vec![0; outer];
        // `Tensor::new` checked that every element is inside the storage.
        let mut element = *offset;
        loop {
            let start = element * element_size;
            out.extend_from_slice(&self.storage[start..start + run]);
            // Advance the outer index like an odometer, innermost first.
            let mut dim = outer;
            loop {
                if dim == 0 {
                    return out;
                }
                dim -= 1;
                index[dim] += 1;
                element += strides[dim];
                if index[dim] < shape[dim] {
                    break;
                }
                element -= strides[dim] * shape[dim];
                index[dim] = 0;
            }
        }
    }
}

impl View for TensorData<'_> {
    fn dtype(&self) -> Dtype {
        self.tensor.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.tensor.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let tensor = self.tensor;
        if tensor.byte_len == 0 {
            Cow::Borrowed(&[])
        } else if tensor.is_contiguous() {
            let start = tensor.offset * tensor.element_size;
            Cow::Borrowed(&self.storage[start..start + tensor.byte_len])
        } else {
            Cow::Owned(self.gather())
        }
    }

    fn data_len(&self) -> usize {
        self.tensor.byte_len
    }
}
