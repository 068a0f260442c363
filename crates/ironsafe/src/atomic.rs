//! Replacing a file atomically: readers see the old file or the new one,
//! never a partial one.
//!
//! The new file is written under a temporary name beside the destination and
//! renamed over it. A writer killed before the rename leaves its temporary
//! file behind; the name says which process made it (`.{name}.ironsafe-tmp.
//! {pid}.{n}`), and the next save into the directory removes those whose
//! process is gone.

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
    remove_leftovers(parent(path));
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

/// Removes the temporary files that killed writers left in `dir`: those
/// whose process no longer runs. Best effort: a save never fails because of
/// someone else's leftovers. Only Linux tells (through `/proc`) whether a
/// process runs; elsewhere leftovers stay.
fn remove_leftovers(dir: &Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The process that made a temporary file of [`temp_path`]'s form, from its
/// name; `None` for any other name.
fn temp_owner(name: &str) -> Option<u32> {
    let (_, suffix) = name.strip_prefix('.')?.rsplit_once(TEMP_MARKER)?;
    let (pid, unique) = suffix.strip_prefix('.')?.split_once('.')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(unique) || !digits(pid) {
        return None;
    }
    pid.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_tell_their_process() {
        let temp = temp_path(Path::new("dir/model.safetensors"));
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_owner(name), Some(std::process::id()));
        for other in [
            "model.safetensors",
            ".model.safetensors",
            "model.safetensors.ironsafe-tmp.12.0",
            ".model.safetensors.ironsafe-tmp.12",
            ".model.safetensors.ironsafe-tmp.12.x",
            ".model.safetensors.ironsafe-tmp..0",
            ".model.safetensors.ironsafe-tmp.-1.0",
        ] {
            assert_eq!(temp_owner(other), None, "{other}");
        }
    }
}
