//! Slicing: the runs a tensor-parallel rank reads, planned from the header
//! ([`SliceRanges`](ironsafe::SliceRanges)) and gathered from memory
//! ([`SliceIter`](ironsafe::SliceIter)).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ironsafe::{Dtype, SliceIndex, TensorInfo, TensorView};

fn slice(c: &mut Criterion) {
    let mut group = c.benchmark_group("slice");
    // A 4096 x 4096 BF16 matrix (32 MiB), rank 0 of 4.
    let shape = [4096usize, 4096];
    let data = vec![1u8; 4096 * 4096 * 2];
    let matrix = TensorView::new(Dtype::BF16, &shape, &data).expect("sized for BF16");
    let info = TensorInfo {
        name: "weight".into(),
        dtype: Dtype::BF16,
        shape: shape.to_vec(),
        data_offsets: (0, data.len()),
    };
    let slices = [
        ("rows", vec![SliceIndex::from(0..1024)]),
        ("columns", vec![SliceIndex::All, SliceIndex::from(0..1024)]),
        (
            "every_other_column",
            vec![
                SliceIndex::All,
                SliceIndex::Range {
                    start: 0,
                    stop: 4096,
                    step: 2,
                },
            ],
        ),
    ];
    for (name, indices) in &slices {
        let bytes = matrix.slice(indices).expect("in range").remaining_bytes();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("ranges", name), indices, |b, indices| {
            b.iter(|| {
                let ranges = info.slice_ranges(indices).expect("in range");
                ranges.map(|run| run.len()).sum::<usize>()
            });
        });
        group.bench_with_input(BenchmarkId::new("gather", name), indices, |b, indices| {
            b.iter(|| matrix.slice(indices).expect("in range").to_vec());
        });
    }
    group.finish();
}

criterion_group!(benches, slice);
criterion_main!(benches);
