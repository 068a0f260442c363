//! The reader API: lookups, orders, metadata, maps and byte sources.

mod common;

use common::raw_file;
use ironsafe::{
    Dtype, Error, Header, ReadOptions, SafeTensors, TensorView, WriteOptions, serialize,
};

fn sample() -> Vec<u8> {
    let (a, b, c) = ([1u8; 8], [2u8; 2], [3u8; 12]);
    let tensors = [
        ("b.weight", TensorView::new(Dtype::F16, &[1], &b).unwrap()),
        ("a.weight", TensorView::new(Dtype::I64, &[1], &a).unwrap()),
        ("c", TensorView::new(Dtype::U8, &[3, 4], &c).unwrap()),
    ];
    let metadata = [("format".to_owned(), "pt".to_owned())].into();
    serialize(tensors, Some(&metadata), &WriteOptions::default()).unwrap()
}

#[test]
fn lookups_and_orders() {
    let bytes = sample();
    let file = SafeTensors::deserialize(&bytes[..]).unwrap();
    assert_eq!(file.len(), 3);
    assert_eq!(file.metadata().unwrap()["format"], "pt");
    assert_eq!(
        file.names().collect::<Vec<_>>(),
        ["a.weight", "b.weight", "c"]
    );
    let file_order: Vec<&str> = file.tensors().map(|(name, _)| name).collect();
    assert_eq!(file_order, ["a.weight", "b.weight", "c"]);
    let c = file.tensor("c").unwrap();
    assert_eq!(
        (c.dtype(), c.shape(), c.data()),
        (Dtype::U8, &[3, 4][..], &[3u8; 12][..])
    );
    let err = file.tensor("d").unwrap_err();
    assert_eq!(err.to_string(), "no tensor named `d`");
    let info = file.header().get("b.weight").unwrap();
    assert_eq!((info.data_offsets, info.byte_len()), ((8, 10), 2));
}

#[test]
fn views_borrow_the_buffer() {
    let bytes = sample();
    let file = SafeTensors::deserialize(&bytes[..]).unwrap();
    let data = file.tensor("c").unwrap().data();
    let inside = bytes.as_ptr_range();
    assert!(
        inside.contains(&data.as_ptr()),
        "the view must point into the input, not a copy"
    );
}

#[test]
fn owned_buffers_work_too() {
    let file = SafeTensors::deserialize(sample()).unwrap();
    assert_eq!(file.tensor("a.weight").unwrap().data(), &[1u8; 8]);
    assert_eq!(file.into_inner(), sample());
}

#[test]
fn files_are_mapped_and_errors_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, sample()).unwrap();
    let file = SafeTensors::open(&path).unwrap();
    assert_eq!(file.tensor("b.weight").unwrap().data(), &[2u8; 2]);

    let missing = dir.path().join("missing.safetensors");
    let err = SafeTensors::open(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot open `{}`: ", missing.display()))
    );

    for (contents, problem) in [
        (vec![], "too short"),
        (raw_file("{}", 3), "data section is 3 bytes"),
    ] {
        std::fs::write(&path, &contents).unwrap();
        let err = SafeTensors::open(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("`{}`: ", path.display())),
            "{text}"
        );
        assert!(text.contains(problem), "{text}");
        assert!(!matches!(err.problem(), Error::InFile { .. }));
    }
}

#[test]
fn headers_read_from_a_file_without_reading_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, sample()).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let header = Header::read_from(&file, &ReadOptions::default()).unwrap();
    let bytes = sample();
    assert_eq!(
        header,
        *SafeTensors::deserialize(&bytes[..]).unwrap().header()
    );
    assert_eq!(header.data_start() + header.data_len(), bytes.len());
    assert_eq!(header.header_len() % 8, 0);
}

#[test]
fn slices_read_from_a_source_equal_slices_in_memory() {
    use ironsafe::{ByteSource, SliceIndex};

    let bytes = sample();
    let header = Header::read_from(&bytes[..], &ReadOptions::default()).unwrap();
    let info = header.get("c").unwrap();
    let indices = [
        SliceIndex::Range {
            start: 0,
            stop: 3,
            step: 2,
        },
        SliceIndex::Range {
            start: 1,
            stop: 3,
            step: 1,
        },
    ];
    let ranges = info.slice_ranges(&indices).unwrap();
    assert_eq!(ranges.shape(), &[2, 2]);
    let start = (header.data_start() + info.data_offsets.0) as u64;
    let mut read = Vec::new();
    for run in ranges {
        let mut buf = vec![0; run.len()];
        bytes[..]
            .read_exact_at(start + run.start as u64, &mut buf)
            .unwrap();
        read.extend_from_slice(&buf);
    }
    let file = SafeTensors::deserialize(&bytes[..]).unwrap();
    let in_memory = file.tensor("c").unwrap().slice(&indices).unwrap().to_vec();
    assert_eq!(read, in_memory);
    assert_eq!(read.len(), 4);
}

/// A 1 TiB tensor in a sparse file (holes cost no disk): the file maps and
/// slices lazily, touching only the pages a slice selects.
#[test]
fn a_sparse_terabyte_file_maps_and_slices_lazily() {
    use ironsafe::SliceIndex;
    use std::io::{Seek, SeekFrom, Write};

    let size = 1usize << 40;
    let json = format!(r#"{{"big":{{"dtype":"U8","shape":[{size}],"data_offsets":[0,{size}]}}}}"#);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    file.write_all(&raw_file(&json, 0)).unwrap();
    let data_start = 8 + json.len() as u64;
    file.seek(SeekFrom::Start(data_start + (1 << 39))).unwrap();
    file.write_all(&[1, 2, 3]).unwrap();
    file.set_len(data_start + size as u64).unwrap();

    let mapped = SafeTensors::open(&path).unwrap();
    let big = mapped.tensor("big").unwrap();
    assert_eq!(big.shape(), &[size]);
    let middle = big
        .slice(&[SliceIndex::Range {
            start: (1 << 39) - 1,
            stop: (1 << 39) + 4,
            step: 1,
        }])
        .unwrap();
    assert_eq!(middle.to_vec(), [0, 1, 2, 3, 0]);
    let header = Header::read_from(&file, &ReadOptions::default()).unwrap();
    assert_eq!(header.data_len(), size);
}
