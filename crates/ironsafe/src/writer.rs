//! Writing safetensors files, byte for byte as the reference does.
//!
//! Tensors are laid out by dtype, widest first, then by name; the header is
//! compact JSON with `__metadata__` first, padded with spaces so that the data
//! section starts on a multiple of 8 (or of a larger chosen alignment).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};

use crate::header::{MAX_HEADER_SIZE, METADATA_KEY, Metadata, name_order};
use crate::sys::start_writeback;
use crate::tensor::{View, byte_len};
use crate::{Dtype, Error, Result, atomic};

/// How to write a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// The data section starts at a multiple of this many bytes: a power of
    /// two, at least 8. The default, 8, gives the reference's exact bytes;
    /// 4096 suits direct I/O and page-aligned mapping.
    pub alignment: usize,
    /// The largest header written, in bytes (default: the reference's
    /// 100,000,000, so that every reader accepts the file).
    pub max_header_size: usize,
    /// When writing to a path, flush the data to disk before the rename and
    /// the rename itself after, so the file survives a power cut. On Linux
    /// the data is written with direct I/O, past the page cache, where the
    /// file system allows it.
    pub durable: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            alignment: 8,
            max_header_size: MAX_HEADER_SIZE,
            durable: false,
        }
    }
}

impl WriteOptions {
    /// Sets [`WriteOptions::alignment`].
    #[must_use]
    pub fn alignment(mut self, bytes: usize) -> Self {
        self.alignment = bytes;
        self
    }

    /// Sets [`WriteOptions::max_header_size`].
    #[must_use]
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes;
        self
    }

    /// Sets [`WriteOptions::durable`].
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
}

/// Serializes tensors and optional metadata into the bytes of a file.
pub fn serialize<I, S, V>(
    tensors: I,
    metadata: Option<&Metadata>,
    options: &WriteOptions,
) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = (S, V)>,
    S: AsRef<str>,
    V: View,
{
    let layout = Layout::new(tensors, metadata, options)?;
    let mut out = Vec::with_capacity(layout.file_len());
    layout.write_to(&mut out)?;
    Ok(out)
}

/// Writes tensors and optional metadata to `path`, atomically: the bytes go
/// to a temporary file in the same directory, renamed over `path` once
/// complete. Tensor bytes stream from the views; memory use is one buffer,
/// not the file. The new file gets the mode the process umask implies.
pub fn serialize_to_file<I, S, V>(
    tensors: I,
    metadata: Option<&Metadata>,
    path: impl AsRef<Path>,
    options: &WriteOptions,
) -> Result<()>
where
    I: IntoIterator<Item = (S, V)>,
    S: AsRef<str>,
    V: View,
{
    Layout::new(tensors, metadata, options)?.write_file(path, options.durable)
}

/// A file planned but not yet written: where every tensor goes, and the
/// header that says so. [`serialize`] and [`serialize_to_file`] are the
/// short forms; plan first to know the file's length before writing it, for
/// example into a buffer someone else allocates.
pub struct Layout<S, V> {
    /// The length prefix, the JSON and its padding.
    header: Vec<u8>,
    /// In file order, each with its byte length.
    tensors: Vec<(S, V, usize)>,
    data_len: usize,
}

impl<S: AsRef<str>, V: View> Layout<S, V> {
    /// Validates the tensors (names, sizes) and lays them out as the
    /// reference does.
    pub fn new<I>(tensors: I, metadata: Option<&Metadata>, options: &WriteOptions) -> Result<Self>
    where
        I: IntoIterator<Item = (S, V)>,
    {
        if options.alignment < 8 || !options.alignment.is_power_of_two() {
            return Err(Error::InvalidAlignment(options.alignment));
        }
        let mut tensors = tensors
            .into_iter()
            .map(|(name, view)| {
                if name.as_ref() == METADATA_KEY {
                    return Err(Error::ReservedName);
                }
                let len = checked_len(name.as_ref(), &view)?;
                Ok((name, view, len))
            })
            .collect::<Result<Vec<_>>>()?;
        let (_, repeats) = name_order(&tensors, |(name, _, _)| name.as_ref());
        if let Some(&repeat) = repeats.first() {
            return Err(Error::DuplicateKey(tensors[repeat].0.as_ref().to_owned()));
        }
        tensors.sort_by(|(a_name, a, _), (b_name, b, _)| {
            b.dtype()
                .cmp(&a.dtype())
                .then_with(|| a_name.as_ref().cmp(b_name.as_ref()))
        });

        let mut entries = Vec::with_capacity(tensors.len());
        let mut data_len = 0usize;
        for (name, view, len) in &tensors {
            let begin = data_len;
            data_len = begin.checked_add(*len).ok_or_else(|| Error::SizeOverflow {
                tensor: name.as_ref().to_owned(),
                shape: view.shape().to_vec(),
            })?;
            entries.push(Entry {
                name: name.as_ref(),
                dtype: view.dtype(),
                shape: view.shape(),
                offsets: [begin, data_len],
            });
        }
        let header = header_bytes(metadata, &entries, options)?;
        drop(entries);
        Ok(Self {
            header,
            tensors,
            data_len,
        })
    }

