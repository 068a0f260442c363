//! Where file bytes come from: the small byte-range interface readers use.
//!
//! A local file is one source; an in-memory buffer is another. Keeping the
//! reader behind `size` + `read_exact_at` lets later sources (HTTP range
//! requests, object stores, one rank's slice of a checkpoint) plug in without
//! touching the parser.

use std::fs::File;
use std::io;

/// A random-access, read-only sequence of bytes.
pub trait ByteSource {
    /// The total number of bytes.
    fn size(&self) -> io::Result<u64>;

    /// Fills `buf` with the bytes starting at `offset`; fails with
    /// [`io::ErrorKind::UnexpectedEof`] if the source ends first.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Hints that `len` bytes from `offset` will be read soon, so that a
    /// source with latency can start fetching them. Does nothing by default.
    fn prefetch(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

impl ByteSource for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .and_then(|range| self.get(range))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(range);
        Ok(())
    }
}

impl ByteSource for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn prefetch(&self, offset: u64, len: u64) {
        crate::sys::advise_willneed(self, offset, len);
    }

    #[cfg(unix)]
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_read(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }

    fn prefetch(&self, offset: u64, len: u64) {
        (**self).prefetch(offset, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_in_range_and_refuse_past_the_end() {
        let bytes: &[u8] = b"0123456789";
        let mut buf = [0; 3];
        bytes.read_exact_at(7, &mut buf).unwrap();
        assert_eq!(&buf, b"789");
        let err = bytes.read_exact_at(8, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = bytes.read_exact_at(u64::MAX, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(bytes.size().unwrap(), 10);
    }

    #[test]
    fn files_read_at_offsets() {
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, b"abcdef").unwrap();
        let mut buf = [0; 2];
        file.read_exact_at(2, &mut buf).unwrap();
        assert_eq!(&buf, b"cd");
        assert_eq!(file.size().unwrap(), 6);
        assert_eq!(
            file.read_exact_at(5, &mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
