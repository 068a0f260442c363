//! The parallel I/O engine: many byte ranges read at once.
//!
//! Loading a model is a handful of large reads (or, for adapters, thousands
//! of tiny ones). One thread cannot keep up with the page cache or a fast
//! disk, and every page of fresh memory costs a fault on first touch. So the
//! reads are cut into chunks and dealt to a few threads in balanced groups:
//! the copies and the faults run in parallel.
//!
//! Destinations are not advised to use transparent huge pages: measured on
//! the project's 2-core VM, first touch of huge-page memory was five times
//! slower than of 4 KiB pages (4.4-6.1 s against 0.83 s for 2 GB).

use std::io;

use crate::ByteSource;

/// Pieces of this size keep every thread busy to the end of a large read.
const CHUNK: usize = 8 << 20;

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
/// positive number, else the machine's parallelism, at most 16.
pub fn default_threads() -> usize {
    std::env::var("IRONSAFE_THREADS")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|&threads| threads > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(16)))
}

/// Reads every job's range from `source` into its destination, with up to
/// `threads` threads. Returns once all reads are done, or with the first
/// failure (the other threads finish their current piece and stop).
pub fn read_parallel<S: ByteSource + Sync + ?Sized>(
    source: &S,
    jobs: Vec<ReadJob<'_>>,
    threads: usize,
) -> Result<(), ReadError> {
    prefetch(source, &jobs);
    let mut pieces = Vec::new();
    for (job, ReadJob { offset, dest }) in jobs.into_iter().enumerate() {
        let mut at = offset;
        for chunk in dest.chunks_mut(CHUNK) {
            let len = chunk.len() as u64;
            pieces.push((job, at, chunk));
            at += len;
        }
    }
    let groups = balanced_groups(pieces, threads.max(1));
    let read_group = |group: Vec<(usize, u64, &mut [u8])>| {
        group.into_iter().try_for_each(|(job, offset, dest)| {
            source
                .read_exact_at(offset, dest)
                .map_err(|source| ReadError { job, source })
        })
    };
    if groups.len() <= 1 {
        return groups.into_iter().try_for_each(read_group);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| scope.spawn(move || read_group(group)))
            .collect();
        // The scope joins every thread before returning, failed or not.
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// Announces the reads to the source: the span they cover at once when they
/// fill most of it (a whole model), else each on its own.
fn prefetch<S: ByteSource + ?Sized>(source: &S, jobs: &[ReadJob<'_>]) {
    let bytes: u64 = jobs.iter().map(|job| job.dest.len() as u64).sum();
    let start = jobs.iter().map(|job| job.offset).min().unwrap_or(0);
    let end = jobs
        .iter()
        .map(|job| job.offset + job.dest.len() as u64)
        .max()
        .unwrap_or(0);
    if bytes >= (end - start) / 2 {
        source.prefetch(start, end - start);
    } else {
        for job in jobs {
            source.prefetch(job.offset, job.dest.len() as u64);
        }
    }
}

/// Deals pieces, in order, into at most `count` groups of about equal bytes.
fn balanced_groups<T>(
    pieces: Vec<(usize, u64, &mut [T])>,
    count: usize,
) -> Vec<Vec<(usize, u64, &mut [T])>> {
    let total: usize = pieces.iter().map(|(_, _, dest)| dest.len()).sum();
    let share = total.div_ceil(count).max(1);
    let mut groups: Vec<Vec<_>> = vec![Vec::new()];
    let mut filled = 0;
    for piece in pieces {
        if filled >= share && groups.len() < count {
            groups.push(Vec::new());
            filled = 0;
        }
        filled += piece.2.len();
        groups
            .last_mut()
            .expect("there is always a group")
            .push(piece);
    }
    groups.retain(|group| !group.is_empty());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_land_where_they_belong() {
        let data = source(3 * CHUNK + 12345);
        for threads in [1, 2, 5] {
            let mut big = vec![0; 2 * CHUNK + 99];
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
    fn groups_are_balanced_and_keep_everything() {
        let mut bufs: Vec<Vec<u8>> = [5, 5, 5, 5, 20].iter().map(|&n| vec![0; n]).collect();
        let pieces: Vec<_> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| (i, 0u64, b.as_mut_slice()))
            .collect();
        let groups = balanced_groups(pieces, 2);
        let sizes: Vec<usize> = groups
            .iter()
            .map(|g| g.iter().map(|p| p.2.len()).sum())
            .collect();
        assert_eq!(sizes, [20, 20]);
        assert!(balanced_groups(Vec::<(usize, u64, &mut [u8])>::new(), 3).is_empty());
    }
}
