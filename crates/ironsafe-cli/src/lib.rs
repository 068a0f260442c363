//! The `ironsafe` command: inspect, verify, diff, shard and merge
//! safetensors files, and convert PyTorch checkpoints to them.
//!
//! [`run`] is the whole program, so that the `ironsafe` binary and the
//! Python package's console script behave the same:
//!
//! ```no_run
//! let status = ironsafe_cli::run(["ironsafe", "inspect", "model.safetensors"]);
//! std::process::exit(i32::from(status));
//! ```
//!
//! Exit status: 0 for success (a valid file, no differences), 1 for a
//! finding (an invalid file, a difference), 2 for a usage or I/O error. A
//! closed output pipe (`ironsafe inspect big.safetensors | head`) ends the
//! program quietly with 0.

mod cli;
mod convert;
mod decode;
mod diff;
mod files;
mod format;
mod glob;
mod index;
mod inspect;
mod merge;
mod shard;
mod table;
mod ui;
mod verify;

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::ui::Ui;

/// Exit status for a usage or I/O error.
const ERROR: u8 = 2;

/// What a command found, beyond having run; the worst of several counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// Valid, the same, done.
    Success,
    /// Invalid, or different.
    Finding,
    /// An error was reported along the way (a file that could not be read)
    /// while the others were still checked.
    Error,
}

impl Outcome {
    fn status(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Finding => 1,
            Outcome::Error => ERROR,
        }
    }
}

/// Runs the command line `args` (the program name first) and returns the
/// exit status. Output goes to stdout, errors and progress to stderr.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` come this way too, with status 0.
            let _ = err.print();
            return u8::try_from(err.exit_code()).unwrap_or(ERROR);
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let result = dispatch(cli, &mut out).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(outcome) => outcome.status(),
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            report_error(&err);
            ERROR
        }
    }
}

fn dispatch(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let ui = Ui::new(cli.quiet);
    match cli.command {
        Command::Inspect(args) => inspect::run(&args, out).map(|()| Outcome::Success),
        Command::Verify(args) => verify::run(&args, &ui, out),
        Command::Diff(args) => diff::run(&args, &ui, out),
        Command::Shard(args) => shard::run(&args, &ui).map(|()| Outcome::Success),
        Command::Merge(args) => merge::run(&args, &ui).map(|()| Outcome::Success),
        Command::Convert(args) => convert::run(&args, &ui).map(|()| Outcome::Success),
    }
}

/// Prints an error on stderr, with its causes.
pub(crate) fn report_error(err: &anyhow::Error) {
    let _ = writeln!(io::stderr(), "error: {}", message(err));
}

/// The error and its causes, joined by `: `. The format crate's errors
/// already end with their causes, so a cause already said is left out.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether the error is the reader of stdout going away, which is how
/// `| head` ends a listing, not a failure.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|err| err.kind() == io::ErrorKind::BrokenPipe)
    })
}
