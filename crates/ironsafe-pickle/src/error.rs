//! The one error type of the converter.

use std::path::PathBuf;

/// Everything that can go wrong reading a checkpoint or converting it.
///
/// Pickle errors carry the opcode and its byte offset in the pickle;
/// refused globals carry their `module.name`; checkpoint and tensor errors
/// carry the storage key or the tensor's flattened name; [`Error::InFile`]
/// adds the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An opcode that could run code, or that torch never writes.
    #[error("refused opcode {opcode} at byte {offset}: {why}")]
    ForbiddenOpcode {
        /// The opcode's name in `pickletools`.
        opcode: &'static str,
        /// Its offset in the pickle.
        offset: usize,
        /// Why it is refused.
        why: &'static str,
    },

    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{code:02x} at byte {offset}")]
    UnknownOpcode {
        /// The byte.
        code: u8,
        /// Its offset in the pickle.
        offset: usize,
    },

    /// A global that is not on the allowlist.
    #[error(
        "refused global `{module}.{name}` at byte {offset}: only torch's tensor rebuild \
         functions, storage types, dtypes and inert containers are allowed"
    )]
    ForbiddenGlobal {
        /// The module named by the pickle.
        module: String,
        /// The attribute named by the pickle.
        name: String,
        /// The offset of the `GLOBAL` or `STACK_GLOBAL` opcode.
        offset: usize,
    },

    /// An opcode's argument runs past the end of the pickle.
    #[error("{opcode} at byte {offset} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// The opcode.
        opcode: &'static str,
        /// Its offset in the pickle.
        offset: usize,
        /// The bytes its argument claims.
        needed: u64,
        /// The bytes left in the pickle.
        available: usize,
    },

    /// The pickle ends without a STOP opcode.
    #[error("the pickle ends at byte {offset} without STOP")]
    MissingStop {
        /// The length of the pickle.
        offset: usize,
    },

    /// An opcode whose operands make no sense, or that builds something
    /// other than a tensor tree.
    #[error("{opcode} at byte {offset}: {problem}")]
    Malformed {
        /// The opcode.
        opcode: &'static str,
        /// Its offset in the pickle.
        offset: usize,
        /// What is wrong.
        problem: String,
    },

    /// A bound on the pickle machine was reached.
    #[error("{opcode} at byte {offset}: more than {limit} {what}")]
    Limit {
        /// The opcode that crossed the bound.
        opcode: &'static str,
        /// Its offset in the pickle.
        offset: usize,
        /// What is bounded.
        what: &'static str,
        /// The bound.
        limit: usize,
    },

    /// The zip archive is malformed.
    #[error("malformed zip archive: {0}")]
    Zip(String),

    /// A zip entry is compressed; only stored entries are read.
    #[error(
        "zip entry `{entry}` is compressed (method {method}); only stored (uncompressed) entries \
         are read, nothing is inflated"
    )]
    CompressedEntry {
        /// The entry's name.
        entry: String,
        /// Its compression method.
        method: u16,
    },

    /// A file the checkpoint needs is missing from the zip archive.
    #[error("the zip archive has no entry `{0}`")]
    MissingEntry(String),

    /// The file is neither format torch writes.
    #[error("not a PyTorch checkpoint: {0}")]
    NotACheckpoint(String),

    /// The checkpoint was written on a big-endian machine.
    #[error(
        "the checkpoint was saved on a big-endian machine; only little-endian checkpoints are \
         converted"
    )]
    BigEndian,

    /// A storage's declared size differs from its stored bytes.
    #[error("storage `{key}` declares {declared} bytes but {stored} bytes are stored")]
    StorageSize {
        /// The storage's key.
        key: String,
        /// Its element count times its element size.
        declared: u64,
        /// The bytes in the file.
        stored: u64,
    },

    /// A storage is referenced twice with different types or sizes.
    #[error("storage `{key}` is referenced as {first} and as {second}")]
    StorageConflict {
        /// The storage's key.
        key: String,
        /// The first reference (type and element count).
        first: String,
        /// The second reference.
        second: String,
    },

    /// A storage is referenced but not stored.
    #[error("storage `{0}` is referenced but not stored")]
    MissingStorage(String),

    /// A tensor whose view cannot be read from its storage.
    #[error("tensor `{tensor}`: {problem}")]
    InvalidTensor {
        /// The tensor's flattened name.
        tensor: String,
        /// What is wrong.
        problem: String,
    },

    /// The pickled value tree has a shape the converter cannot flatten.
    #[error("entry `{entry}`: {problem}")]
    Structure {
        /// Where in the tree, as a flattened name (empty for the root).
        entry: String,
        /// What is wrong.
        problem: String,
    },

    /// The `key` option names no top-level entry.
    #[error("the checkpoint has no top-level key `{key}` (it has: {available})")]
    KeyNotFound {
        /// The key asked for.
        key: String,
        /// The top-level keys that exist.
        available: String,
    },

    /// `strict` is set and some entries are not tensors.
    #[error("{} entries are not tensors (strict): {}", .0.len(), .0.join(", "))]
    NonTensorEntries(Vec<String>),

    /// The written file does not read back as the source tensors.
    #[error("verification failed: tensor `{tensor}` {problem}")]
    Verify {
        /// The tensor that differs.
        tensor: String,
        /// How it differs.
        problem: String,
    },

    /// An error of the safetensors format crate while writing or reading
    /// back the output.
    #[error(transparent)]
    Format(#[from] ironsafe::Error),

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

    /// An error inside one member of a checkpoint (a zip entry, or one of
    /// the legacy format's pickles).
    #[error("in {part}: {source}")]
    InPart {
        /// The member, e.g. `` `archive/data.pkl` ``.
        part: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },

    /// An error in a named file.
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
            Error::Io { .. } | Error::InFile { .. } => self,
            other => Error::InFile {
                path: path.to_owned(),
                source: Box::new(other),
            },
        }
    }

    /// Attaches the checkpoint member the error came from.
    pub(crate) fn in_part(self, part: impl Into<String>) -> Self {
        Error::InPart {
            part: part.into(),
            source: Box::new(self),
        }
    }

    /// The error without the file and member it came from: the problem itself.
    #[must_use]
    pub fn problem(&self) -> &Error {
        match self {
            Error::InFile { source, .. } | Error::InPart { source, .. } => source.problem(),
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

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
