//! `convert_checkpoint`: a torch checkpoint to a safetensors file, read
//! without running pickle.

use std::path::PathBuf;

use ironsafe_pickle::{ConvertOptions, convert};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::convert_to_py;

/// Converts the torch checkpoint `src` (zip or legacy `torch.save` format)
/// to the safetensors file `dst`, without running pickle. The GIL is
/// released while converting.
///
/// Returns `{"tensors": [...], "removed": {name: kept}, "skipped": [...]}`.
#[pyfunction]
#[pyo3(signature = (src, dst, *, key = None, strict = false, verify = true))]
pub(crate) fn convert_checkpoint(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    key: Option<String>,
    strict: bool,
    verify: bool,
) -> PyResult<Bound<'_, PyDict>> {
    let options = ConvertOptions::default()
        .key(key)
        .strict(strict)
        .verify(verify);
    let report = py
        .detach(|| convert(&src, &dst, &options))
        .map_err(convert_to_py)?;
    let result = PyDict::new(py);
    result.set_item("tensors", report.tensors)?;
    result.set_item("removed", report.removed)?;
    result.set_item("skipped", report.skipped)?;
    Ok(result)
}
