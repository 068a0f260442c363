//! Checkpoints: both formats, storages, views, flattening and every refusal.

use std::borrow::Cow;

use ironsafe::{Dtype, View};

use crate::machine::Limits;
use crate::opcodes as op;
use crate::testing::{Pickler, Tensor, floats, legacy_checkpoint, stored, zip, zip_checkpoint};
use crate::{Checkpoint, Error};

fn open(bytes: Vec<u8>, key: Option<&str>) -> Checkpoint<Vec<u8>> {
    Checkpoint::from_buffer(bytes, key).unwrap_or_else(|err| panic!("{err}"))
}

fn error(bytes: Vec<u8>) -> String {
    Checkpoint::from_buffer(bytes, None)
        .unwrap_err()
        .to_string()
}

/// Each tensor's name, shape and row-major values.
fn values(checkpoint: &Checkpoint<Vec<u8>>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    checkpoint
        .tensors()
        .iter()
        .map(|tensor| {
            let view = checkpoint.data(tensor);
            let data = view.data();
            let values = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (tensor.name().to_owned(), tensor.shape().to_vec(), values)
        })
        .collect()
}

const SIX: [f32; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];

/// A matrix, its transpose, a column and an offset slice of one storage.
fn views() -> Vec<(&'static str, Tensor)> {
    let matrix = Tensor::f32("0", 6, &[2, 3]);
    vec![
        ("matrix", matrix.clone()),
        ("transposed", matrix.view(0, &[3, 2], &[1, 3])),
        ("column", matrix.view(1, &[2], &[3])),
        ("tail", matrix.view(2, &[4], &[1])),
        ("expanded", matrix.view(5, &[2, 2], &[0, 0])),
    ]
}

fn expected_views() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    vec![
        ("matrix".into(), vec![2, 3], SIX.to_vec()),
        (
            "transposed".into(),
            vec![3, 2],
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
        ),
        ("column".into(), vec![2], vec![1.0, 4.0]),
        ("tail".into(), vec![4], vec![2.0, 3.0, 4.0, 5.0]),
        ("expanded".into(), vec![2, 2], vec![5.0; 4]),
    ]
}

#[test]
fn zip_checkpoints_give_row_major_views() {
    let pickle = Pickler::new().state_dict(&views()).stop();
    let checkpoint = open(zip_checkpoint(&pickle, &[("0", &floats(&SIX))]), None);
    assert_eq!(values(&checkpoint), expected_views());
    let tensors = checkpoint.tensors();
    assert!(tensors[0].is_contiguous() && tensors[0].is_complete());
    assert!(!tensors[1].is_contiguous() && tensors[1].is_complete());
    assert!(tensors[3].is_contiguous() && !tensors[3].is_complete());
    assert_eq!(
        (
            tensors[3].storage_key(),
            tensors[3].storage_offset(),
            tensors[3].strides()
        ),
        ("0", 2, &[1][..])
    );
    // Contiguous tensors are borrowed from the file, strided ones gathered.
    assert!(matches!(
        checkpoint.data(&tensors[0]).data(),
        Cow::Borrowed(_)
    ));
    assert!(matches!(checkpoint.data(&tensors[1]).data(), Cow::Owned(_)));
    assert_eq!(checkpoint.data(&tensors[1]).data_len(), 24);
    assert!(checkpoint.skipped().is_empty());
}

#[test]
fn legacy_checkpoints_read_alike() {
    let legacy: Vec<_> = views()
        .into_iter()
        .map(|(name, t)| (name, Tensor { legacy: true, ..t }))
        .collect();
    let pickle = Pickler::new().state_dict(&legacy).stop();
    let bytes = legacy_checkpoint(true, &pickle, &[("0", 6, &floats(&SIX))]);
    assert_eq!(values(&open(bytes, None)), expected_views());
}

