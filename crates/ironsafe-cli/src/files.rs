//! Opening input files, with errors that name them.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use ironsafe::{Header, ReadOptions};

/// Opens `path` for reading.
pub(crate) fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("cannot open `{}`", path.display()))
}

/// Reads and checks the header of the safetensors file at `path`, and
/// nothing of its tensor data.
pub(crate) fn read_header(path: &Path) -> anyhow::Result<Header> {
    let file = open(path)?;
    Header::read_from(&file, &ReadOptions::default()).map_err(|err| in_file(err, path))
}

/// The error, naming `path` unless it already names a file.
pub(crate) fn in_file(err: ironsafe::Error, path: &Path) -> anyhow::Error {
    match err {
        ironsafe::Error::Io { .. } | ironsafe::Error::InFile { .. } => err.into(),
        other => anyhow::Error::new(other).context(format!("`{}`", path.display())),
    }
}
