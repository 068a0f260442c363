//! `cli_main`: the `ironsafe` command, for the console script that the
//! Python package installs (`python/ironsafe/_cli.py`).

use std::ffi::OsString;

use pyo3::prelude::*;

/// Runs the `ironsafe` command line `argv` (the program name first) and
/// returns its exit status. The GIL is released throughout: the command
/// reads and writes files and never touches Python objects.
#[pyfunction]
pub(crate) fn cli_main(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| ironsafe_cli::run(argv))
}
