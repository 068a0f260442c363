//! The operating system calls the crate needs beyond `std`: read-only maps of
//! files, and early write-back of written ranges. The one place this crate
//! uses `unsafe`.
//!
//! # Contract
//!
//! A mapping is only sound while nobody changes the mapped bytes. The kernel
//! cannot promise that: another process may truncate or rewrite the file
//! while it is mapped. The mapping is private (copy-on-write) and read-only,
//! so this process never writes through it, and ironsafe's own writer never
//! modifies a file in place: it writes a temporary file and renames it over
//! the old one, which leaves existing mappings of the old file intact.
//!
//! What remains is the hazard every mmap-based loader shares: if another
//! program truncates the file while it is mapped, touching the lost pages
//! raises SIGBUS, and if it rewrites the bytes in place, readers see the new
//! bytes. Callers who cannot rule that out should read through a
//! [`ByteSource`](crate::ByteSource) instead.

use std::fs::File;
use std::ops::Deref;

/// A private, read-only memory map of a whole file.
#[derive(Debug)]
pub struct Mmap(memmap2::Mmap);

impl Mmap {
    /// Maps all of `file`.
    pub fn map(file: &File) -> std::io::Result<Self> {
        // SAFETY: the mapping is read-only and private, so this process never
        // writes through it; changes to the file by other processes are the
        // documented hazard of the module contract above.
        let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(file)? };
        Ok(Self(map))
    }
}

impl Deref for Mmap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Mmap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Starts writing `len` bytes of `file` from `offset` back to disk without
/// waiting (Linux; elsewhere nothing). A durable save calls this as it goes,
/// so that the disk works while later tensors are still being copied and the
/// final `fsync` has little left to wait for.
pub(crate) fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let Some((offset, len)) = file_range(offset, len) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor we hold open; it reads
        // no memory of ours. It is advice: a failure only means the final
        // fsync does all the work.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Tells the kernel that `len` bytes of `file` from `offset` are about to be
/// read (Linux; elsewhere nothing), so that it queues the whole range at once
/// instead of discovering it a readahead window at a time. Cheap when the
/// pages are already cached.
pub(crate) fn advise_willneed(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let Some((offset, len)) = file_range(offset, len) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor we hold open; it reads
        // no memory of ours. Advice only: a failure changes nothing.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// A byte range as the `off_t` pair Linux calls take, if it fits.
#[cfg(target_os = "linux")]
fn file_range(offset: u64, len: u64) -> Option<(i64, i64)> {
    Some((i64::try_from(offset).ok()?, i64::try_from(len).ok()?))
}
