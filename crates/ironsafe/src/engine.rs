//! The parallel I/O engine: many byte ranges read at once.
//!
//! Loading a model is a handful of large reads (or, for adapters, thousands
//! of tiny ones). One thread cannot keep up with the page cache or a fast
//! disk, and every page of fresh memory costs a fault on first touch. So the
//! reads are cut into chunks and dealt to a few threads in balanced groups
//! (the calling thread and workers kept for the life of the process,
//! `crate::pool`): the copies and the faults run in parallel. Ranges close
//! together (a column slice's short runs, small tensors side by side) are
//! joined into one vectored request per chunk, the bytes between them read
//! into a scratch buffer: measured here, a rank's column shard of a 2 GB
//! model went from 0.57 s with one `pread` per run to 0.2 s.
//!
//! Destinations are not advised to use transparent huge pages: measured on
//! the project's 2-core VM, first touch of 2 GB of huge-page memory took
//! anywhere from 0.2 to 6 s, depending on where the guest's memory came from,
//! against 0.6-1.1 s for 4 KiB pages; a load through ironsafe took 1.2-2.8 s
//! with them against 0.7-0.9 s without.

use std::io;

use crate::ByteSource;
use crate::source::Part;

/// Pieces of at most this size keep every thread busy to the end of a large
/// read.
const MAX_CHUNK: usize = 8 << 20;

/// Pieces of at least this size keep the per-piece cost (a system call, a
/// thread's hand-off) small next to the copy.
const MIN_CHUNK: usize = 256 << 10;

/// A read is spread over another thread only for each this many bytes (the
/// source's bytes, gaps included: the kernel copies those too). Handing work
/// to a pool's worker (`crate::pool`) costs a wake-up; measured here, rows
/// of a matrix read into fresh memory in a fresh process took, with one
/// thread and with two, 0.49 / 0.35 ms for 512 KiB, 0.67 / 0.52 ms for
/// 1 MiB and 1.2 / 0.95 ms for 2 MiB (medians of 64 reads each).
const MIN_PER_THREAD: usize = 512 << 10;

/// Ranges this close together are read as one request, the gap into a
/// scratch buffer: copying 32 KiB costs about what a system call does, and a
/// column slice's runs, or a file of small tensors, then take one request
/// per piece instead of one per run.
pub(crate) const MAX_GAP: u64 = 32 << 10;

/// One range of the source to read into a buffer of exactly its length.
#[derive(Debug)]
pub struct ReadJob<'a> {
    /// Where the range starts in the source.
    pub offset: u64,
    /// Where it goes; its length is the range's length.
    pub dest: &'a mut [u8],
}

/// A failed read: which job (its index in the list given), and why.
#[derive(Debug, thiserror::Error)]
#[error("read {job} failed: {source}")]
pub struct ReadError {
    /// The index of the job that failed.
    pub job: usize,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// The number of threads to read with: `IRONSAFE_THREADS` when set to a
/// positive number, else the machine's parallelism, at most 16. Decided once
/// per process: asking the system (`available_parallelism` reads the
/// cgroup's CPU quota from files) cost about 30 µs, as much as reading a
/// small slice, and a tensor-parallel load asks once per tensor.
pub fn default_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        configured_threads()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(16)))
    })
}

/// The number of threads for direct reads ([`crate::read_direct`]):
/// `IRONSAFE_THREADS` when set, else 16 whatever the machine's cores. Each
/// thread keeps one request in flight and waits on the disk, not the
/// processor. On the project's 2-core VM, a cold 2 GB file read directly
/// took 0.79-0.91 s (median of runs) with 16 threads, 0.96 s with 32,
/// 1.07 s with 8 and 2.17 s with 2; through the page cache, 1.4-1.9 s.
pub fn direct_threads() -> usize {
    configured_threads().unwrap_or(16)
}

/// `IRONSAFE_THREADS`, when set to a positive number; read once.
fn configured_threads() -> Option<usize> {
    static CONFIGURED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *CONFIGURED.get_or_init(|| {
        std::env::var("IRONSAFE_THREADS")
            .ok()
            .and_then(|value| value.parse().ok())
            .filter(|&threads| threads > 0)
    })
}

