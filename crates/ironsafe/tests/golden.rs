//! ironsafe writes the same bytes as the reference. The fixtures beside this
//! file were written by Hugging Face's `safetensors` 0.8.0 (see
//! `fixtures/make_fixtures.py`); re-serializing what ironsafe reads from each
//! must give back the file exactly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ironsafe::{
    Dtype, Metadata, SafeTensors, TensorView, WriteOptions, serialize, serialize_to_file,
};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "safetensors"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing: {files:?}");
    files
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

#[test]
fn every_fixture_is_rewritten_byte_for_byte() {
    let scratch = tempfile::tempdir().unwrap();
    for path in fixtures() {
        let original = std::fs::read(&path).unwrap();
        let file = SafeTensors::open(&path).unwrap();
        let name = path.file_name().unwrap();

        // File order in, and name order in: the writer's order is its own.
        let rewritten =
            serialize(file.tensors(), file.metadata(), &WriteOptions::default()).unwrap();
        assert!(
            rewritten == original,
            "{name:?} differs from the reference's bytes"
        );
        let by_name = serialize(
            file.tensors_by_name(),
            file.metadata(),
            &WriteOptions::default(),
        )
        .unwrap();
        assert!(by_name == original, "{name:?} depends on input order");

        let out = scratch.path().join(name);
        serialize_to_file(
            file.tensors(),
            file.metadata(),
            &out,
            &WriteOptions::default(),
        )
        .unwrap();
        assert!(
            std::fs::read(&out).unwrap() == original,
            "{name:?} differs when written to a path"
        );
    }
}

#[test]
fn fixtures_cover_every_dtype() {
    let mut seen = BTreeSet::new();
    for path in fixtures() {
        let file = SafeTensors::open(&path).unwrap();
        seen.extend(file.tensors().map(|(_, view)| view.dtype()));
    }
    assert_eq!(seen, Dtype::ALL.into_iter().collect());
}

#[test]
fn the_contract_example_i32_zeros() {
    let zeros = [0u8; 16];
    let view = TensorView::new(Dtype::I32, &[2, 2], &zeros).unwrap();
    let bytes = serialize([("test", view)], None, &WriteOptions::default()).unwrap();

    let mut expected = 64u64.to_le_bytes().to_vec();
    expected
        .extend_from_slice(br#"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    "#);
    expected.extend_from_slice(&zeros);
    assert_eq!(bytes, expected);
    assert_eq!(bytes, fixture("i32_zeros.safetensors"));
}

#[test]
fn the_empty_file() {
    let bytes = serialize(
        Vec::<(&str, TensorView<'_>)>::new(),
        None,
        &WriteOptions::default(),
    )
    .unwrap();
    assert_eq!(bytes, b"\x08\0\0\0\0\0\0\0{}      ");
    assert_eq!(bytes, fixture("empty.safetensors"));
}

#[test]
fn metadata_without_tensors() {
    let metadata = Metadata::from([("format".to_owned(), "pt".to_owned())]);
    let none: [(&str, TensorView<'_>); 0] = [];
    let bytes = serialize(none, Some(&metadata), &WriteOptions::default()).unwrap();
    assert_eq!(bytes, fixture("metadata_only.safetensors"));
}
