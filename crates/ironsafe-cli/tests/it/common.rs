//! What the command tests share: a temporary directory to run in, files
//! written there by the format crate, and the command's output rendered for
//! a snapshot.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use ironsafe::{Dtype, Metadata, TensorView, WriteOptions, serialize_to_file};
use tempfile::TempDir;

/// A tensor to write: dtype, shape and little-endian bytes.
pub(crate) struct Tensor {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

pub(crate) fn f32s(shape: &[usize], values: &[f32]) -> Tensor {
    bytes_of(
        Dtype::F32,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

pub(crate) fn i64s(shape: &[usize], values: &[i64]) -> Tensor {
    bytes_of(
        Dtype::I64,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// 16-bit values (F16, BF16) given as their bit patterns.
pub(crate) fn bits16(dtype: Dtype, shape: &[usize], bits: &[u16]) -> Tensor {
    bytes_of(
        dtype,
        shape,
        bits.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

pub(crate) fn bytes_of(dtype: Dtype, shape: &[usize], data: Vec<u8>) -> Tensor {
    Tensor {
        dtype,
        shape: shape.to_vec(),
        data,
    }
}

pub(crate) fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// A small model with the shapes of a real one: numbered layers, several
/// dtypes, metadata as transformers writes it.
pub(crate) fn model() -> Vec<(&'static str, Tensor)> {
    let ramp = |n: u8| (0..n).map(|i| f32::from(i) * 0.25).collect::<Vec<_>>();
    vec![
        ("model.embed_tokens.weight", f32s(&[8, 4], &ramp(32))),
        (
            "model.layers.0.mlp.weight",
            bits16(Dtype::F16, &[2, 2], &[0x3c00, 0x4000, 0xc000, 0]),
        ),
        (
            "model.layers.1.mlp.weight",
            bits16(Dtype::F16, &[2, 2], &[0x3c00; 4]),
        ),
        (
            "model.layers.10.mlp.weight",
            bits16(Dtype::BF16, &[3], &[0x3f80, 0x4000, 0x4040]),
        ),
        ("model.norm.weight", f32s(&[4], &[1.0; 4])),
        ("lm_head.weight", f32s(&[8, 4], &ramp(32))),
        ("position_ids", i64s(&[1, 5], &[0, 1, 2, 3, 4])),
    ]
}

/// A temporary directory that the command runs in, so that paths in its
/// output are the short relative ones the tests give.
pub(crate) struct Context {
    dir: TempDir,
}

impl Context {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// A context with `model()` written to `model.safetensors`, with the
    /// metadata transformers writes.
    pub(crate) fn with_model() -> Self {
        let context = Self::new();
        context.write(
            "model.safetensors",
            &model(),
            Some(&metadata(&[("format", "pt")])),
        );
        context
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a safetensors file with the format crate.
    pub(crate) fn write(
        &self,
        name: &str,
        tensors: &[(&str, Tensor)],
        metadata: Option<&Metadata>,
    ) {
        let views = tensors.iter().map(|(tensor_name, tensor)| {
            let view =
                TensorView::new(tensor.dtype, &tensor.shape, &tensor.data).expect("a valid tensor");
            (*tensor_name, view)
        });
        let path = self.path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("a directory for the file");
        }
        serialize_to_file(views, metadata, path, &WriteOptions::default())
            .expect("the file is written");
    }

    /// Writes `bytes` as they are: for broken files.
    pub(crate) fn write_raw(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).expect("the file is written");
    }

    pub(crate) fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("the file is there")
    }

    /// `ironsafe ARGS...`, run in this directory.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("ironsafe").expect("the binary is built");
        command.args(args).current_dir(self.dir.path());
        command
    }

    /// Runs `ironsafe ARGS...` and renders its exit status and output.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        render(&self.command(args).output().expect("the command runs"))
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Exit status, stdout and stderr, as a snapshot shows them.
pub(crate) fn render(output: &Output) -> String {
    format!(
        "exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        output
            .status
            .code()
            .map_or_else(|| "signal".to_owned(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    )
}

/// The raw bytes of a file: length prefix, `json` as the header, `data_len`
/// zero bytes of data.
pub(crate) fn raw_file(json: &str, data_len: usize) -> Vec<u8> {
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(json.as_bytes());
    file.resize(file.len() + data_len, 0);
    file
}
