//! Reads into fresh memory: an owned tensor's own buffer, never written yet.
//!
//! Fresh memory is most of the cost of an owned load. Each page faults on
//! first touch, and the kernel zeroes it before the read overwrites it.
//! Where Linux allows it (userfaultfd, [`FreshPages`]), each thread instead
//! reads a window of the destination into a buffer of its own, which stays
//! in its cache, and places the window's pages from there in one call: the
//! kernel allocates the pages and copies into them, without zeroing them and
//! without a fault each. Measured on the project's 2-core VM, in C, a warm
//! 2 GB file took 0.67-0.80 s to read into fresh memory with two threads,
//! and 0.39-0.49 s this way.
//!
//! Only whole pages inside a destination are placed. The partial pages at
//! its edges, destinations the kernel will not register (memory that is not
//! private and anonymous), windows it refuses (pages already there) and
//! systems without userfaultfd are read as [`read_parallel`] reads.

use std::convert::Infallible;
use std::io;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use crate::engine::{MAX_GAP, balanced_groups, prefetch, threads_for};
use crate::source::Part;
use crate::sys::{FreshPages, page_size, untouched};
use crate::{ByteSource, ReadError, ReadJob, read_parallel};

/// The bytes one placement moves: a thread's window buffer, small enough
/// that it, the source bytes streaming through and, for a column slice, the
/// gaps read past all stay in the core's cache (1 MiB of L2 on this VM).
/// Measured here on one column shard of a 178 MB matrix read with `preadv`
/// (rank 0 of 4): 21 ms with 128 KiB windows, 34 ms with 256 KiB and 31 ms
/// with 512 KiB, against 25 ms without placing pages; whole 2 GB files took
/// the same from 128 KiB to 4 MiB.
const WINDOW: usize = 128 << 10;

thread_local! {
    /// Each thread's window buffer, kept: a new one for every read cost a
    /// map, its first touches and an unmap, a fifth of the time of reading
    /// 4 MiB.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Destinations with fewer whole pages than this are read the usual way:
/// registering memory costs a system call and a split of its mapping, more
/// than the zeroing it saves on a few pages.
const MIN_PLACED: usize = 256 << 10;

/// A destination filled from ranges of the source, one after the other: a
/// whole tensor is one range, a slice of it many runs.
#[derive(Debug)]
pub struct GatherJob<'a> {
    /// The source's byte ranges, in order; their lengths add up to `dest`'s.
    pub runs: Vec<Range<u64>>,
    /// Fresh memory to fill.
    pub dest: &'a mut [u8],
}

impl<'a> GatherJob<'a> {
    /// `dest` filled from one range of the source, from `offset`.
    pub fn whole(offset: u64, dest: &'a mut [u8]) -> Self {
        let runs = std::iter::once(offset..offset + dest.len() as u64).collect();
        Self { runs, dest }
    }
}

/// Fills every job's destination from its runs of `source`, with up to
/// `threads` threads, placing whole pages into fresh memory where the system
/// allows it (see the module notes). Any memory works; fresh memory is what
/// gains. Returns once all reads are done, or with a failure naming the job.
pub fn read_fresh<S: ByteSource + Sync + ?Sized>(
    source: &S,
    jobs: Vec<GatherJob<'_>>,
    threads: usize,
) -> Result<(), ReadError> {
    for (job, gather) in jobs.iter().enumerate() {
        let len = gather.runs.iter().try_fold(0u64, |len, run| {
            len.checked_add(run.end.checked_sub(run.start)?)
        });
        if len != Some(gather.dest.len() as u64) {
            let source = io::Error::new(
                io::ErrorKind::InvalidInput,
                "the runs do not add up to the destination's length",
            );
            return Err(ReadError { job, source });
        }
    }
    // Which jobs have pages worth placing: opening the descriptor and
    // closing it again cost as much as reading 100 KiB.
    let fresh: Vec<bool> = jobs
        .iter()
        .map(|gather| enabled() && placeable(gather.dest))
        .collect();
    let pages = if fresh.contains(&true) {
        FreshPages::new()
    } else {
        None
    };
    let mut windows = Vec::new();
    let mut plain = Vec::new();
    for ((job, gather), fresh) in jobs.into_iter().enumerate().zip(fresh) {
        let pages = pages.as_ref().filter(|_| fresh);
        split(job, gather, pages, &mut windows, &mut plain);
    }
    if let Some(pages) = &pages {
        let failed = place(source, pages, windows, threads);
        plain.extend(failed.into_iter().flat_map(Window::into_jobs));
    }
    // Ends every registration: pages not placed fault in as usual again.
    drop(pages);
    let (index, plain): (Vec<usize>, Vec<ReadJob<'_>>) = plain.into_iter().unzip();
    read_parallel(source, plain, threads).map_err(|err| ReadError {
        job: index[err.job],
        source: err.source,
    })
}

/// Whether to place pages at all: yes unless `IRONSAFE_USERFAULTFD=0`, for
/// sandboxes that kill a process making a system call they do not allow
/// rather than refuse the call (most refuse it, and then nothing is placed).
/// Read once.
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED
        .get_or_init(|| std::env::var_os("IRONSAFE_USERFAULTFD").is_none_or(|value| value != "0"))
}