#[test]
fn every_storage_type_maps_to_its_dtype() {
    let cases = [
        ("DoubleStorage", Dtype::F64, 8),
        ("FloatStorage", Dtype::F32, 4),
        ("HalfStorage", Dtype::F16, 2),
        ("BFloat16Storage", Dtype::BF16, 2),
        ("LongStorage", Dtype::I64, 8),
        ("IntStorage", Dtype::I32, 4),
        ("ShortStorage", Dtype::I16, 2),
        ("CharStorage", Dtype::I8, 1),
        ("ByteStorage", Dtype::U8, 1),
        ("BoolStorage", Dtype::BOOL, 1),
        ("ComplexFloatStorage", Dtype::C64, 8),
        ("UntypedStorage", Dtype::U8, 1),
    ];
    for (class, dtype, size) in cases {
        let tensor = Tensor {
            class,
            ..Tensor::f32("0", 3, &[3])
        };
        let pickle = Pickler::new().state_dict(&[("t", tensor)]).stop();
        let data = vec![1; 3 * size];
        let checkpoint = open(zip_checkpoint(&pickle, &[("0", &data)]), None);
        let tensor = &checkpoint.tensors()[0];
        assert_eq!(
            (tensor.dtype(), tensor.byte_len()),
            (dtype, 3 * size),
            "{class}"
        );
    }
}

#[test]
fn types_safetensors_lacks_are_refused_by_tensor_name() {
    let tensor = Tensor {
        class: "ComplexDoubleStorage",
        ..Tensor::f32("0", 1, &[1])
    };
    let pickle = Pickler::new().state_dict(&[("z", tensor)]).stop();
    assert_eq!(
        error(zip_checkpoint(&pickle, &[("0", &[0; 16])])),
        "tensor `z`: dtype torch.complex128 has no safetensors equivalent"
    );
}

#[test]
fn views_must_stay_inside_their_storage() {
    let base = Tensor::f32("0", 6, &[2, 3]);
    let cases = [
        (
            base.view(1, &[2, 3], &[3, 1]),
            "reaches byte 28 of storage `0`, which has 24 bytes",
        ),
        (
            base.view(0, &[2, 3], &[4, 1]),
            "reaches byte 28 of storage `0`, which has 24 bytes",
        ),
        (
            base.view(6, &[1], &[1]),
            "reaches byte 28 of storage `0`, which has 24 bytes",
        ),
        (
            base.view(0, &[u64::MAX / 2, 4], &[1, 1]),
            "the size, stride or offset overflows",
        ),
        (
            base.view(0, &[2, 2], &[u64::MAX / 2, 1]),
            "the size, stride or offset overflows",
        ),
    ];
    for (tensor, message) in cases {
        let pickle = Pickler::new().state_dict(&[("w", tensor)]).stop();
        let err = error(zip_checkpoint(&pickle, &[("0", &floats(&SIX))]));
        assert!(
            err.starts_with("tensor `w`: ") && err.ends_with(message),
            "{err}"
        );
    }
    // A stride of 0 may repeat elements, but not into more than 1 GiB.
    let expanded = base.view(0, &[1 << 28, 2], &[0, 1]);
    let pickle = Pickler::new().state_dict(&[("x", expanded)]).stop();
    assert_eq!(
        error(zip_checkpoint(&pickle, &[("0", &floats(&SIX))])),
        "tensor `x`: the view repeats the 24 bytes of storage `0` into 2147483648 bytes, more \
         than the 1073741824 bytes allowed"
    );
    // An empty view reads nothing, wherever it points.
    let empty = base.view(100, &[0, 3], &[3, 1]);
    let pickle = Pickler::new().state_dict(&[("e", empty)]).stop();
    let checkpoint = open(zip_checkpoint(&pickle, &[("0", &floats(&SIX))]), None);
    assert!(checkpoint.data(&checkpoint.tensors()[0]).data().is_empty());
}

