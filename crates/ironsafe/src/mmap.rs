//! Read-only memory maps of files: the one place this crate uses `unsafe`.
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