/// Part of a destination placed in one call, and the runs that fill it.
#[derive(Debug)]
struct Window<'a> {
    job: usize,
    runs: Vec<Range<u64>>,
    dest: &'a mut [u8],
}

impl<'a> Window<'a> {
    /// Reads the window into `buffer`, then places it; returns whether all
    /// of it was placed.
    fn place<S: ByteSource + ?Sized>(
        &mut self,
        source: &S,
        pages: &FreshPages,
        buffer: &mut [u8],
    ) -> bool {
        let bytes = &mut buffer[..self.dest.len()];
        read_runs(source, &self.runs, bytes).is_ok() && pages.place(bytes, self.dest) == bytes.len()
    }

    /// The window as plain reads, one a run.
    fn into_jobs(self) -> Vec<(usize, ReadJob<'a>)> {
        plain_jobs(self.job, self.dest, self.runs)
    }
}

/// Whether `dest` has enough whole pages to be worth placing, none of them
/// present yet.
fn placeable(dest: &[u8]) -> bool {
    let whole = body(dest);
    whole.len() >= MIN_PLACED && untouched(&dest[whole])
}

/// Cuts a job into windows over the whole pages of its destination, once
/// they are registered (with `pages`, given for a placeable job), and plain
/// reads for the rest.
fn split<'a>(
    job: usize,
    gather: GatherJob<'a>,
    pages: Option<&FreshPages>,
    windows: &mut Vec<Window<'a>>,
    plain: &mut Vec<(usize, ReadJob<'a>)>,
) {
    let GatherJob { runs, dest } = gather;
    let whole = body(dest);
    let placed = pages.is_some_and(|pages| pages.register(&mut dest[whole.clone()]));
    if !placed {
        plain.extend(plain_jobs(job, dest, runs));
        return;
    }
    let mut runs = Runs::new(runs);
    let (head, rest) = dest.split_at_mut(whole.start);
    let (body, tail) = rest.split_at_mut(whole.len());
    plain.extend(plain_jobs(job, head, runs.take(whole.start)));
    for dest in body.chunks_mut(WINDOW) {
        let runs = runs.take(dest.len());
        windows.push(Window { job, runs, dest });
    }
    plain.extend(plain_jobs(job, tail, runs.take(tail.len())));
}

/// Where the whole pages of `dest` lie in it.
fn body(dest: &[u8]) -> Range<usize> {
    let page = page_size();
    let address = dest.as_ptr() as usize;
    let head = (address.next_multiple_of(page) - address).min(dest.len());
    head..head + (dest.len() - head) / page * page
}