#[test]
fn storages_must_hold_their_declared_size() {
    let pickle = Pickler::new()
        .state_dict(&[("w", Tensor::f32("0", 6, &[6]))])
        .stop();
    assert_eq!(
        error(zip_checkpoint(&pickle, &[("0", &[0; 20])])),
        "storage `0` declares 24 bytes but 20 bytes are stored"
    );
    assert_eq!(
        error(zip_checkpoint(&pickle, &[])),
        "storage `0` is referenced but not stored"
    );
    let twice = Pickler::new()
        .state_dict(&[
            ("a", Tensor::f32("0", 6, &[6])),
            ("b", Tensor::f32("0", 5, &[5])),
        ])
        .stop();
    assert_eq!(
        error(zip_checkpoint(&twice, &[("0", &[0; 24])])),
        "storage `0` is referenced as 6 x float32 and as 5 x float32"
    );
    let legacy = Pickler::new()
        .state_dict(&[(
            "w",
            Tensor {
                legacy: true,
                ..Tensor::f32("0", 6, &[6])
            },
        )])
        .stop();
    assert_eq!(
        error(legacy_checkpoint(true, &legacy, &[("0", 5, &[0; 20])])),
        "storage `0` declares 24 bytes but 20 bytes are stored"
    );
    assert_eq!(
        error(legacy_checkpoint(true, &legacy, &[("0", 6, &[0; 20])])),
        "not a PyTorch checkpoint: storage `0` runs past the end of the file"
    );
    assert_eq!(
        error(legacy_checkpoint(true, &legacy, &[("1", 6, &[0; 24])])),
        "storage `1` is referenced but not stored"
    );
}

#[test]
fn big_endian_checkpoints_are_refused() {
    let pickle = Pickler::new()
        .state_dict(&[("w", Tensor::f32("0", 1, &[1]))])
        .stop();
    let entries = [
        stored("archive/data.pkl", &pickle),
        stored("archive/byteorder", b"big"),
        stored("archive/data/0", &[0; 4]),
    ];
    let message = "the checkpoint was saved on a big-endian machine; only little-endian \
                   checkpoints are converted";
    assert_eq!(error(zip(&entries, false)), message);
    let legacy = Pickler::new()
        .state_dict(&[(
            "w",
            Tensor {
                legacy: true,
                ..Tensor::f32("0", 1, &[1])
            },
        )])
        .stop();
    assert_eq!(
        error(legacy_checkpoint(false, &legacy, &[("0", 1, &[0; 4])])),
        message
    );
}

#[test]
fn zip64_archives_and_other_roots_are_read() {
    let pickle = Pickler::new()
        .state_dict(&[("w", Tensor::f32("7", 2, &[2]))])
        .stop();
    let data = floats(&[1.0, 2.0]);
    let entries = [
        stored("my_model/data.pkl", &pickle),
        stored("my_model/.data/version", b"3"),
        stored("my_model/data/7", &data),
    ];
    let checkpoint = open(zip(&entries, true), None);
    assert_eq!(values(&checkpoint)[0].2, [1.0, 2.0]);
}

#[test]
fn archives_without_one_data_pkl_are_refused() {
    assert_eq!(
        error(zip(&[stored("a/other.pkl", b"")], false)),
        "the zip archive has no entry `<root>/data.pkl`"
    );
    let two = [stored("a/data.pkl", b"."), stored("b/data.pkl", b".")];
    assert_eq!(
        error(zip(&two, false)),
        "malformed zip archive: the archive has more than one data.pkl"
    );
    assert_eq!(
        error(b"\x80\x02}q\x00.".to_vec()),
        "not a PyTorch checkpoint: neither a zip archive nor a legacy torch.save stream"
    );
}

#[test]
fn pickle_errors_name_the_entry() {
    let pickle = Pickler::new().global("os", "system").stop();
    let err = Checkpoint::from_buffer(zip_checkpoint(&pickle, &[]), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "in `archive/data.pkl`: refused global `os.system` at byte 2: only torch's tensor \
         rebuild functions, storage types, dtypes and inert containers are allowed"
    );
    assert!(matches!(err.problem(), Error::ForbiddenGlobal { .. }));
}

/// `{"epoch": 3, "model": {"layer": {0: {"w": t}}, "name": "x"}, "opt": [..]}`.
fn nested() -> Vec<u8> {
    let w = Tensor::f32("0", 2, &[2]);
    Pickler::new()
        .op(op::EMPTY_DICT)
        .str("epoch")
        .int(3)
        .op(op::SETITEM)
        .str("model")
        .global("collections", "OrderedDict")
        .op(op::EMPTY_TUPLE)
        .op(op::REDUCE)
        .str("layer")
        .op(op::EMPTY_DICT)
        .int(0)
        .op(op::EMPTY_DICT)
        .str("w")
        .tensor(&w)
        .op(op::SETITEM)
        .op(op::SETITEM)
        .op(op::SETITEM)
        .str("name")
        .str("x")
        .op(op::SETITEM)
        .op(op::SETITEM)
        .str("opt")
        .op(op::EMPTY_LIST)
        .op(op::SETITEM)
        .stop()
}

