//! The operating system calls the crate needs beyond `std`: read-only maps of
//! files, vectored reads, and early write-back of written ranges. The one
//! place this crate uses `unsafe`.
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

/// The most buffers one `preadv` takes (`IOV_MAX` on Linux).
#[cfg(target_os = "linux")]
const MAX_IOVECS: usize = 1024;

/// Skipped bytes all land in one scratch buffer of at most this size; a
/// longer skip takes several entries pointing at it.
#[cfg(target_os = "linux")]
const SCRATCH: usize = 64 << 10;

/// Reads the range of `file` from `offset` that `parts` describe with as few
/// `preadv` calls as the kernel's buffer limit allows: kept parts land in
/// their buffers, skipped bytes in a scratch buffer that every skip shares.
#[cfg(target_os = "linux")]
pub(crate) fn read_parts(
    file: &File,
    mut offset: u64,
    parts: &mut [crate::source::Part<'_>],
) -> std::io::Result<()> {
    use crate::source::Part;
    use std::io;
    use std::os::fd::AsRawFd;

    let longest_skip = parts.iter().filter_map(|part| match part {
        Part::Skip(len) => Some(*len),
        Part::Keep(_) => None,
    });
    let mut scratch = vec![0u8; longest_skip.max().unwrap_or(0).min(SCRATCH)];
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(MAX_IOVECS);
    // The first part not read in full yet, and how many of its bytes are.
    let (mut first, mut done) = (0, 0);
    while first < parts.len() {
        iovecs.clear();
        for (index, part) in parts.iter_mut().enumerate().skip(first) {
            let skip = if index == first { done } else { 0 };
            match part {
                Part::Keep(buf) => iovecs.push(libc::iovec {
                    iov_base: buf[skip..].as_mut_ptr().cast(),
                    iov_len: buf.len() - skip,
                }),
                Part::Skip(len) => {
                    let mut left = *len - skip;
                    while left > 0 && iovecs.len() < MAX_IOVECS {
                        let take = left.min(scratch.len());
                        iovecs.push(libc::iovec {
                            iov_base: scratch.as_mut_ptr().cast(),
                            iov_len: take,
                        });
                        left -= take;
                    }
                }
            }
            if iovecs.len() >= MAX_IOVECS {
                break;
            }
        }
        iovecs.retain(|iovec| iovec.iov_len > 0);
        if iovecs.is_empty() {
            return Ok(());
        }
        let at = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let count = libc::c_int::try_from(iovecs.len()).expect("at most MAX_IOVECS entries");
        // SAFETY: every entry points into a buffer borrowed mutably for this
        // call (a kept part past its filled bytes, or the scratch buffer),
        // with a length that stays inside it; the kernel writes at most the
        // entries' total length. Several entries sharing the scratch buffer
        // is fine: its contents are never read.
        let read = unsafe { libc::preadv(file.as_raw_fd(), iovecs.as_ptr(), count, at) };
        let mut read = match usize::try_from(read) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => read,
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
        };
        offset += read as u64;
        // Advance past what was read; a short read resumes mid-part.
        while read > 0 && first < parts.len() {
            let left = parts[first].len() - done;
            if read >= left {
                read -= left;
                first += 1;
                done = 0;
            } else {
                done += read;
                read = 0;
            }
        }
        while first < parts.len() && parts[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}

/// Whether the page of `file` holding `offset` is in the page cache, asked
/// without reading it: the page is mapped (not touched) and `mincore` says
/// whether it is resident. `None` where the system cannot tell. Asking with
/// a non-blocking read instead (`preadv2` with `RWF_NOWAIT`) started
/// readahead around every page asked about, which warmed the file being
/// judged cold.
pub(crate) fn is_cached(file: &File, offset: u64) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `sysconf` only reads system configuration.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        let at = i64::try_from(offset / page * page).ok()?;
        let len = usize::try_from(page).ok()?;
        // SAFETY: a new shared, read-only map of one page of a descriptor we
        // hold open, at an address the kernel picks; nothing reads through it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                at,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        let mut resident = 0u8;
        // SAFETY: `map` is the page just mapped, and `mincore` writes one
        // byte per page of it: one, into `resident`.
        let asked = unsafe { libc::mincore(map, len, &raw mut resident) };
        // SAFETY: unmaps exactly the map made above, which nothing uses.
        unsafe { libc::munmap(map, len) };
        (asked == 0).then_some(resident & 1 == 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset);
        None
    }
}

/// Drops the cached pages of `file` (tests of cold reads).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn evict(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor we hold open; it reads no
    // memory of ours.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// The machine's physical memory in bytes, where the system tells.
pub(crate) fn physical_memory() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sysconf` only reads system configuration.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        u64::try_from(pages)
            .ok()?
            .checked_mul(u64::try_from(size).ok()?)
    }
    #[cfg(not(unix))]
    None
}

/// A byte range as the `off_t` pair Linux calls take, if it fits.
#[cfg(target_os = "linux")]
fn file_range(offset: u64, len: u64) -> Option<(i64, i64)> {
    Some((i64::try_from(offset).ok()?, i64::try_from(len).ok()?))
}
