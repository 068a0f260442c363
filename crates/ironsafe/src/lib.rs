//! The safetensors tensor file format: strict parsing, zero-copy reading,
//! slicing and byte-exact writing.
//!
//! A file is an 8-byte little-endian header length N, N bytes of JSON that
//! name every tensor's dtype, shape and byte range, then the raw
//! little-endian tensor bytes:
//!
//! ```text
//! [N: u64 LE][{"__metadata__":{..},"name":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},..}][data]
//! ```
//!
//! Reading validates every rule of the format before handing out a view, and
//! rejects duplicate keys that the reference silently drops:
//!
//! ```
//! use ironsafe::{serialize, Dtype, SafeTensors, TensorView, WriteOptions};
//!
//! let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let view = TensorView::new(Dtype::F32, &[2, 2], &data)?;
//! let bytes = serialize([("weight", view)], None, &WriteOptions::default())?;
//!
//! let file = SafeTensors::deserialize(&bytes[..])?;
//! let weight = file.tensor("weight")?;
//! assert_eq!((weight.dtype(), weight.shape()), (Dtype::F32, &[2, 2][..]));
//! let column: Vec<u8> = weight.slice(&[ironsafe::SliceIndex::All, 1.into()])?.to_vec();
//! assert_eq!(column, [2.0f32, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
//! # Ok::<(), ironsafe::Error>(())
//! ```

mod atomic;
mod direct;
#[cfg(target_os = "linux")]
mod direct_write;
mod dtype;
mod engine;
mod error;
mod fresh;
mod header;
mod pool;
mod reader;
mod slice;
mod source;
mod stamp;
#[allow(unsafe_code)]
mod sys;
mod tensor;
mod writer;

pub use atomic::{TEMP_MARKER, write as write_atomic};
pub use direct::{
    DIRECT_ALIGN, DirectJob, direct_shift, open_direct, read_direct, read_direct_many,
};
pub use dtype::{Dtype, UnknownDtype};
pub use engine::{
    ReadError, ReadJob, default_threads, direct_threads, fill_page_cache, mostly_cached,
    read_parallel,
};
pub use error::{Error, Result};
pub use fresh::{GatherJob, read_fresh};
pub use header::{Header, MAX_HEADER_SIZE, METADATA_KEY, Metadata, ReadOptions, TensorInfo};
pub use reader::SafeTensors;
pub use slice::{SliceIndex, SliceIter, SliceRanges};
pub use source::{ByteSource, Part};
pub use stamp::FileStamp;
pub use sys::Mmap;
pub use tensor::{TensorView, View, bit_len};
pub use writer::{Layout, WriteOptions, serialize, serialize_to_file};
