//! Reading tensors out of a buffer that holds a whole file: bytes in memory,
//! or a memory map of a file on disk.

use std::fs::File;
use std::path::Path;

use crate::error::io_error;
use crate::header::{Header, Metadata, ReadOptions, TensorInfo};
use crate::sys::Mmap;
use crate::tensor::TensorView;
use crate::{Error, Result};

/// A validated safetensors file over the buffer `B` that holds it.
///
/// `B` is anything that derefs to the file's bytes: `&[u8]`, `Vec<u8>`, or
/// an [`Mmap`] (see [`SafeTensors::open`]). Views borrow from the buffer; no
/// tensor bytes are copied.
#[derive(Debug)]
pub struct SafeTensors<B> {
    header: Header,
    buffer: B,
}

impl<B: AsRef<[u8]>> SafeTensors<B> {
    /// Parses and validates the file held in `buffer`.
    pub fn deserialize(buffer: B) -> Result<Self> {
        Self::deserialize_with(buffer, &ReadOptions::default())
    }

    /// Parses and validates the file held in `buffer`, with options.
    pub fn deserialize_with(buffer: B, options: &ReadOptions) -> Result<Self> {
        let header = Header::parse(buffer.as_ref(), options)?;
        Ok(Self { header, buffer })
    }

    /// The parsed header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The metadata, if the file has any.
    #[must_use]
    pub fn metadata(&self) -> Option<&Metadata> {
        self.header.metadata()
    }

    /// The number of tensors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.header.len()
    }

    /// Whether the file holds no tensor.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
    }

    /// The tensor names, in name order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.header.tensors_by_name().map(|info| info.name.as_str())
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        self.header
            .get(name)
            .map(|info| self.view(info))
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()))
    }

    /// Every tensor with its name, in file order (ascending offsets).
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = (&str, TensorView<'_>)> + '_ {
        self.header
            .tensors()
            .iter()
            .map(|info| (info.name.as_str(), self.view(info)))
    }

    /// Every tensor with its name, in name order.
    pub fn tensors_by_name(&self) -> impl ExactSizeIterator<Item = (&str, TensorView<'_>)> + '_ {
        self.header
            .tensors_by_name()
            .map(|info| (info.name.as_str(), self.view(info)))
    }

    /// The buffer, handed back.
    pub fn into_inner(self) -> B {
        self.buffer
    }

    fn view<'s>(&'s self, info: &'s TensorInfo) -> TensorView<'s> {
        let start = self.header.data_start();
        let (begin, end) = info.data_offsets;
        // The header was validated against this buffer's length.
        let data = &self.buffer.as_ref()[start + begin..start + end];
        TensorView::new_unchecked(info.dtype, &info.shape, data)
    }
}

impl SafeTensors<Mmap> {
    /// Maps the file at `path` (private, read-only) and validates it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &ReadOptions::default())
    }

    /// Maps the file at `path` and validates it, with options.
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_error("cannot open", path))?;
        let len = file
            .metadata()
            .map_err(io_error("cannot stat", path))?
            .len();
        // Too short to hold a header: say so without mapping (an empty file
        // cannot be mapped everywhere).
        if len < 8 {
            return Err(Error::HeaderTooSmall { len }.in_file(path));
        }
        let map = Mmap::map(&file).map_err(io_error("cannot map", path))?;
        Self::deserialize_with(map, options).map_err(|err| err.in_file(path))
    }
}
