//! `ironsafe verify`: every rule of the format checked, every problem
//! reported on a line of its own, and with `--values`, NaN and infinity
//! counted in float tensors.

use std::io::Write;
use std::path::Path;

use ironsafe::{Header, ReadOptions, SafeTensors};

use crate::cli::VerifyArgs;
use crate::decode::Decoder;
use crate::files::{in_file, open};
use crate::format;
use crate::index::{self, Index};
use crate::ui::Ui;
use crate::{Outcome, is_broken_pipe, report_error};

pub(crate) fn run(args: &VerifyArgs, ui: &Ui, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Success;
    for path in &args.files {
        let checker = Checker {
            values: args.values,
            ui,
        };
        let checked = if index::is_index(path) {
            checker.index(path, out)
        } else {
            checker.file(path, out).map(|(valid, _)| valid)
        };
        outcome = outcome.max(match checked {
            Ok(true) => Outcome::Success,
            Ok(false) => Outcome::Finding,
            // Output that cannot be written ends the run; a file that
            // cannot be read is reported, and the others still checked.
            Err(err) if is_broken_pipe(&err) => return Err(err),
            Err(err) => {
                report_error(&err);
                Outcome::Error
            }
        });
    }
    Ok(outcome)
}

struct Checker<'u> {
    values: bool,
    ui: &'u Ui,
}

impl Checker<'_> {
    /// Checks the file at `path`, printing its problems or `ok`; returns
    /// whether it is valid, and its header if that is.
    fn file(&self, path: &Path, out: &mut dyn Write) -> anyhow::Result<(bool, Option<Header>)> {
        let file = open(path)?;
        let header = match Header::validate_from(&file, &ReadOptions::default()) {
            Ok(header) => header,
            Err(problems) => {
                for problem in problems {
                    if let ironsafe::Error::Stream(_) | ironsafe::Error::Io { .. } = problem {
                        return Err(in_file(problem, path));
                    }
                    writeln!(out, "{}: {problem}", path.display())?;
                }
                return Ok((false, None));
            }
        };
        let clean = !self.values || self.scan_values(path, out)?;
        if clean {
            let tensors = format::plural(header.len(), "tensor");
            writeln!(out, "{}: ok, {tensors}", path.display())?;
        }
        Ok((clean, Some(header)))
    }

    /// Counts NaN and infinite values in every float tensor; prints a line
    /// for each tensor that has any, and returns whether none has.
    fn scan_values(&self, path: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
        let file = SafeTensors::open(path)?;
        let floats: Vec<_> = file
            .tensors()
            .filter_map(|(name, view)| Some((name, view, Decoder::of(view.dtype())?)))
            .filter(|(_, _, decoder)| decoder.float)
            .collect();
        let total = floats
            .iter()
            .map(|(_, view, _)| view.data().len() as u64)
            .sum();
        let bar = self.ui.bar(total, "scanning values");
        let mut clean = true;
        for (name, view, decoder) in floats {
            let (mut nan, mut infinite) = (0u64, 0u64);
            for value in decoder.values(view.data()) {
                nan += u64::from(value.is_nan());
                infinite += u64::from(value.is_infinite());
            }
            bar.inc(view.data().len() as u64);
            if nan + infinite > 0 {
                clean = false;
                let counts: Vec<String> = [(nan, "NaN"), (infinite, "infinite")]
                    .into_iter()
                    .filter(|&(count, _)| count > 0)
                    .map(|(count, kind)| format!("{count} {kind}"))
                    .collect();
                let noun = if nan + infinite == 1 {
                    "value"
                } else {
                    "values"
                };
                writeln!(
                    out,
                    "{}: tensor `{name}` holds {} {noun}",
                    path.display(),
                    counts.join(" and ")
                )?;
            }
        }
        bar.finish_and_clear();
        Ok(clean)
    }

    /// Checks every shard of an index, then the index against them.
    fn index(&self, path: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
        let json = std::fs::read(path).map_err(|err| {
            anyhow::Error::new(err).context(format!("cannot read `{}`", path.display()))
        })?;
        let index = match Index::parse(&json, path) {
            Ok(index) => index,
            Err(err) => {
                writeln!(out, "{err:#}")?;
                return Ok(false);
            }
        };
        let mut valid = true;
        let mut headers = Vec::new();
        for (name, shard_path) in index.shard_paths(path) {
            let (shard_valid, header) = self.file(&shard_path, out)?;
            valid &= shard_valid;
            headers.extend(header.map(|header| (name, header)));
        }
        let shard_count = index.shards().len();
        if headers.len() < shard_count {
            // The index cannot be held against shards that did not parse.
            return Ok(false);
        }
        let data_len = headers
            .iter()
            .map(|(_, header)| header.data_len() as u64)
            .sum();
        let mut problems = index.mismatches(headers.iter().map(|(name, header)| (*name, header)));
        problems.extend(index.total_size_mismatch(data_len));
        for problem in &problems {
            writeln!(out, "{}: {problem}", path.display())?;
        }
        let valid = valid && problems.is_empty();
        if valid {
            let shards = format::plural(shard_count, "shard");
            let tensors = format::plural(index.weight_map.len(), "tensor");
            writeln!(out, "{}: ok, {shards}, {tensors}", path.display())?;
        }
        Ok(valid)
    }
}
