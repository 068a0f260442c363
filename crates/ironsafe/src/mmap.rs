//! Memory maps: read-only maps of files, and advice on fresh memory. The one
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

/// The size of a transparent huge page on the platforms that have them.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole huge pages inside `buf` with huge pages
/// (Linux, when transparent huge pages are set to `madvise`): a 2 GiB buffer
/// then takes a thousand page faults instead of half a million. Only advice:
/// failures are ignored and the contents are untouched.
pub(crate) fn advise_huge_pages(buf: &mut [u8]) {
    #[cfg(target_os = "linux")]
    {
        let start = (buf.as_mut_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let end = (buf.as_mut_ptr() as usize + buf.len()) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: `start..end` lies inside `buf`, which we borrow mutably,
            // and MADV_HUGEPAGE only changes how the pages are backed, never
            // their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}
