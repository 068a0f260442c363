//! The `ironsafe._ironsafe` extension module: thin bindings that convert
//! arguments, release the GIL, and call the format crate. The Python API
//! itself (`safe_open`, the framework modules) lives in `python/ironsafe`.

// PyO3 extracts arguments as owned values; taking them by reference is not an option.
#![allow(clippy::needless_pass_by_value)]

mod cli;
mod convert;
mod error;
#[allow(unsafe_code)]
mod raw;
mod reader;
mod serialize;
mod spec;

use pyo3::prelude::*;

/// The `mmap` flag that maps a file copy-on-write without reserving memory
/// for the copies (Python's `mmap` module has it from 3.13 only): with it, a
/// file larger than memory and swap can be mapped. 0 where there is none.
#[cfg(target_os = "linux")]
const MAP_NORESERVE: i32 = libc::MAP_NORESERVE;
#[cfg(not(target_os = "linux"))]
const MAP_NORESERVE: i32 = 0;

#[pymodule(gil_used = false)]
fn _ironsafe(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("SafetensorError", py.get_type::<error::SafetensorError>())?;
    module.add_class::<spec::TensorSpec>()?;
    module.add_class::<reader::Reader>()?;
    module.add_function(wrap_pyfunction!(serialize::serialize, module)?)?;
    module.add_function(wrap_pyfunction!(serialize::serialize_file, module)?)?;
    module.add_function(wrap_pyfunction!(serialize::deserialize, module)?)?;
    module.add_function(wrap_pyfunction!(cli::cli_main, module)?)?;
    module.add_function(wrap_pyfunction!(convert::convert_checkpoint, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("MAP_NORESERVE", MAP_NORESERVE)?;
    module.add("DIRECT_ALIGN", ironsafe::DIRECT_ALIGN)?;
    Ok(())
}
