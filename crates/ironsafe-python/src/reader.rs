//! `Reader`: an open file's header, and its tensors read with `pread` (or, for
//! slices of the mmap backend, copied from a map).
//!
//! The Python layer builds `safe_open` on this: it asks the reader for
//! names, metadata and byte ranges, maps the file itself for zero-copy
//! tensors, or has the reader copy bytes into fresh buffers (owned loads and
//! slices) with the GIL released.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

use ironsafe::{
    DIRECT_ALIGN, DirectJob, FileStamp, GatherJob, Header, MAX_HEADER_SIZE, Metadata, Mmap,
    ReadJob, ReadOptions, SliceIndex, TensorInfo, default_threads, direct_shift, direct_threads,
    fill_page_cache, mostly_cached, open_direct, read_direct, read_direct_many, read_fresh,
    read_parallel,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::error::{Op, io_to_py, to_py};
use crate::raw::{RawDest, dest_slices};

/// One index of a slice, as the Python layer normalizes it.
#[derive(FromPyObject)]
pub(crate) enum Index {
    /// A position; the dimension is dropped.
    Select(usize),
    /// `(start, stop, step)`, already clamped to the dimension.
    Range(usize, usize, usize),
}

impl From<Index> for SliceIndex {
    fn from(index: Index) -> Self {
        match index {
            Index::Select(i) => SliceIndex::Select(i),
            Index::Range(start, stop, step) => SliceIndex::Range { start, stop, step },
        }
    }
}

/// An open safetensors file: its validated header, and the file for reads.
#[pyclass(frozen, module = "ironsafe._ironsafe")]
pub(crate) struct Reader {
    path: PathBuf,
    file: File,
    header: Header,
    /// The file as the header was read: reads and maps check it first.
    stamp: FileStamp,
    /// The same file opened for direct reads, once asked for.
    direct: OnceLock<Option<File>>,
    /// A map of the file for gathering slices, once asked for.
    map: OnceLock<Option<Mmap>>,
}

#[pymethods]
impl Reader {
    /// Opens `filename` and reads and validates its header (only the header:
    /// no tensor data is read).
    #[new]
    #[pyo3(signature = (filename, *, max_header_size = MAX_HEADER_SIZE))]
    fn new(py: Python<'_>, filename: PathBuf, max_header_size: usize) -> PyResult<Self> {
        // Opening a directory succeeds on Unix; reading it would not.
        let file = File::open(&filename)
            .and_then(|file| {
                if file.metadata()?.is_dir() {
                    Err(std::io::ErrorKind::IsADirectory.into())
                } else {
                    Ok(file)
                }
            })
            .map_err(|err| io_to_py(&filename, &err))?;
        let options = ReadOptions::default().max_header_size(max_header_size);
        let stamp = FileStamp::of(&file, &filename).map_err(|err| to_py(err, Op::Open))?;
        let header = py
            .detach(|| Header::read_from(&file, &options))
            .map_err(|err| to_py(err, Op::Open))?;
        Ok(Self {
            path: filename,
            file,
            header,
            stamp,
            direct: OnceLock::new(),
            map: OnceLock::new(),
        })
    }

    /// Raises `SafetensorError` if the file was truncated or modified since
    /// it was opened: its header no longer describes it, and a map of it could
    /// fault. Replacing the file by a rename is not a change (the open file
    /// is still the old one, intact).
    fn check_unchanged(&self) -> PyResult<()> {
        self.stamp
            .check(&self.file, &self.path)
            .map_err(|err| to_py(err, Op::Read))
    }

    /// Tensor names, sorted.
    fn keys(&self) -> Vec<&str> {
        self.header
            .tensors_by_name()
            .map(|info| info.name.as_str())
            .collect()
    }

    /// Tensor names in file order.
    fn offset_keys(&self) -> Vec<&str> {
        self.header
            .tensors()
            .iter()
            .map(|info| info.name.as_str())
            .collect()
    }

    /// The metadata, or `None`.
    fn metadata(&self) -> Option<Metadata> {
        self.header.metadata().cloned()
    }

    /// The file's path, as given.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The descriptor of the open file, so that the Python layer maps the
    /// very file whose header was validated, even if the path has since been
    /// replaced.
    #[cfg(unix)]
    fn fileno(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    /// The length of the file: the header and all tensor data.
    #[getter]
    fn file_len(&self) -> usize {
        self.header.data_start() + self.header.data_len()
    }

    /// `(dtype, shape, begin, end)` of a tensor, with `begin` and `end`
    /// absolute file offsets.
    fn info(&self, name: &str) -> PyResult<(&'static str, Vec<usize>, usize, usize)> {
        let info = self.get(name)?;
        let start = self.header.data_start();
        let (begin, end) = info.data_offsets;
        Ok((
            info.dtype.name(),
            info.shape.clone(),
            start + begin,
            start + end,
        ))
    }

    /// `(name, dtype, shape, begin, end)` of every tensor in file order, with
    /// absolute offsets: everything a loader needs, in one call.
    fn infos(&self) -> Vec<(&str, &'static str, Vec<usize>, usize, usize)> {
        let start = self.header.data_start();
        self.header
            .tensors()
            .iter()
            .map(|info| {
                let (begin, end) = info.data_offsets;
                (
                    info.name.as_str(),
                    info.dtype.name(),
                    info.shape.clone(),
                    start + begin,
                    start + end,
                )
            })
            .collect()
    }

    /// Reads the tensor data into the page cache in parallel, with the GIL
    /// released, unless most of it is cached already; returns whether it
    /// read. A map of the whole file, made next, then faults on cached pages
    /// instead of waiting on the disk one readahead window at a time.
    fn fill_page_cache(&self, py: Python<'_>) -> PyResult<bool> {
        self.check_unchanged()?;
        let (start, len) = (self.header.data_start(), self.header.data_len());
        py.detach(|| fill_page_cache(&self.file, start as u64, len as u64, default_threads()))
            .map_err(|err| self.read_error(None, &err.source))
    }

    /// Reads whole tensors into memory the caller allocated: `jobs` pairs a
    /// tensor name with the address of a buffer of exactly the tensor's byte
    /// length. All reads run in parallel with the GIL released; the whole
    /// pages of fresh buffers are placed without being zeroed first
    /// (`ironsafe::read_fresh`).
    fn read_into(&self, py: Python<'_>, jobs: Vec<(String, usize)>) -> PyResult<()> {
        self.check_unchanged()?;
        let mut targets = Vec::with_capacity(jobs.len());
        let mut dests = Vec::with_capacity(jobs.len());
        for (name, address) in &jobs {
            let info = self.get(name)?;
            targets.push((self.header.data_start() + info.data_offsets.0) as u64);
            dests.push(RawDest {
                address: *address,
                len: info.byte_len(),
            });
        }
        let slices = dest_slices(&mut dests).map_err(PyValueError::new_err)?;
        let reads = targets
            .into_iter()
            .zip(slices)
            .map(|(offset, dest)| GatherJob::whole(offset, dest))
            .collect();
        py.detach(|| read_fresh(&self.file, reads, default_threads()))
            .map_err(|err| self.read_error(Some(&jobs[err.job].0), &err.source))
    }

    /// Reads whole tensors of a cold file into memory the caller allocated
    /// for direct reads: `jobs` pairs a tensor name with the address of a
    /// buffer aligned to `DIRECT_ALIGN` and its capacity, at least the
    /// tensor's byte length plus `2 * DIRECT_ALIGN`. Each tensor lands at
    /// its offset in the file modulo `DIRECT_ALIGN`, which is returned: read
    /// past the page cache in whole blocks where the system allows it, else
    /// through it to the same place. All reads run in parallel with the GIL
    /// released.
    fn read_aligned_into(
        &self,
        py: Python<'_>,
        jobs: Vec<(String, usize, usize)>,
    ) -> PyResult<Vec<usize>> {
        self.check_unchanged()?;
        let mut ranges = Vec::with_capacity(jobs.len());
        let mut dests = Vec::with_capacity(jobs.len());
        for (name, address, capacity) in &jobs {
            let info = self.get(name)?;
            let (offset, len) = (
                (self.header.data_start() + info.data_offsets.0) as u64,
                info.byte_len(),
            );
            let needed = len + 2 * DIRECT_ALIGN;
            if *capacity < needed {
                return Err(PyValueError::new_err(format!(
                    "a buffer of {capacity} bytes cannot hold tensor {name} for a direct read ({needed})"
                )));
            }
            ranges.push((offset, len));
            dests.push(RawDest {
                address: *address,
                len: *capacity,
            });
        }
        let shifts: Vec<usize> = ranges
            .iter()
            .map(|&(offset, _)| direct_shift(offset))
            .collect();
        let mut bufs = dest_slices(&mut dests).map_err(PyValueError::new_err)?;
        let read = py.detach(|| {
            if let Some(file) = self.direct_file() {
                let jobs = ranges
                    .iter()
                    .zip(&mut bufs)
                    .map(|(&(offset, len), buf)| DirectJob {
                        offset,
                        len,
                        buf: &mut buf[..],
                    })
                    .collect();
                match read_direct_many(file, jobs, direct_threads()) {
                    // Refused (a file system without direct reads, or memory
                    // that does not suit them): read the usual way.
                    Err(err) if err.source.kind() == io::ErrorKind::InvalidInput => {}
                    result => return result.map(drop),
                }
            }
            let reads = ranges
                .iter()
                .zip(&shifts)
                .zip(bufs)
                .map(|((&(offset, len), &shift), buf)| {
                    GatherJob::whole(offset, &mut buf[shift..shift + len])
                })
                .collect();
            read_fresh(&self.file, reads, default_threads())
        });
        read.map_err(|err| self.read_error(Some(&jobs[err.job].0), &err.source))?;
        Ok(shifts)
    }

    /// Whether most of the tensor data is out of the page cache (a sample of
    /// pages, asked without waiting for the disk); `false` where the system
    /// cannot tell.
    fn is_cold(&self) -> bool {
        let (start, len) = (self.header.data_start(), self.header.data_len());
        mostly_cached(&self.file, start as u64, len as u64) == Some(false)
    }

    /// Reads `len` bytes of tensor data, starting at absolute file offset
    /// `offset`, into memory the caller allocated: `capacity` bytes at
    /// `address` (a staging buffer on its way to a device, holding the bytes
    /// of several tensors or part of one). Parallel, with the GIL released.
    ///
    /// With `direct`, the bytes are read past the page cache (`O_DIRECT`)
    /// where the system allows it, in whole aligned blocks: `address` must
    /// then be a multiple of `DIRECT_ALIGN`, and `capacity` at least
    /// `len + 2 * DIRECT_ALIGN`. Returns where in the buffer the bytes begin
    /// when they were read directly, `None` when they were read through the
    /// page cache (asked to, or direct reads refused: the file system has
    /// none, or the memory does not suit them).
    #[pyo3(signature = (offset, len, address, capacity, *, direct = false))]
    fn read_range_into(
        &self,
        py: Python<'_>,
        offset: usize,
        len: usize,
        address: usize,
        capacity: usize,
        direct: bool,
    ) -> PyResult<Option<usize>> {
        self.check_unchanged()?;
        let data = self.header.data_start()..self.file_len();
        if offset < data.start || offset.saturating_add(len) > data.end {
            return Err(PyValueError::new_err(format!(
                "bytes {offset}..{} are outside the tensor data of {} ({}..{})",
                offset.saturating_add(len),
                self.path.display(),
                data.start,
                data.end
            )));
        }
        if capacity < len {
            return Err(PyValueError::new_err(format!(
                "a buffer of {capacity} bytes cannot hold {len}"
            )));
        }
        let mut dests = [RawDest {
            address,
            len: capacity,
        }];
        let buf = dest_slices(&mut dests)
            .map_err(PyValueError::new_err)?
            .pop()
            .unwrap_or_default();
        let read = py.detach(|| {
            if let Some(file) = direct.then(|| self.direct_file()).flatten() {
                match read_direct(file, offset as u64, len, buf, direct_threads()) {
                    // Refused (a file system without direct reads, or a
                    // buffer that does not suit them): read it the usual way.
                    Err(err) if err.kind() == std::io::ErrorKind::InvalidInput => {}
                    result => return result.map(Some),
                }
            }
            let job = ReadJob {
                offset: offset as u64,
                dest: &mut buf[..len],
            };
            read_parallel(&self.file, vec![job], default_threads())
                .map(|()| None)
                .map_err(|err| err.source)
        });
        read.map_err(|err| self.read_error(None, &err))
    }

    /// Reads the part of a tensor that `indices` select into memory that
    /// `allocate(nbytes) -> (buffer, address)` provides (a fresh torch tensor
    /// or numpy array), with the GIL released; returns the buffer and the
    /// slice's shape. The runs are read in parallel, into fresh pages as
    /// `read_into` reads.
    ///
    /// With `mapped` (the mmap backend), a slice of many runs is copied from
    /// a map of the file: `preadv` would copy the bytes between the runs as
    /// well (three quarters of a column shard's span). Measured on the
    /// project's 2-core VM, numpy's column shards (rank 0 of 4) of every
    /// matrix of a 2 GB file took 325-350 ms this way against 380-397 ms with
    /// `preadv`, six fresh processes each, alternating. A map
    /// carries the mmap backend's hazard (a file cut short while it is copied
    /// faults); `check_unchanged` above narrows it as it does for views.
    #[pyo3(signature = (name, indices, allocate, *, mapped = false))]
    fn read_slice_into<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        indices: Vec<Index>,
        allocate: &Bound<'py, PyAny>,
        mapped: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<usize>)> {
        self.check_unchanged()?;
        let info = self.get(name)?;
        let indices: Vec<SliceIndex> = indices.into_iter().map(SliceIndex::from).collect();
        let ranges = info
            .slice_ranges(&indices)
            .map_err(|err| to_py(err, Op::Read))?;
        let shape = ranges.shape().to_vec();
        let len = ranges.remaining_bytes();
        let (buffer, address): (Bound<'py, PyAny>, usize) = allocate.call1((len,))?.extract()?;
        let mut dests = [RawDest { address, len }];
        let dest = dest_slices(&mut dests)
            .map_err(PyValueError::new_err)?
            .pop()
            .unwrap_or_default();
        let base = (self.header.data_start() + info.data_offsets.0) as u64;
        let runs: Vec<_> = ranges
            .map(|run| base + run.start as u64..base + run.end as u64)
            .collect();
        let map = if mapped && runs.len() > 1 {
            self.map()
        } else {
            None
        };
        let job = vec![GatherJob { runs, dest }];
        py.detach(|| match map {
            Some(map) => read_fresh(&**map, job, default_threads()),
            None => read_fresh(&self.file, job, default_threads()),
        })
        .map_err(|err| self.read_error(Some(name), &err.source))?;
        Ok((buffer, shape))
    }
}

impl Reader {
    /// The open file again, for direct reads: opened on first use, `None`
    /// where the system or file system has none.
    fn direct_file(&self) -> Option<&File> {
        self.direct.get_or_init(|| open_direct(&self.file)).as_ref()
    }

    /// A map of the file, made on first use; `None` where it cannot be mapped.
    fn map(&self) -> Option<&Mmap> {
        self.map.get_or_init(|| Mmap::map(&self.file).ok()).as_ref()
    }

    fn get(&self, name: &str) -> PyResult<&TensorInfo> {
        self.header
            .get(name)
            .ok_or_else(|| to_py(ironsafe::Error::TensorNotFound(name.to_owned()), Op::Read))
    }

    /// A failed read, of tensor `name` or of the data as a whole: the file
    /// changed or broke under us.
    fn read_error(&self, name: Option<&str>, err: &std::io::Error) -> PyErr {
        let source = match name {
            Some(name) => std::io::Error::new(err.kind(), format!("tensor `{name}`: {err}")),
            None => std::io::Error::new(err.kind(), err.to_string()),
        };
        let source = ironsafe::Error::Io {
            op: "cannot read",
            path: self.path.clone(),
            source,
        };
        to_py(source, Op::Read)
    }
}