/// Places the windows, on as many of `threads` as their bytes are worth;
/// returns those not placed in full.
fn place<'a, S: ByteSource + Sync + ?Sized>(
    source: &S,
    pages: &FreshPages,
    windows: Vec<Window<'a>>,
    threads: usize,
) -> Vec<Window<'a>> {
    prefetch(
        source,
        windows.iter().map(|window| {
            let first = window.runs.first().map_or(0, |run| run.start);
            first..window.runs.last().map_or(first, |run| run.end)
        }),
    );
    let total = windows.iter().map(|window| window.dest.len() as u64).sum();
    let groups = balanced_groups(windows, threads_for(total, threads), |window| {
        window.dest.len() as u64
    });
    let failed = Mutex::new(Vec::new());
    let placed = crate::pool::on_threads(threads, groups, |group| {
        BUFFER.with_borrow_mut(|buffer| {
            buffer.resize(WINDOW, 0);
            for mut window in group {
                if !window.place(source, pages, buffer) {
                    let mut failed = failed.lock().unwrap_or_else(PoisonError::into_inner);
                    failed.push(window);
                }
            }
        });
        Ok::<(), Infallible>(())
    });
    let Ok(()) = placed;
    failed.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `runs` of `source`, one after the other, into `buffer` (of their
/// total length): runs that follow each other closely in one request.
fn read_runs<S: ByteSource + ?Sized>(
    source: &S,
    runs: &[Range<u64>],
    buffer: &mut [u8],
) -> io::Result<()> {
    let mut rest = buffer;
    let mut runs = runs.iter().peekable();
    while let Some(first) = runs.next() {
        let mut end = first.start;
        let mut parts = Vec::new();
        let mut run = Some(first);
        while let Some(next) = run {
            if next.start > end {
                parts.push(Part::Skip((next.start - end) as usize));
            }
            let (keep, tail) =
                std::mem::take(&mut rest).split_at_mut((next.end - next.start) as usize);
            parts.push(Part::Keep(keep));
            rest = tail;
            end = next.end;
            run = runs.next_if(|run| run.start >= end && run.start - end <= MAX_GAP);
        }
        source.read_parts_at(first.start, &mut parts)?;
    }
    Ok(())
}

/// `dest` filled from `runs` as plain reads, one a run.
fn plain_jobs(job: usize, dest: &mut [u8], runs: Vec<Range<u64>>) -> Vec<(usize, ReadJob<'_>)> {
    let mut rest = dest;
    runs.into_iter()
        .map(|run| {
            let (dest, tail) =
                std::mem::take(&mut rest).split_at_mut((run.end - run.start) as usize);
            rest = tail;
            (
                job,
                ReadJob {
                    offset: run.start,
                    dest,
                },
            )
        })
        .collect()
}

/// A job's runs, handed out a number of destination bytes at a time.
struct Runs {
    runs: std::vec::IntoIter<Range<u64>>,
    current: Option<Range<u64>>,
}

impl Runs {
    fn new(runs: Vec<Range<u64>>) -> Self {
        Self {
            runs: runs.into_iter(),
            current: None,
        }
    }

    /// The source ranges of the next `len` destination bytes.
    fn take(&mut self, mut len: usize) -> Vec<Range<u64>> {
        let mut taken = Vec::new();
        while len > 0 {
            let Some(run) = self.current.take().or_else(|| self.runs.next()) else {
                break;
            };
            let cut = run.start + (len as u64).min(run.end - run.start);
            len -= (cut - run.start) as usize;
            if cut > run.start {
                taken.push(run.start..cut);
            }
            if cut < run.end {
                self.current = Some(cut..run.end);
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use memmap2::MmapMut;

    use super::*;

    const LINUX_UFFD: bool = cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ));

    fn source(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn fresh_pages() -> Option<FreshPages> {
        let pages = FreshPages::new();
        assert!(
            pages.is_some() || !LINUX_UFFD,
            "userfaultfd should be available on this system"
        );
        pages
    }

    #[test]
    fn pages_are_placed_once_and_untouched_ones_fault_in_after() {
        let Some(pages) = fresh_pages() else { return };
        let page = page_size();
        let mut fresh = MmapMut::map_anon(4 * page).unwrap();
        assert!(pages.register(&mut fresh[..3 * page]));
        let data = source(2 * page);
        assert_eq!(pages.place(&data, &mut fresh[..2 * page]), 2 * page);
        // A page already there is refused, not overwritten.
        assert_eq!(pages.place(&data[..page], &mut fresh[page..2 * page]), 0);
        drop(pages);
        assert!(fresh[..2 * page] == data[..]);
        // Registered but never placed: an ordinary zeroed page once dropped.
        assert!(fresh[2 * page..].iter().all(|&byte| byte == 0));
    }

    #[test]
    fn fresh_memory_is_placed_and_written_memory_read_the_usual_way() {
        let Some(pages) = fresh_pages() else { return };
        let data = source(4 << 20);
        let mut fresh = MmapMut::map_anon(3 << 20).unwrap();
        let mut written = vec![1u8; 3 << 20];
        let mut windows = Vec::new();
        let mut plain = Vec::new();
        for (job, dest) in [&mut fresh[100..], &mut written[..]]
            .into_iter()
            .enumerate()
        {
            assert_eq!(placeable(dest), job == 0);
            let pages = placeable(dest).then_some(&pages);
            split(
                job,
                GatherJob::whole(7, dest),
                pages,
                &mut windows,
                &mut plain,
            );
        }
        // Small destinations are not worth it.
        assert!(!placeable(&MmapMut::map_anon(MIN_PLACED - 1).unwrap()));
        // The fresh map's whole pages are placed, the partial pages at its
        // edges read; memory already written is read, not registered.
        assert_eq!(windows.len(), (3 << 20) / WINDOW);
        assert!(windows.iter().all(|window| window.job == 0));
        let (edges, written): (Vec<_>, Vec<_>) = plain.iter().partition(|(job, _)| *job == 0);
        assert!(edges.iter().all(|(_, read)| read.dest.len() < page_size()));
        assert_eq!(written.len(), 1);
        assert!(place(&data[..], &pages, windows, 2).is_empty());
        drop(pages);
        // The map's first page holds the destination's partial head page.
        let page = page_size();
        assert!(fresh[page..] == data[7 + page - 100..7 + (3 << 20) - 100]);
    }

    #[test]
    fn every_job_lands_where_it_belongs() {
        let data = source(8 << 20);
        for threads in [1, 2, 3] {
            let mut whole = MmapMut::map_anon(3 << 20).unwrap();
            let mut columns = MmapMut::map_anon(2000 * 1000).unwrap();
            let mut small = vec![0u8; 10];
            let mut written = vec![1u8; 1 << 20];
            let whole_len = (3 << 20) - 100;
            let jobs = vec![
                GatherJob::whole(3, &mut whole[100..]),
                // A column slice: short runs with gaps between them.
                GatherJob {
                    runs: (0..2000u64)
                        .map(|row| row * 4000 + 11..row * 4000 + 1011)
                        .collect(),
                    dest: &mut columns[..],
                },
                GatherJob {
                    runs: vec![5..10, 20..25],
                    dest: &mut small,
                },
                GatherJob::whole(1, &mut written),
            ];
            read_fresh(&data[..], jobs, threads).unwrap();
            assert!(whole[100..] == data[3..3 + whole_len], "threads {threads}");
            for (row, run) in columns.chunks(1000).enumerate() {
                assert!(
                    run == &data[row * 4000 + 11..row * 4000 + 1011],
                    "row {row}"
                );
            }
            assert_eq!(small, [&data[5..10], &data[20..25]].concat());
            assert!(written == data[1..=(1 << 20)]);
        }
    }

    #[test]
    fn failures_name_their_job() {
        let data = source(2 << 20);
        let mut fresh = MmapMut::map_anon(1 << 20).unwrap();
        let mut small = vec![0u8; 10];
        // The source ends inside the second job's run.
        let jobs = vec![
            GatherJob::whole(0, &mut small),
            GatherJob::whole((2 << 20) - 100, &mut fresh),
        ];
        let err = read_fresh(&data[..], jobs, 2).unwrap_err();
        assert_eq!(
            (err.job, err.source.kind()),
            (1, io::ErrorKind::UnexpectedEof)
        );

        let mut dest = vec![0u8; 10];
        let jobs = vec![GatherJob {
            runs: vec![0..4, 4..8],
            dest: &mut dest,
        }];
        let err = read_fresh(&data[..], jobs, 1).unwrap_err();
        assert_eq!(
            (err.job, err.source.kind()),
            (0, io::ErrorKind::InvalidInput)
        );
        assert_eq!(
            err.source.to_string(),
            "the runs do not add up to the destination's length"
        );
    }

    #[test]
    fn runs_are_handed_out_by_destination_bytes() {
        let ranges = |pairs: &[(u64, u64)]| -> Vec<Range<u64>> {
            pairs.iter().map(|&(start, end)| start..end).collect()
        };
        let mut runs = Runs::new(ranges(&[(0, 10), (20, 25), (30, 30), (40, 50)]));
        assert_eq!(runs.take(4), ranges(&[(0, 4)]));
        assert_eq!(runs.take(8), ranges(&[(4, 10), (20, 22)]));
        assert_eq!(runs.take(0), []);
        assert_eq!(runs.take(100), ranges(&[(22, 25), (40, 50)]));
        assert_eq!(runs.take(1), []);
    }
}