    /// The length of the file.
    pub fn file_len(&self) -> usize {
        self.header.len() + self.data_len
    }

    /// Writes the file to `path` atomically (see [`serialize_to_file`]).
    pub fn write_file(&self, path: impl AsRef<Path>, durable: bool) -> Result<()> {
        const BUFFER: usize = 1 << 20;
        atomic::write(path.as_ref(), durable, |file| {
            #[cfg(target_os = "linux")]
            if durable && crate::direct_write::write_direct(file, |out| self.write_to(out))? {
                return Ok(());
            }
            let sink = Writeback {
                file,
                durable,
                written: 0,
                handed: 0,
            };
            let mut out = BufWriter::with_capacity(BUFFER, sink);
            self.write_to(&mut out)?;
            out.flush()?;
            Ok(())
        })
    }

    /// Writes the file's bytes to `out`.
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> Result<()> {
        out.write_all(&self.header)?;
        for (name, view, len) in &self.tensors {
            let data = view.data();
            // `data_len` promised this length; a view that breaks the promise
            // would corrupt every offset after it.
            if data.len() != *len {
                return Err(Error::TensorSizeMismatch {
                    tensor: name.as_ref().to_owned(),
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    expected: *len,
                    actual: data.len(),
                });
            }
            out.write_all(&data)?;
        }
        Ok(())
    }
}

/// A file written front to back. For a durable save without direct writes
/// it hands each written stretch to the disk as it goes, so that writing to
/// the disk overlaps copying the next tensors instead of all waiting for the
/// final `fsync`.
struct Writeback<'f> {
    file: &'f mut File,
    durable: bool,
    written: u64,
    /// How far write-back has been started.
    handed: u64,
}

impl Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        /// Large enough to keep requests big, small enough to start early.
        const STRETCH: u64 = 32 << 20;
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.durable && self.written - self.handed >= STRETCH {
            start_writeback(self.file, self.handed, self.written - self.handed);
            self.handed = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A view's byte length, checked against its dtype and shape.
fn checked_len(name: &str, view: &impl View) -> Result<usize> {
    let expected = byte_len(name, view.dtype(), view.shape())?;
    if view.data_len() != expected {
        return Err(Error::TensorSizeMismatch {
            tensor: name.to_owned(),
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            expected,
            actual: view.data_len(),
        });
    }
    Ok(expected)
}

/// The length prefix, the compact JSON header and its space padding.
fn header_bytes(
    metadata: Option<&Metadata>,
    entries: &[Entry<'_>],
    options: &WriteOptions,
) -> Result<Vec<u8>> {
    let mut bytes = vec![0; 8];
    let json = HeaderJson { metadata, entries };
    serde_json::to_writer(&mut bytes, &json).map_err(std::io::Error::from)?;
    let padded = bytes.len().next_multiple_of(options.alignment);
    bytes.resize(padded, b' ');
    let len = padded - 8;
    if len > options.max_header_size {
        return Err(Error::HeaderTooLarge {
            len: len as u64,
            limit: options.max_header_size,
        });
    }
    bytes[..8].copy_from_slice(&(len as u64).to_le_bytes());
    Ok(bytes)
}

struct HeaderJson<'a> {
    metadata: Option<&'a Metadata>,
    entries: &'a [Entry<'a>],
}

struct Entry<'a> {
    name: &'a str,
    dtype: Dtype,
    shape: &'a [usize],
    offsets: [usize; 2],
}

impl Serialize for HeaderJson<'_> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(metadata) = self.metadata {
            map.serialize_entry(METADATA_KEY, metadata)?;
        }
        for entry in self.entries {
            map.serialize_entry(entry.name, entry)?;
        }
        map.end()
    }
}

impl Serialize for Entry<'_> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut entry = serializer.serialize_struct("TensorInfo", 3)?;
        entry.serialize_field("dtype", self.dtype.name())?;
        entry.serialize_field("shape", self.shape)?;
        entry.serialize_field("data_offsets", &self.offsets)?;
        entry.end()
    }
}
