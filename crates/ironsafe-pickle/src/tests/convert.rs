//! Whole conversions to a file: sharing, metadata, strictness, verification.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ironsafe::SafeTensors;

use crate::opcodes as op;
use crate::testing::{Pickler, Tensor, floats, zip_checkpoint};
use crate::{ConvertOptions, Error, convert};

struct Files {
    _dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
}

fn files(checkpoint: &[u8]) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.pt");
    std::fs::write(&src, checkpoint).unwrap();
    let dst = dir.path().join("model.safetensors");
    Files {
        _dir: dir,
        src,
        dst,
    }
}

/// Each tensor's name, shape and bytes.
type Named = Vec<(String, Vec<usize>, Vec<u8>)>;

fn read(path: &Path) -> (BTreeMap<String, String>, Named) {
    let file = SafeTensors::open(path).unwrap();
    let tensors = file
        .tensors_by_name()
        .map(|(name, view)| (name.to_owned(), view.shape().to_vec(), view.data().to_vec()))
        .collect();
    (file.metadata().cloned().unwrap_or_default(), tensors)
}

/// Tied weights (two complete, identical views), a partial view, a
/// transpose of the whole storage, and an int leaf.
fn shared() -> Vec<u8> {
    let weight = Tensor::f32("0", 6, &[2, 3]);
    let pickle = Pickler::new()
        .state_dict(&[
            ("lm_head.weight", weight.clone()),
            ("embed.weight", weight.clone()),
            ("embed.first_row", weight.view(0, &[3], &[1])),
            ("embed.transposed", weight.view(0, &[3, 2], &[1, 3])),
            ("bias", Tensor::f32("1", 2, &[2])),
        ])
        .stop();
    let mut with_leaf = pickle;
    with_leaf.pop();
    let with_leaf = Pickler(with_leaf).str("step").int(7).op(op::SETITEM).stop();
    let six = floats(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    zip_checkpoint(&with_leaf, &[("0", &six), ("1", &floats(&[7.0, 8.0]))])
}

#[test]
fn shared_storages_are_written_once_and_views_copied() {
    let files = files(&shared());
    let report = convert(&files.src, &files.dst, &ConvertOptions::default()).unwrap();
    assert_eq!(
        report.tensors,
        [
            "bias",
            "embed.first_row",
            "embed.transposed",
            "embed.weight"
        ]
    );
    let removed = BTreeMap::from([("lm_head.weight".to_owned(), "embed.weight".to_owned())]);
    assert_eq!(report.removed, removed);
    assert_eq!(report.skipped, ["step"]);

    let (metadata, tensors) = read(&files.dst);
    let mut expected_metadata = removed;
    expected_metadata.insert("format".into(), "pt".into());
    assert_eq!(metadata, expected_metadata);
    let expected = [
        ("bias", vec![2], floats(&[7.0, 8.0])),
        ("embed.first_row", vec![3], floats(&[0.0, 1.0, 2.0])),
        (
            "embed.transposed",
            vec![3, 2],
            floats(&[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]),
        ),
        (
            "embed.weight",
            vec![2, 3],
            floats(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        ),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(name, shape, data)| (name.to_owned(), shape, data))
        .collect();
    assert_eq!(tensors, expected);
}

#[test]
fn strict_refuses_non_tensor_entries_and_writes_nothing() {
    let files = files(&shared());
    let options = ConvertOptions::default().strict(true);
    let err = convert(&files.src, &files.dst, &options).unwrap_err();
    assert!(matches!(err.problem(), Error::NonTensorEntries(names) if names == &["step"]));
    assert!(
        err.to_string()
            .ends_with("1 entries are not tensors (strict): step"),
        "{err}"
    );
    assert!(!files.dst.exists());
}

#[test]
fn a_key_selects_a_sub_dict() {
    let pickle = Pickler::new()
        .op(op::EMPTY_DICT)
        .str("state_dict")
        .state_dict(&[("w", Tensor::f32("0", 1, &[1]))])
        .op(op::SETITEM)
        .str("epoch")
        .int(1)
        .op(op::SETITEM)
        .stop();
    let files = files(&zip_checkpoint(&pickle, &[("0", &floats(&[3.0]))]));
    let options = ConvertOptions {
        key: Some("state_dict".into()),
        strict: true,
        verify: false,
    };
    let report = convert(&files.src, &files.dst, &options).unwrap();
    assert_eq!(
        (report.tensors, report.skipped),
        (vec!["w".to_owned()], vec![])
    );
    assert_eq!(read(&files.dst).1[0].2, floats(&[3.0]));
}

#[test]
fn refused_checkpoints_leave_no_output() {
    let pickle = Pickler::new()
        .global("os", "system")
        .str("touch pwned")
        .op(op::TUPLE1)
        .op(op::REDUCE)
        .stop();
    let files = files(&zip_checkpoint(&pickle, &[]));
    let err = convert(&files.src, &files.dst, &ConvertOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "`{}`: in `archive/data.pkl`: refused global `os.system`",
            files.src.display()
        )),
        "{message}"
    );
    assert!(!files.dst.exists());

    let missing = files.src.with_file_name("missing.pt");
    let err = convert(&missing, &files.dst, &ConvertOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "cannot open",
                ..
            }
        ),
        "{err}"
    );
    std::fs::write(&missing, b"").unwrap();
    let err = convert(&missing, &files.dst, &ConvertOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("not a PyTorch checkpoint: the file is empty")
    );
}
