//! Noticing that an open file changed under its reader.
//!
//! A reader validates a file's header once, then trusts its offsets. If
//! another program truncates or rewrites the file in place afterwards, a
//! mapping of it raises SIGBUS on the lost pages and reads return bytes the
//! header never described. Comparing a stamp taken at open with the file's
//! state before handing out tensors catches both, for the cost of one
//! `fstat`. Replacing the file by renaming another over it is not a change:
//! the open descriptor still reads the old file, whole.

use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use crate::error::io_error;
use crate::{Error, Result};

/// The length and modification time of an open file. (Not the inode change
/// time: renaming another file over this one changes that, and is no
/// change to the bytes this reader reads.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// The stamp of `file` now; `path` names it in errors.
    pub fn of(file: &File, path: &Path) -> Result<Self> {
        let metadata = file.metadata().map_err(io_error("cannot stat", path))?;
        Ok(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        })
    }

    /// Fails with [`Error::FileChanged`] unless `file` still has this stamp.
    pub fn check(&self, file: &File, path: &Path) -> Result<()> {
        let now = Self::of(file, path)?;
        if now == *self {
            return Ok(());
        }
        let detail = if now.len == self.len {
            "it was modified".to_owned()
        } else {
            format!("its length went from {} to {} bytes", self.len, now.len)
        };
        Err(Error::FileChanged {
            path: path.to_owned(),
            detail,
        })
    }
}
