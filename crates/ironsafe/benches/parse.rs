//! Parsing and validating headers: the cost of opening a file before any
//! tensor byte is read, for files of up to 100,000 tensors (adapters, and
//! models split into many small tensors).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ironsafe::{Dtype, Header, ReadOptions, SafeTensors, TensorView, WriteOptions, serialize};

/// A file of `count` tiny F32 tensors with names like a model's.
fn many_tensors(count: usize) -> Vec<u8> {
    let data = [0u8; 16];
    let names: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "model.layers.{}.self_attn.q_proj.lora_{}.weight",
                i / 2,
                i % 2
            )
        })
        .collect();
    let views = names.iter().map(|name| {
        let view = TensorView::new(Dtype::F32, &[2, 2], &data).expect("16 bytes for 2x2 F32");
        (name.as_str(), view)
    });
    serialize(views, None, &WriteOptions::default()).expect("the tensors are valid")
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for count in [100, 10_000, 100_000] {
        let file = many_tensors(count);
        let header_len = Header::parse(&file, &ReadOptions::default())
            .expect("a valid file")
            .header_len();
        group.throughput(Throughput::Bytes(header_len as u64));
        group.bench_with_input(BenchmarkId::new("header", count), &file, |b, file| {
            b.iter(|| Header::parse(file, &ReadOptions::default()).expect("a valid file"));
        });
        group.bench_with_input(BenchmarkId::new("lookup_all", count), &file, |b, file| {
            let tensors = SafeTensors::deserialize(&file[..]).expect("a valid file");
            let names: Vec<&str> = tensors.names().collect();
            b.iter(|| {
                for name in &names {
                    tensors.tensor(name).expect("listed by the file");
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