/// Reads every job's range from `source` into its destination, with up to
/// `threads` threads. Returns once all reads are done, or with the first
/// failure (the other threads finish their current piece and stop).
pub fn read_parallel<S: ByteSource + Sync + ?Sized>(
    source: &S,
    jobs: Vec<ReadJob<'_>>,
    threads: usize,
) -> Result<(), ReadError> {
    let total: usize = jobs.iter().map(|job| job.dest.len()).sum();
    // Four pieces a thread, so that one slow piece does not hold up the end.
    let chunk = (total / (threads_for(total as u64, threads) * 4)).clamp(MIN_CHUNK, MAX_CHUNK);
    run(source, pieces(jobs, chunk), threads)
}

/// Reads `len` bytes of `file` from `start` into the page cache, in
/// parallel, unless most of them are there already (a sample of pages is
/// asked without waiting for the disk) or they would fill more than half of
/// the machine's memory. Returns whether it read.
///
/// A map of a cold file fills one fault (and one readahead window) at a
/// time; reading it through first, as [`read_parallel`] does for owned
/// loads, keeps the disk's queue deep. The bytes land in a scratch buffer:
/// only the page cache keeps them.
pub fn fill_page_cache(
    file: &std::fs::File,
    start: u64,
    len: u64,
    threads: usize,
) -> Result<bool, ReadError> {
    let fits = crate::sys::physical_memory().is_some_and(|memory| len <= memory / 2);
    if len == 0 || !fits || mostly_cached(file, start, len) == Some(true) {
        return Ok(false);
    }
    let mut pieces = Vec::new();
    let mut at = start;
    while at < start + len {
        let span = (start + len - at).min(MAX_CHUNK as u64);
        pieces.push(Piece {
            offset: at,
            span,
            parts: vec![Part::Skip(span as usize)],
            jobs: vec![0],
        });
        at += span;
    }
    run(file, pieces, threads)?;
    Ok(true)
}

/// Whether most of `len` bytes of `file` from `start` are in the page
/// cache, judged from a sample of pages asked about without waiting for the
/// disk; `None` where the system cannot tell.
pub fn mostly_cached(file: &std::fs::File, start: u64, len: u64) -> Option<bool> {
    /// Pages asked about: enough to tell a cold file from a warm one.
    const SAMPLES: u64 = 32;
    let mut cached = 0;
    for sample in 0..SAMPLES {
        cached += u64::from(crate::sys::is_cached(file, start + len * sample / SAMPLES)?);
    }
    Some(cached * 2 >= SAMPLES)
}

/// How many of `threads` a read of `total` bytes is worth.
pub(crate) fn threads_for(total: u64, threads: usize) -> usize {
    let worth = usize::try_from(total.div_ceil(MIN_PER_THREAD as u64)).unwrap_or(usize::MAX);
    threads.min(worth).max(1)
}

/// Reads the pieces, in groups of about equal size, one group a thread, on
/// as many of `threads` as the bytes the kernel copies (gaps included) are
/// worth.
fn run<S: ByteSource + Sync + ?Sized>(
    source: &S,
    pieces: Vec<Piece<'_>>,
    threads: usize,
) -> Result<(), ReadError> {
    prefetch(source, pieces.iter().map(|piece| piece.offset..piece.end()));
    let span = pieces.iter().map(|piece| piece.span).sum();
    let groups = balanced_groups(pieces, threads_for(span, threads), |piece| piece.span);
    crate::pool::on_threads(threads, groups, |group| {
        group.into_iter().try_for_each(|piece| piece.read(source))
    })
}

/// One request to the source: a contiguous range, some of it kept.
#[derive(Debug)]
struct Piece<'a> {
    offset: u64,
    /// The bytes of the source the piece covers, gaps included.
    span: u64,
    parts: Vec<Part<'a>>,
    /// The job each part belongs to.
    jobs: Vec<usize>,
}

impl<'a> Piece<'a> {
    fn new(job: usize, offset: u64, buf: &'a mut [u8]) -> Self {
        Self {
            offset,
            span: buf.len() as u64,
            parts: vec![Part::Keep(buf)],
            jobs: vec![job],
        }
    }

    fn end(&self) -> u64 {
        self.offset + self.span
    }

    /// Adds `part` of `job` at the end of the piece.
    fn push(&mut self, job: usize, part: Part<'a>) {
        self.span += part.len() as u64;
        self.parts.push(part);
        self.jobs.push(job);
    }

