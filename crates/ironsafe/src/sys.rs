//! The operating system calls the crate needs beyond `std`: read-only maps of
//! files, vectored reads, early write-back of written ranges, and pages placed
//! into fresh memory. The one place this crate uses `unsafe`.
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

/// Places whole pages into fresh memory without the kernel zeroing them
/// first (Linux's userfaultfd): memory is registered with [`register`], then
/// filled a window at a time with [`place`], one system call that allocates
/// the window's pages and copies into them. Read into memory the usual way,
/// each page costs a fault and is zeroed before the copy overwrites it.
///
/// While registered, a page not yet placed must not be touched: a touch from
/// this process would wait for a placement that never comes. So only whole
/// pages of a buffer borrowed mutably are registered, nothing but `place`
/// writes to them, and dropping `FreshPages` (closing the descriptor) ends
/// every registration: pages never placed then fault in as usual.
///
/// [`register`]: FreshPages::register
/// [`place`]: FreshPages::place
#[derive(Debug)]
pub(crate) struct FreshPages {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    fd: std::os::fd::OwnedFd,
}

/// The kernel's interface (`linux/userfaultfd.h`), for the architectures
/// whose ioctl numbers use the generic encoding. The kernel's names.
#[allow(clippy::struct_field_names)]
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod uffd {
    /// `UFFD_API`: the interface version asked for.
    pub(super) const API: u64 = 0xAA;
    /// Only faults from user mode are handled: the kernel's own accesses to
    /// registered memory fail instead of waiting. Lets processes without
    /// privileges open the descriptor (Linux 5.11 and later).
    pub(super) const USER_MODE_ONLY: libc::c_int = 1;
    /// `UFFDIO_REGISTER_MODE_MISSING`: handle pages not yet present.
    pub(super) const MODE_MISSING: u64 = 1;
    /// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
    pub(super) const IOCTL_API: libc::c_ulong = 0xC018_AA3F;
    /// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
    pub(super) const IOCTL_REGISTER: libc::c_ulong = 0xC020_AA00;
    /// `_IOWR(0xAA, 0x03, struct uffdio_copy)`.
    pub(super) const IOCTL_COPY: libc::c_ulong = 0xC028_AA03;

    #[repr(C)]
    pub(super) struct Api {
        pub(super) api: u64,
        pub(super) features: u64,
        pub(super) ioctls: u64,
    }

    #[repr(C)]
    pub(super) struct Register {
        pub(super) start: u64,
        pub(super) len: u64,
        pub(super) mode: u64,
        pub(super) ioctls: u64,
    }

    #[repr(C)]
    pub(super) struct Copy {
        pub(super) dst: u64,
        pub(super) src: u64,
        pub(super) len: u64,
        pub(super) mode: u64,
        pub(super) copy: i64,
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
impl FreshPages {
    /// A new userfaultfd, or `None` where the system refuses one (an older
    /// kernel, a sandbox that filters the call, no permission).
    pub(crate) fn new() -> Option<Self> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let flags = libc::O_CLOEXEC | uffd::USER_MODE_ONLY;
        // SAFETY: a system call that takes flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
        let fd = libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: the call above returned this descriptor, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut api = uffd::Api {
            api: uffd::API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: the ioctl reads and writes one `uffdio_api`, which `api` is.
        let asked = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                uffd::IOCTL_API,
                &raw mut api,
            )
        };
        (asked == 0).then_some(Self { fd })
    }

    /// Registers `pages` (whole pages: page-aligned start and length) for
    /// [`place`](Self::place); returns whether the kernel took them. It
    /// refuses memory that is not private anonymous memory.
    pub(crate) fn register(&self, pages: &mut [u8]) -> bool {
        let mut register = uffd::Register {
            start: pages.as_mut_ptr() as u64,
            len: pages.len() as u64,
            mode: uffd::MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: the ioctl reads and writes one `uffdio_register`. It changes
        // how faults on `pages` are handled, not their contents; `pages` is
        // borrowed mutably, so nobody else may touch it, and the type's
        // contract keeps this crate from touching it but through `place`.
        let done = unsafe { libc::ioctl(self.raw(), uffd::IOCTL_REGISTER, &raw mut register) };
        done == 0
    }

    /// Copies `src` into `dest` (registered, whole pages, of `src`'s length)
    /// a page at a time, allocating each page as it goes; returns how many
    /// bytes were placed, from the start: all of them unless the kernel
    /// stopped (a page already present, no memory).
    pub(crate) fn place(&self, src: &[u8], dest: &mut [u8]) -> usize {
        assert_eq!(
            src.len(),
            dest.len(),
            "a window is placed from as many bytes"
        );
        let mut done = 0;
        let mut stalls = 0;
        while done < dest.len() && stalls < 3 {
            let mut copy = uffd::Copy {
                dst: dest[done..].as_mut_ptr() as u64,
                src: src[done..].as_ptr() as u64,
                len: (dest.len() - done) as u64,
                mode: 0,
                copy: 0,
            };
            // SAFETY: the kernel reads `len` bytes from `src` (borrowed, of
            // that length past `done`) and writes as many to `dest` (borrowed
            // mutably, registered); the ioctl reads and writes one
            // `uffdio_copy`.
            let placed = unsafe { libc::ioctl(self.raw(), uffd::IOCTL_COPY, &raw mut copy) };
            if placed == 0 {
                return dest.len();
            }
            // Interrupted or raced (the process's memory map changing):
            // `copy` says how far it got; try again from there.
            let again = matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EAGAIN | libc::EINTR)
            );
            match usize::try_from(copy.copy) {
                Ok(more) if more > 0 => done += more,
                _ => stalls += 1,
            }
            if !again {
                break;
            }
        }
        done
    }

    fn raw(&self) -> libc::c_int {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }
}

/// Whether no page of `pages` (whole pages) is present yet, asked with
/// `mincore`: fresh memory, not recycled memory (a freed tensor's, reused
/// by the allocator), which would refuse placement only after a window was
/// read for it. `false` where the system cannot tell.
pub(crate) fn untouched(pages: &[u8]) -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut resident = vec![0u8; pages.len().div_ceil(page_size())];
        // SAFETY: `mincore` reads the page tables of the range (borrowed, so
        // mapped) and writes one byte per page into `resident`, which has
        // that many.
        let asked = unsafe {
            libc::mincore(
                pages.as_ptr().cast_mut().cast(),
                pages.len(),
                resident.as_mut_ptr(),
            )
        };
        asked == 0 && resident.iter().all(|&page| page & 1 == 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pages;
        false
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
impl FreshPages {
    /// No such call here.
    pub(crate) fn new() -> Option<Self> {
        None
    }

    pub(crate) fn register(&self, _pages: &mut [u8]) -> bool {
        false
    }

    pub(crate) fn place(&self, _src: &[u8], _dest: &mut [u8]) -> usize {
        0
    }
}

/// The size of a page of memory.
pub(crate) fn page_size() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sysconf` only reads system configuration.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size).unwrap_or(4096)
    }
    #[cfg(not(target_os = "linux"))]
    4096
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
        let len = page_size();
        let at = i64::try_from(offset / len as u64 * len as u64).ok()?;
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
