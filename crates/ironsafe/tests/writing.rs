//! The writer: layout options, refusals, and files replaced atomically.

use std::path::Path;

use ironsafe::{
    Dtype, Error, Metadata, SafeTensors, TensorView, WriteOptions, serialize, serialize_to_file,
};

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn data_alignment_pads_the_header() {
    let data = f32s(&[1.0, 2.0, 3.0]);
    let view = TensorView::new(Dtype::F32, &[3], &data).unwrap();
    for alignment in [8, 16, 64, 4096] {
        let options = WriteOptions::default().alignment(alignment);
        let bytes = serialize([("x", view)], None, &options).unwrap();
        let file = SafeTensors::deserialize(&bytes[..]).unwrap();
        assert_eq!(
            file.header().data_start() % alignment,
            0,
            "alignment {alignment}"
        );
        assert_eq!(file.tensor("x").unwrap().data(), &data[..]);
        // Padding is spaces after the object, which any JSON reader accepts,
        // and never a whole alignment unit more than needed.
        let json = &bytes[8..file.header().data_start()];
        let object = json.trim_ascii_end();
        assert!(object.ends_with(b"}") && json[object.len()..].iter().all(|&b| b == b' '));
        assert!(json.len() - object.len() < alignment);
    }
    for bad in [0, 4, 12, 100] {
        let err =
            serialize([("x", view)], None, &WriteOptions::default().alignment(bad)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("data alignment must be a power of two of at least 8, got {bad}")
        );
    }
}

#[test]
fn tensors_are_sorted_by_dtype_then_name() {
    let (one, two, four, eight) = ([0u8; 1], [0u8; 2], [0u8; 4], [0u8; 8]);
    let tensors = [
        ("b", TensorView::new(Dtype::U8, &[1], &one).unwrap()),
        ("a", TensorView::new(Dtype::F16, &[1], &two).unwrap()),
        ("c", TensorView::new(Dtype::F64, &[1], &eight).unwrap()),
        ("a2", TensorView::new(Dtype::F32, &[1], &four).unwrap()),
        ("a10", TensorView::new(Dtype::I32, &[1], &four).unwrap()),
        ("d", TensorView::new(Dtype::F4, &[2], &one).unwrap()),
    ];
    let bytes = serialize(tensors, None, &WriteOptions::default()).unwrap();
    let file = SafeTensors::deserialize(&bytes[..]).unwrap();
    let order: Vec<&str> = file.tensors().map(|(name, _)| name).collect();
    assert_eq!(order, ["c", "a2", "a10", "a", "b", "d"]);
    let names: Vec<&str> = file.names().collect();
    assert_eq!(names, ["a", "a10", "a2", "b", "c", "d"]);
}

