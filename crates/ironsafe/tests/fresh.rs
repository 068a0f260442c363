//! `read_fresh` against a naive gather: whatever the runs (lengths, gaps,
//! order), the destinations (fresh maps at any offset, or written memory),
//! the source (memory or a file) and the threads, every destination holds
//! exactly its runs' bytes, one after the other.

use std::io::Write;
use std::ops::Range;

use ironsafe::{GatherJob, read_fresh};
use memmap2::MmapMut;
use proptest::prelude::*;

const SOURCE: usize = 6 << 20;

fn source() -> Vec<u8> {
    (0..SOURCE).map(|i| (i * 13 % 251) as u8).collect()
}

/// Runs from `start`: each `(gap, len)` passes over `gap` bytes, then keeps
/// `len`, as long as the source lasts.
fn runs(start: usize, pieces: &[(usize, usize)]) -> Vec<Range<u64>> {
    let mut at = start;
    let mut runs = Vec::new();
    for &(gap, len) in pieces {
        let begin = at + gap;
        if begin + len > SOURCE {
            break;
        }
        runs.push(begin as u64..(begin + len) as u64);
        at = begin + len;
    }
    runs
}

fn gathered(data: &[u8], runs: &[Range<u64>]) -> Vec<u8> {
    runs.iter()
        .flat_map(|run| &data[run.start as usize..run.end as usize])
        .copied()
        .collect()
}

fn pieces() -> impl Strategy<Value = Vec<(usize, usize)>> {
    // Long runs (whole tensors) and short ones with gaps (column slices).
    prop_oneof![
        prop::collection::vec((0usize..16, 1usize..(1 << 20)), 1..4),
        prop::collection::vec((0usize..40_000, 1usize..5000), 1..400),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(48) })]

    #[test]
    fn destinations_hold_their_runs(
        jobs in prop::collection::vec((0usize..(1 << 20), pieces(), 0usize..8192, any::<bool>()), 1..4),
        threads in 1usize..4,
        from_file in any::<bool>(),
    ) {
        let data = source();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let plans: Vec<(Vec<Range<u64>>, usize, bool)> = jobs
            .into_iter()
            .map(|(start, pieces, offset, fresh)| (runs(start, &pieces), offset, fresh))
            .collect();
        // Each destination: a fresh map (at an offset inside it), or memory
        // already written.
        let mut maps: Vec<MmapMut> = Vec::new();
        let mut written: Vec<Vec<u8>> = Vec::new();
        for (runs, offset, fresh) in &plans {
            let len: u64 = runs.iter().map(|run| run.end - run.start).sum();
            if *fresh {
                maps.push(MmapMut::map_anon(offset + len as usize + 1).unwrap());
            } else {
                written.push(vec![0xAB; len as usize]);
            }
        }
        {
            let (mut maps, mut written) = (maps.iter_mut(), written.iter_mut());
            let jobs: Vec<GatherJob<'_>> = plans
                .iter()
                .map(|(runs, offset, fresh)| {
                    let len = runs.iter().map(|run| (run.end - run.start) as usize).sum::<usize>();
                    let dest = if *fresh {
                        &mut maps.next().unwrap()[*offset..offset + len]
                    } else {
                        &mut written.next().unwrap()[..]
                    };
                    GatherJob { runs: runs.clone(), dest }
                })
                .collect();
            if from_file {
                read_fresh(&file, jobs, threads).unwrap();
            } else {
                read_fresh(&data[..], jobs, threads).unwrap();
            }
        }
        let (mut maps, mut written) = (maps.iter(), written.iter());
        for (runs, offset, fresh) in &plans {
            let expected = gathered(&data, runs);
            let got: &[u8] = if *fresh {
                &maps.next().unwrap()[*offset..offset + expected.len()]
            } else {
                written.next().unwrap()
            };
            prop_assert!(got == &expected[..], "{} runs from {:?}", runs.len(), runs.first());
        }
    }
}
