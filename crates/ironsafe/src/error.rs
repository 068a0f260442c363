//! The one error type of the format crate.

use std::path::PathBuf;

use crate::Dtype;

/// Everything that can go wrong reading, slicing or writing a safetensors file.
///
/// Each variant carries what is needed to find the problem: the tensor name,
/// the offsets or sizes involved, the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer than the 8 bytes that hold the header length.
    #[error("the file is {len} bytes long, too short for the 8-byte header length")]
    HeaderTooSmall {
        /// The length of the whole input.
        len: u64,
    },

    /// The header length is above the reader's limit.
    #[error("the header is {len} bytes, over the limit of {limit} bytes")]
    HeaderTooLarge {
        /// The header length the file claims (or the writer would produce).
        len: u64,
        /// The configured limit.
        limit: usize,
    },

    /// The header length points past the end of the input.
    #[error(
        "the header claims {len} bytes but only {available} bytes follow the 8-byte header length"
    )]
    InvalidHeaderLength {
        /// The header length the file claims.
        len: u64,
        /// The bytes present after the length prefix.
        available: u64,
    },

    /// The header is not UTF-8.
    #[error("the header is not valid UTF-8 (invalid byte at header offset {valid_up_to})")]
    HeaderNotUtf8 {
        /// The length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },

    /// The header is not a JSON object, or is malformed JSON.
    #[error("the header is not a valid JSON object: {0}")]
    HeaderJson(#[source] serde_json::Error),

    /// A tensor's entry is not exactly `dtype`, `shape` and `data_offsets`.
    #[error("the header entry of tensor `{tensor}` is invalid: {source}")]
    InvalidEntry {
        /// The tensor whose entry is malformed.
        tensor: String,
        /// What serde found wrong with it.
        #[source]
        source: serde_json::Error,
    },

    /// `__metadata__` is not an object of string to string.
    #[error("`__metadata__` must map strings to strings: {0}")]
    InvalidMetadata(#[source] serde_json::Error),

    /// A key appears twice in a header: a tensor name, or `__metadata__`
    /// (also raised for a name given twice to the writer).
    #[error("key `{0}` appears more than once in the header")]
    DuplicateKey(String),

    /// A metadata key appears twice in a header.
    #[error("metadata key `{0}` appears more than once")]
    DuplicateMetadataKey(String),

    /// A tensor to write is named `__metadata__`, which the header reserves.
    #[error("`__metadata__` is reserved for the metadata and cannot name a tensor")]
    ReservedName,

    /// The dtype name is not one of the format's.
    #[error("tensor `{tensor}` has unknown dtype `{dtype}`")]
    UnknownDtype {
        /// The tensor.
        tensor: String,
        /// The dtype as written in the header.
        dtype: String,
    },

    /// The element count or byte size of a shape does not fit in `usize`.
    #[error("the size of tensor `{tensor}` with shape {shape:?} overflows")]
    SizeOverflow {
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// A sub-byte tensor does not end on a byte boundary.
    #[error(
        "tensor `{tensor}` ({dtype}, shape {shape:?}) is {bits} bits, not a whole number of bytes"
    )]
    MisalignedTensor {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its shape.
        shape: Vec<usize>,
        /// Its size in bits.
        bits: usize,
    },

    /// A tensor's data does not start where the previous one ended (a hole or
    /// an overlap), or its offsets are reversed.
    #[error(
        "tensor `{tensor}` has data_offsets [{begin}, {end}] but must start at {expected_begin} and end at or after its start"
    )]
    InvalidOffsets {
        /// The tensor.
        tensor: String,
        /// Its first byte, relative to the data section.
        begin: usize,
        /// One past its last byte.
        end: usize,
        /// Where the previous tensor (in offset order) ended.
        expected_begin: usize,
    },

    /// A tensor's byte range does not match its dtype and shape.
    #[error("tensor `{tensor}` ({dtype}, shape {shape:?}) needs {expected} bytes but has {actual}")]
    TensorSizeMismatch {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its shape.
        shape: Vec<usize>,
        /// The bytes dtype and shape call for.
        expected: usize,
        /// The bytes its offsets span, or its data holds.
        actual: usize,
    },

    /// The data section is longer (trailing bytes) or shorter (truncation)
    /// than the tensors say.
    #[error("the tensors cover {expected} bytes of data but the data section is {actual} bytes")]
    DataLengthMismatch {
        /// The end of the last tensor.
        expected: u64,
        /// The bytes after the header.
        actual: u64,
    },

    /// No tensor of that name.
    #[error("no tensor named `{0}`")]
    TensorNotFound(String),

    /// Bytes handed to a view do not match its dtype and shape.
    #[error("a {dtype} tensor of shape {shape:?} needs {}, got {actual} bytes", needed(*expected))]
    InvalidTensorView {
        /// The dtype.
        dtype: Dtype,
        /// The shape.
        shape: Vec<usize>,
        /// The bytes dtype and shape call for (`None` on overflow).
        expected: Option<usize>,
        /// The bytes given.
        actual: usize,
    },

    /// A slice has more indices than the tensor has dimensions.
    #[error("too many indices for a tensor of rank {rank}: {given}")]
    SliceRank {
        /// Indices given.
        given: usize,
        /// The tensor's rank.
        rank: usize,
    },

    /// A slice index or bound is outside its dimension.
    #[error("index {index} is out of bounds for dimension {dim} of size {size}")]
    SliceOutOfRange {
        /// The dimension.
        dim: usize,
        /// The offending index or bound.
        index: usize,
        /// The dimension's size.
        size: usize,
    },

    /// A slice step of zero.
    #[error("slice step must be at least 1 (dimension {dim})")]
    ZeroStep {
        /// The dimension.
        dim: usize,
    },

    /// A slice of a sub-byte tensor that does not select whole bytes.
    #[error("this slice of a {dtype} tensor of shape {shape:?} does not select whole bytes")]
    MisalignedSlice {
        /// The dtype.
        dtype: Dtype,
        /// The tensor's shape.
        shape: Vec<usize>,
    },

    /// A data alignment that is not a power of two of at least 8.
    #[error("data alignment must be a power of two of at least 8, got {0}")]
    InvalidAlignment(usize),

    /// An I/O error on a file.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done, e.g. "cannot open".
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A file changed after it was opened and its header read.
    #[error(
        "`{path}` changed after it was opened ({detail}); open it again to read the new contents"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// What changed.
        detail: String,
    },

    /// An I/O error from a byte source or sink that is not a named file.
    #[error(transparent)]
    Stream(#[from] std::io::Error),

    /// A format error in a named file.
    #[error("`{path}`: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Attaches the path of the file the error came from (once).
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::Io { .. } | Error::FileChanged { .. } | Error::InFile { .. } => self,
            other => Error::InFile {
                path: path.to_owned(),
                source: Box::new(other),
            },
        }
    }

    /// The error without the file it came from: the problem itself.
    #[must_use]
    pub fn problem(&self) -> &Error {
        match self {
            Error::InFile { source, .. } => source,
            other => other,
        }
    }
}

/// Wraps an I/O error with what was being done to which file.
pub(crate) fn io_error<'p>(
    op: &'static str,
    path: &'p std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn needed(bytes: Option<usize>) -> String {
    match bytes {
        Some(bytes) => format!("{bytes} bytes"),
        None => "more bytes than can be addressed, or a fraction of a byte".to_owned(),
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
