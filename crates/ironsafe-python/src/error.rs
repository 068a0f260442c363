//! Every Rust error becomes a Python exception here, and only here.

use std::io;
use std::path::Path;

use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError,
};
use pyo3::{PyErr, create_exception};

create_exception!(
    ironsafe,
    SafetensorError,
    PyException,
    "Raised for any problem with the content of a safetensors file or with the tensors to write."
);

/// What was being done when a format error happened: it picks the message
/// prefix the reference uses.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    /// Opening a file and parsing its header.
    Open,
    /// Parsing bytes handed over whole.
    Deserialize,
    /// Writing.
    Serialize,
    /// Reading tensor data.
    Read,
}

/// Converts an error of the format crate, raised while doing `op`.
pub(crate) fn to_py(err: ironsafe::Error, op: Op) -> PyErr {
    use ironsafe::Error;
    match err {
        // Only a file that cannot be opened is an OSError (as the reference
        // does); a failed write is a SafetensorError, like the reference's.
        Error::Io { path, source, .. } if matches!(op, Op::Open) => io_to_py(&path, &source),
        Error::TensorNotFound(name) => {
            SafetensorError::new_err(format!("File does not contain tensor {name}"))
        }
        err => {
            let prefix = match op {
                Op::Open => "Error while deserializing header",
                Op::Deserialize => "Error while deserializing",
                Op::Serialize => "Error while serializing",
                Op::Read => "Error while reading tensor data",
            };
            SafetensorError::new_err(format!("{prefix}: {err}"))
        }
    }
}

/// Converts an I/O error on `path` to the `OSError` subclass Python would raise.
pub(crate) fn io_to_py(path: &Path, err: &io::Error) -> PyErr {
    let path = path.display();
    match err.kind() {
        io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(format!("No such file or directory: {path}"))
        }
        io::ErrorKind::IsADirectory => {
            PyIsADirectoryError::new_err(format!("Is a directory: {path}"))
        }
        io::ErrorKind::PermissionDenied => {
            PyPermissionError::new_err(format!("Permission denied: {path}"))
        }
        _ => PyOSError::new_err(format!("{err}: {path}")),
    }
}

/// Converts an error of the checkpoint converter: a source that cannot be
/// opened is an `OSError`, as for `safe_open`; anything else (a refused
/// pickle, a malformed archive, a failed write) is a `SafetensorError`.
pub(crate) fn convert_to_py(err: ironsafe_pickle::Error) -> PyErr {
    match err {
        ironsafe_pickle::Error::Io {
            op: "cannot open",
            path,
            source,
        } => io_to_py(&path, &source),
        err => SafetensorError::new_err(format!("Error while converting checkpoint: {err}")),
    }
}