    fn read<S: ByteSource + ?Sized>(mut self, source: &S) -> Result<(), ReadError> {
        let Err(source_error) = source.read_parts_at(self.offset, &mut self.parts) else {
            return Ok(());
        };
        // Name the job that failed: retry the kept parts one at a time.
        let mut at = self.offset;
        for (part, &job) in self.parts.iter_mut().zip(&self.jobs) {
            let len = part.len() as u64;
            if let Part::Keep(buf) = part {
                source
                    .read_exact_at(at, buf)
                    .map_err(|source| ReadError { job, source })?;
            }
            at += len;
        }
        Err(ReadError {
            job: self.jobs[0],
            source: source_error,
        })
    }
}

/// Cuts the jobs into pieces of at most `chunk` bytes, in order, joining
/// ranges that follow each other closely into one piece.
fn pieces(jobs: Vec<ReadJob<'_>>, chunk: usize) -> Vec<Piece<'_>> {
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    for (job, ReadJob { offset, dest }) in jobs.into_iter().enumerate() {
        let mut at = offset;
        for buf in dest.chunks_mut(chunk) {
            let len = buf.len() as u64;
            let joined = pieces.last_mut().filter(|piece| {
                let end = piece.end();
                at >= end && at - end <= MAX_GAP && at + len - piece.offset <= chunk as u64
            });
            if let Some(piece) = joined {
                let gap = at - piece.end();
                if gap > 0 {
                    piece.push(job, Part::Skip(gap as usize));
                }
                piece.push(job, Part::Keep(buf));
            } else {
                pieces.push(Piece::new(job, at, buf));
            }
            at += len;
        }
    }
    pieces
}

/// Announces reads of `ranges` (in order) to the source, once per stretch
/// of ranges that follow each other closely: a whole model is one request, a
/// slice's runs a few, instead of one per run.
pub(crate) fn prefetch<S: ByteSource + ?Sized>(
    source: &S,
    ranges: impl IntoIterator<Item = std::ops::Range<u64>>,
) {
    let mut stretch: Option<(u64, u64)> = None;
    for std::ops::Range { start, end } in ranges {
        stretch = match stretch {
            Some((first, last)) if start >= last && start - last <= MAX_GAP => Some((first, end)),
            Some((first, last)) => {
                source.prefetch(first, last - first);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((first, last)) = stretch {
        source.prefetch(first, last - first);
    }
}

/// Deals `items`, in order, into at most `count` groups of about equal
/// `span`s.
pub(crate) fn balanced_groups<T>(
    items: Vec<T>,
    count: usize,
    span: impl Fn(&T) -> u64,
) -> Vec<Vec<T>> {
    let total: u64 = items.iter().map(&span).sum();
    let share = total.div_ceil(count as u64).max(1);
    let mut groups: Vec<Vec<_>> = vec![Vec::new()];
    let mut filled = 0;
    for item in items {
        if filled >= share && groups.len() < count {
            groups.push(Vec::new());
            filled = 0;
        }
        filled += span(&item);
        groups
            .last_mut()
            .expect("there is always a group")
            .push(item);
    }
    groups.retain(|group| !group.is_empty());
    groups
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn source(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A source that counts the requests it serves.
    struct Counting(Vec<u8>, AtomicUsize);

    impl ByteSource for Counting {
        fn size(&self) -> io::Result<u64> {
            self.0.size()
        }

        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.read_exact_at(offset, buf)
        }

        fn read_parts_at(&self, offset: u64, parts: &mut [Part<'_>]) -> io::Result<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let mut at = offset;
            for part in parts {
                if let Part::Keep(buf) = part {
                    self.0.read_exact_at(at, buf)?;
                }
                at += part.len() as u64;
            }
            Ok(())
        }
    }

    #[test]
    fn reads_land_where_they_belong() {
        let data = source(3 * MAX_CHUNK + 12345);
        for threads in [1, 2, 5] {
            let mut big = vec![0; 2 * MAX_CHUNK + 99];
            let mut small = vec![0; 10];
            let mut empty: Vec<u8> = Vec::new();
            let jobs = vec![
                ReadJob {
                    offset: 7,
                    dest: &mut big,
                },
                ReadJob {
                    offset: 3,
                    dest: &mut small,
                },
                ReadJob {
                    offset: 0,
                    dest: &mut empty,
                },
            ];
            read_parallel(&data[..], jobs, threads).unwrap();
            assert!(big == data[7..7 + big.len()], "threads {threads}");
            assert_eq!(small, data[3..13]);
        }
    }

    #[test]
    fn close_runs_take_one_request_and_far_ones_their_own() {
        let data = Counting(source(1 << 20), AtomicUsize::new(0));
        // A column slice: 100 runs of 100 bytes, 900 bytes apart.
        let mut columns = vec![0; 100 * 100];
        let jobs = columns
            .chunks_mut(100)
            .enumerate()
            .map(|(row, dest)| ReadJob {
                offset: row as u64 * 1000,
                dest,
            })
            .collect();
        read_parallel(&data, jobs, 1).unwrap();
        assert_eq!(data.1.swap(0, Ordering::Relaxed), 1);
        for (row, run) in columns.chunks(100).enumerate() {
            assert_eq!(run, &data.0[row * 1000..row * 1000 + 100]);
        }

        let (mut a, mut b) = (vec![0; 10], vec![0; 10]);
        let far = 10 + MAX_GAP + 1;
        let jobs = vec![
            ReadJob {
                offset: 0,
                dest: &mut a,
            },
            ReadJob {
                offset: far,
                dest: &mut b,
            },
        ];
        read_parallel(&data, jobs, 1).unwrap();
        assert_eq!(data.1.load(Ordering::Relaxed), 2);
        assert_eq!(b, data.0[far as usize..far as usize + 10]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cold_files_are_read_into_the_page_cache_and_warm_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![7u8; 4 << 20]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        file.sync_all().unwrap();
        assert_eq!(crate::sys::is_cached(&file, 0), Some(true));
        assert!(
            !fill_page_cache(&file, 0, 4 << 20, 2).unwrap(),
            "just written, so cached"
        );
        crate::sys::evict(&file);
        if crate::sys::is_cached(&file, 1 << 20) != Some(false) {
            // A file system that keeps its pages in memory (tmpfs): nothing is cold.
            return;
        }
        // Asking reads nothing: the file is still cold when asked again.
        assert_eq!(mostly_cached(&file, 0, 4 << 20), Some(false));
        assert_eq!(mostly_cached(&file, 0, 4 << 20), Some(false));
        assert_eq!(crate::sys::is_cached(&file, 1 << 20), Some(false));
        assert!(fill_page_cache(&file, 0, 4 << 20, 2).unwrap());
        for offset in [0, 1 << 20, (4 << 20) - 1] {
            assert_eq!(crate::sys::is_cached(&file, offset), Some(true), "{offset}");
        }
        assert!(!fill_page_cache(&file, 0, 0, 2).unwrap());
    }

    #[test]
    fn a_failed_read_names_its_job() {
        let data = source(100);
        let (mut a, mut b) = (vec![0; 10], vec![0; 10]);
        let jobs = vec![
            ReadJob {
                offset: 0,
                dest: &mut a,
            },
            ReadJob {
                offset: 95,
                dest: &mut b,
            },
        ];
        let err = read_parallel(&data[..], jobs, 2).unwrap_err();
        assert_eq!(err.job, 1);
        assert_eq!(err.source.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn small_reads_stay_on_the_calling_thread() {
        let per = MIN_PER_THREAD as u64;
        assert_eq!(threads_for(0, 4), 1);
        assert_eq!(threads_for(per, 4), 1);
        assert_eq!(threads_for(per + 1, 4), 2);
        assert_eq!(threads_for(3 * per, 2), 2);
        assert_eq!(threads_for(u64::MAX, 4), 4);
        assert_eq!(threads_for(u64::MAX, 0), 1);
    }

    #[test]
    fn groups_are_balanced_and_keep_everything() {
        let mut bufs: Vec<Vec<u8>> = [5, 5, 5, 5, 20].iter().map(|&n| vec![0; n]).collect();
        let pieces: Vec<_> = bufs
            .iter_mut()
            .enumerate()
            .map(|(job, buf)| Piece::new(job, 0, buf))
            .collect();
        let groups = balanced_groups(pieces, 2, |piece| piece.span);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|group| group.iter().map(|piece| piece.span).sum())
            .collect();
        assert_eq!(sizes, [20, 20]);
        assert!(balanced_groups(Vec::<u64>::new(), 3, |&n| n).is_empty());
    }
}
