//! Writing files: laying out the header and streaming tensor bytes, for a
//! few large tensors (a model) and for many small ones (an adapter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ironsafe::{Dtype, Layout, TensorView, WriteOptions};

fn serialize(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialize");
    // (tensors, bytes each): 64 MiB in large tensors, and 20,000 tiny ones.
    for (count, size) in [(16usize, 4usize << 20), (20_000, 64)] {
        let data = vec![7u8; size];
        let shape = [size / 2];
        let names: Vec<String> = (0..count).map(|i| format!("tensor.{i}")).collect();
        let views: Vec<(&str, TensorView<'_>)> = names
            .iter()
            .map(|name| {
                let view = TensorView::new(Dtype::BF16, &shape, &data).expect("sized for BF16");
                (name.as_str(), view)
            })
            .collect();
        let mut out = Vec::with_capacity(count * size + (1 << 20));
        group.throughput(Throughput::Bytes((count * size) as u64));
        let id = format!("{count}x{size}B");
        group.bench_function(BenchmarkId::new("layout", &id), |b| {
            b.iter(|| {
                Layout::new(views.iter().copied(), None, &WriteOptions::default())
                    .expect("valid tensors")
            });
        });
        group.bench_function(BenchmarkId::new("layout_and_write", &id), |b| {
            b.iter(|| {
                out.clear();
                Layout::new(views.iter().copied(), None, &WriteOptions::default())
                    .expect("valid tensors")
                    .write_to(&mut out)
                    .expect("writing to memory succeeds");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, serialize);
criterion_main!(benches);
