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

    /// Reads the contiguous range from `offset` that `parts` describe, in
    /// order: each [`Part::Keep`] is filled, each [`Part::Skip`] passed
    /// over. A slice's many short runs, or many small tensors, become one
    /// request instead of one per run.
    fn read_parts_at(&self, offset: u64, parts: &mut [Part<'_>]) -> io::Result<()> {
        let mut at = offset;
        for part in parts {
            match part {
                Part::Keep(buf) => {
                    self.read_exact_at(at, buf)?;
                    at += buf.len() as u64;
                }
                Part::Skip(len) => at += *len as u64,
            }
        }
        Ok(())
    }

    /// Hints that `len` bytes from `offset` will be read soon, so that a
    /// source with latency can start fetching them. Does nothing by default.
    fn prefetch(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

/// A piece of a range read by [`ByteSource::read_parts_at`].
#[derive(Debug)]
pub enum Part<'a> {
    /// Bytes to read into this buffer.
    Keep(&'a mut [u8]),
    /// This many bytes to pass over.
    Skip(usize),
}

impl Part<'_> {
    /// How many bytes of the range this part covers.
    pub fn len(&self) -> usize {
        match self {
            Part::Keep(buf) => buf.len(),
            Part::Skip(len) => *len,
        }
    }

    /// Whether the part covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[cfg(target_os = "linux")]
    fn read_parts_at(&self, offset: u64, parts: &mut [Part<'_>]) -> io::Result<()> {
        crate::sys::read_parts(self, offset, parts)
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

    fn read_parts_at(&self, offset: u64, parts: &mut [Part<'_>]) -> io::Result<()> {
        (**self).read_parts_at(offset, parts)
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

    #[test]
    fn files_read_parts_past_every_batch_limit() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, &data).unwrap();
        // More parts than one system call takes, and skips longer than the
        // scratch buffer.
        let mut kept = vec![0u8; 3000 * 7];
        let mut parts = Vec::new();
        let mut expected = Vec::new();
        let mut at = 5;
        for (index, buf) in kept.chunks_mut(7).enumerate() {
            let skip = if index % 500 == 0 {
                200_000
            } else {
                index % 13
            };
            parts.push(Part::Skip(skip));
            at += skip;
            expected.extend_from_slice(&data[at..at + 7]);
            at += 7;
            parts.push(Part::Keep(buf));
        }
        file.read_parts_at(5, &mut parts).unwrap();
        assert!(kept == expected);

        let mut buf = [0; 4];
        let mut parts = [Part::Skip(data.len() - 2), Part::Keep(&mut buf)];
        let err = file.read_parts_at(0, &mut parts).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
