//! Replacing a file atomically: readers see the old file or the new one,
//! never a partial one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::io_error;
use crate::{Error, Result};

/// The marker in the names of temporary files, so that leftovers of a killed
/// writer can be recognized.
pub const TEMP_MARKER: &str = ".ironsafe-tmp";

/// Writes `path` through `contents`: into a new temporary file beside it, then
/// renamed over it. On any failure the temporary file is removed and `path`
/// is untouched. With `durable`, the data reaches the disk before the rename
/// and the rename reaches it before returning.
///
/// [`serialize_to_file`](crate::serialize_to_file) writes this way; this is
/// for the files that go with a checkpoint, such as an index of its shards.
pub fn write(
    path: &Path,
    durable: bool,
    contents: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let temp = temp_path(path);
    // `create_new` applies the process umask to 0o666, like any new file.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(io_error("cannot write", path))?;
    let written = contents(&mut file)
        .map_err(|err| match err {
            Error::Stream(source) => io_error("cannot write", path)(source),
            other => other,
        })
        .and_then(|()| {
            if durable {
                file.sync_all().map_err(io_error("cannot sync", path))?;
            }
            drop(file);
            fs::rename(&temp, path).map_err(io_error("cannot replace", path))
        });
    if let Err(err) = written {
        // The temporary file is ours and useless now; failing to remove it
        // must not hide the error that matters.
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    if durable {
        sync_dir(parent(path)).map_err(io_error("cannot sync", parent(path)))?;
    }
    Ok(())
}

/// A fresh name beside `path`: hidden, unique within the machine, marked.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent(path).join(format!(
        ".{name}{TEMP_MARKER}.{}.{unique}",
        std::process::id()
    ))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file; its renames are journaled.
    Ok(())
}
