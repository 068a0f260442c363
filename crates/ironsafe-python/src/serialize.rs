//! `serialize`, `serialize_file` and `deserialize`: whole files at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ironsafe::{Layout, Metadata, SafeTensors, WriteOptions};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};

use crate::error::{Op, to_py};
use crate::raw::RawView;
use crate::spec::TensorSpec;

fn layout(
    tensor_dict: BTreeMap<String, TensorSpec>,
    metadata: Option<&Metadata>,
) -> PyResult<Layout<String, RawView>> {
    let tensors = tensor_dict
        .into_iter()
        .map(|(name, spec)| (name, spec.view));
    Layout::new(tensors, metadata, &WriteOptions::default())
        .map_err(|err| to_py(err, Op::Serialize))
}

/// Serializes tensors into the bytes of a safetensors file. The GIL is
/// released while the bytes are copied.
///
/// Every `TensorSpec`'s memory must stay alive until this returns.
#[pyfunction]
#[pyo3(signature = (tensor_dict, metadata = None))]
pub(crate) fn serialize(
    py: Python<'_>,
    tensor_dict: BTreeMap<String, TensorSpec>,
    metadata: Option<Metadata>,
) -> PyResult<Bound<'_, PyBytes>> {
    let layout = layout(tensor_dict, metadata.as_ref())?;
    PyBytes::new_with(py, layout.file_len(), |buf| {
        py.detach(|| layout.write_to(&mut &mut buf[..]))
            .map_err(|err| to_py(err, Op::Serialize))
    })
}

/// Writes tensors to `filename` as a safetensors file, atomically (a
/// temporary file renamed into place). The GIL is released while writing.
/// With `durable=True` the data reaches the disk before the rename, and the
/// rename before returning, so the file survives a power cut.
///
/// Every `TensorSpec`'s memory must stay alive until this returns.
#[pyfunction]
#[pyo3(signature = (tensor_dict, filename, metadata = None, *, durable = false))]
pub(crate) fn serialize_file(
    py: Python<'_>,
    tensor_dict: BTreeMap<String, TensorSpec>,
    filename: PathBuf,
    metadata: Option<Metadata>,
    durable: bool,
) -> PyResult<()> {
    let layout = layout(tensor_dict, metadata.as_ref())?;
    py.detach(|| layout.write_file(&filename, durable))
        .map_err(|err| to_py(err, Op::Serialize))
}

/// Parses the bytes of a safetensors file into a list of
/// `(name, {"shape": [...], "dtype": "F32", "data": bytearray})`, in file
/// order.
#[pyfunction]
pub(crate) fn deserialize<'py>(
    py: Python<'py>,
    bytes: &[u8],
) -> PyResult<Vec<(String, Bound<'py, PyDict>)>> {
    let file = SafeTensors::deserialize(bytes).map_err(|err| to_py(err, Op::Deserialize))?;
    file.tensors()
        .map(|(name, view)| {
            let entry = PyDict::new(py);
            entry.set_item("shape", view.shape())?;
            entry.set_item("dtype", view.dtype().name())?;
            let data = PyByteArray::new_with(py, view.data().len(), |buf| {
                py.detach(|| buf.copy_from_slice(view.data()));
                Ok(())
            })?;
            entry.set_item("data", data)?;
            Ok((name.to_owned(), entry))
        })
        .collect()
}
