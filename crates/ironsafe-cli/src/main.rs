//! The `ironsafe` binary: see the `ironsafe_cli` library for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(ironsafe_cli::run(std::env::args_os()))
}
