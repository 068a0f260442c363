//! What goes to stderr besides errors: progress bars, only on a terminal,
//! and short notes of what was written, unless `--quiet`.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ironsafe::{Dtype, View};

/// How chatty to be on stderr.
pub(crate) struct Ui {
    quiet: bool,
    terminal: bool,
}

impl Ui {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// A bar counting `total` bytes of work, drawn only where a person
    /// watches stderr; otherwise hidden, so logs and pipes stay clean.
    pub(crate) fn bar(&self, total: u64, message: &'static str) -> ProgressBar {
        if self.quiet || !self.terminal {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} ({eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(message)
    }

    /// A warning: shown even when quiet, for it tells of data left out.
    pub(crate) fn warn(line: &str) {
        let _ = writeln!(std::io::stderr(), "warning: {line}");
    }

    /// A line saying what was done, unless quiet.
    pub(crate) fn note(&self, line: &str) {
        if !self.quiet {
            // A note that cannot be shown is no reason to fail the work.
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// A tensor to write that advances a progress bar as the writer takes its
/// bytes.
pub(crate) struct Tracked<'b, V> {
    pub(crate) view: V,
    pub(crate) bar: &'b ProgressBar,
}

impl<V: View> View for Tracked<'_, V> {
    fn dtype(&self) -> Dtype {
        self.view.dtype()
    }

    fn shape(&self) -> &[usize] {
        self.view.shape()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        self.bar.inc(self.view.data_len() as u64);
        self.view.data()
    }

    fn data_len(&self) -> usize {
        self.view.data_len()
    }
}