#[test]
fn nested_dicts_flatten_and_other_leaves_are_skipped() {
    let bytes = zip_checkpoint(&nested(), &[("0", &floats(&[1.0, 2.0]))]);
    let checkpoint = open(bytes.clone(), None);
    assert_eq!(checkpoint.tensors()[0].name(), "model.layer.0.w");
    assert_eq!(checkpoint.skipped(), ["epoch", "model.name", "opt"]);

    let model = open(bytes.clone(), Some("model"));
    assert_eq!(model.tensors()[0].name(), "layer.0.w");
    assert_eq!(model.skipped(), ["name"]);

    let err = Checkpoint::from_buffer(bytes.clone(), Some("state_dict")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the checkpoint has no top-level key `state_dict` (it has: epoch, model, opt)"
    );
    let err = Checkpoint::from_buffer(bytes, Some("opt")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry `opt`: a list, not a dict of tensors"
    );
}

#[test]
fn trees_that_cannot_be_flattened_are_refused() {
    let storage = [("0", &floats(&[1.0])[..])];
    let root = Pickler::new().tensor(&Tensor::f32("0", 1, &[1])).stop();
    assert_eq!(
        error(zip_checkpoint(&root, &storage)),
        "entry ``: a tensor, not a dict of tensors"
    );
    let clash = Pickler::new()
        .op(op::EMPTY_DICT)
        .str("a.b")
        .op(op::NONE)
        .op(op::SETITEM)
        .str("a")
        .op(op::EMPTY_DICT)
        .str("b")
        .op(op::NONE)
        .op(op::SETITEM)
        .op(op::SETITEM)
        .stop();
    assert_eq!(
        error(zip_checkpoint(&clash, &[])),
        "entry `a.b`: two entries flatten to this name"
    );
    let tuple_key = Pickler::new()
        .op(op::EMPTY_DICT)
        .op(op::EMPTY_TUPLE)
        .op(op::NONE)
        .op(op::SETITEM)
        .stop();
    assert_eq!(
        error(zip_checkpoint(&tuple_key, &[])),
        "entry ``: a dict key is a tuple, not a string or an int"
    );
}

#[test]
fn deep_and_fanned_out_trees_hit_their_bounds() {
    let limits = Limits {
        max_depth: 8,
        max_entries: 1000,
        ..Limits::default()
    };
    // {"k": {"k": {...}}} nested 20 deep.
    let deep = (0..20).fold(Pickler::new(), |p, _| p.op(op::EMPTY_DICT).str("k"));
    let deep = (0..20)
        .fold(deep.op(op::NONE), |p, _| p.op(op::SETITEM))
        .stop();
    let err = Checkpoint::from_buffer_with(zip_checkpoint(&deep, &[]), None, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry `k.k.k.k.k.k.k.k`: dicts nested more than 8 deep"
    );
    // Each dict holds the previous one twice: 2^8 leaves from 8 dicts.
    let fan = (0..8).fold(
        Pickler::new().op(op::NONE).op(op::BINPUT).raw(&[0]),
        |p, _| {
            p.op(op::POP)
                .op(op::EMPTY_DICT)
                .str("a")
                .op(op::BINGET)
                .raw(&[0])
                .op(op::SETITEM)
                .str("b")
                .op(op::BINGET)
                .raw(&[0])
                .op(op::SETITEM)
                .op(op::BINPUT)
                .raw(&[0])
        },
    );
    let fan = zip_checkpoint(&fan.stop(), &[]);
    let limits = Limits {
        max_entries: 100,
        ..limits
    };
    let err = Checkpoint::from_buffer_with(fan, None, &limits).unwrap_err();
    assert!(err.to_string().ends_with("more than 100 entries"), "{err}");
}