#[test]
fn metadata_keys_are_written_sorted() {
    let metadata: Metadata = [("z", "1"), ("a", "2"), ("m", "\"quoted\"\n")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let none: [(&str, TensorView<'_>); 0] = [];
    let bytes = serialize(none, Some(&metadata), &WriteOptions::default()).unwrap();
    let json = std::str::from_utf8(&bytes[8..]).unwrap().trim_end();
    assert_eq!(
        json,
        r#"{"__metadata__":{"a":"2","m":"\"quoted\"\n","z":"1"}}"#
    );
    assert_eq!(
        SafeTensors::deserialize(&bytes[..]).unwrap().metadata(),
        Some(&metadata)
    );
}

#[test]
fn refusals_name_the_tensor() {
    let data = [0u8; 8];
    let view = TensorView::new(Dtype::F32, &[2], &data).unwrap();
    let options = WriteOptions::default();

    let err = serialize([("__metadata__", view)], None, &options).unwrap_err();
    assert!(matches!(err, Error::ReservedName), "{err}");

    let err = serialize([("w", view), ("w", view)], None, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key `w` appears more than once in the header"
    );

    let err = serialize([("w", view)], None, &options.clone().max_header_size(16)).unwrap_err();
    assert!(
        matches!(err, Error::HeaderTooLarge { limit: 16, .. }),
        "{err}"
    );
}

/// A view whose bytes do not match what it claims.
struct Liar {
    claimed: usize,
    data: Vec<u8>,
}

impl ironsafe::View for Liar {
    fn dtype(&self) -> Dtype {
        Dtype::U8
    }
    fn shape(&self) -> &[usize] {
        std::slice::from_ref(&self.claimed)
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.claimed
    }
}

#[test]
fn views_that_break_their_promise_are_caught() {
    let liar = Liar {
        claimed: 4,
        data: vec![1, 2],
    };
    let err = serialize([("l", &liar)], None, &WriteOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `l` (U8, shape [4]) needs 4 bytes but has 2"
    );

    // Writing to a path fails the same way, and leaves nothing behind.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.safetensors");
    let err = serialize_to_file([("l", &liar)], None, &path, &WriteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TensorSizeMismatch { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn write(path: &Path, values: &[f32]) {
    let data = f32s(values);
    let shape = [values.len()];
    let view = TensorView::new(Dtype::F32, &shape, &data).unwrap();
    serialize_to_file([("v", view)], None, path, &WriteOptions::default()).unwrap();
}

#[test]
fn replacing_a_file_keeps_existing_maps_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write(&path, &[1.0, 2.0]);
    let old = SafeTensors::open(&path).unwrap();
    write(&path, &[3.0, 4.0, 5.0]);
    write(&path, &[6.0]);
    assert_eq!(old.tensor("v").unwrap().data(), &f32s(&[1.0, 2.0])[..]);
    assert_eq!(
        SafeTensors::open(&path)
            .unwrap()
            .tensor("v")
            .unwrap()
            .data(),
        &f32s(&[6.0])[..]
    );
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
}

#[test]
fn durable_writes_produce_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    // Over 32 MiB, so that write-back starts while the file is written.
    let data: Vec<u8> = (0..40u32 << 20).map(|i| (i % 251) as u8).collect();
    let view = TensorView::new(Dtype::U8, &[40, 1 << 20], &data).unwrap();
    let (fast, durable) = (dir.path().join("fast"), dir.path().join("durable"));
    serialize_to_file([("w", view)], None, &fast, &WriteOptions::default()).unwrap();
    let options = WriteOptions::default().durable(true);
    serialize_to_file([("w", view)], None, &durable, &options).unwrap();
    assert!(std::fs::read(fast).unwrap() == std::fs::read(durable).unwrap());
}

#[test]
fn write_errors_name_the_file() {
    let data = [0u8; 4];
    let view = TensorView::new(Dtype::F32, &[1], &data).unwrap();
    let err = serialize_to_file(
        [("w", view)],
        None,
        "/nonexistent-dir/x.safetensors",
        &WriteOptions::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot write `/nonexistent-dir/x.safetensors`: "),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn new_files_get_the_mode_the_umask_implies() {
    use std::os::unix::fs::PermissionsExt;

    // The umask is process-wide: read it without changing it for good.
    // SAFETY-free: libc is not a dependency, so compare with a file created
    // the ordinary way in the same directory.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let path = dir.path().join("model.safetensors");
    write(&path, &[1.0]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), mode(&plain));
    assert_ne!(
        mode(&path),
        0o600,
        "the umask here would have to be 077 for this to be expected"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_next_save_removes_temporary_files_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    // A process that has ended: its pid names no running process.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let marker = ironsafe::TEMP_MARKER;
    let leftovers = [
        format!(".a.safetensors{marker}.{dead}.0"),
        format!(".other.safetensors{marker}.{dead}.7"),
    ];
    let kept = [
        // A running writer's (pid 1 always runs), and look-alikes.
        format!(".a.safetensors{marker}.1.0"),
        format!("a.safetensors{marker}.{dead}.0"),
        format!(".a.safetensors{marker}.{dead}"),
        "notes.txt".to_owned(),
    ];
    for name in leftovers.iter().chain(&kept) {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }
    write(&dir.path().join("a.safetensors"), &[1.0]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = kept.to_vec();
    expected.push("a.safetensors".to_owned());
    expected.sort();
    assert_eq!(names, expected);
}
