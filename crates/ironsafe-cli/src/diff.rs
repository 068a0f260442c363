//! `ironsafe diff`: how two files differ, in names, dtypes, shapes,
//! metadata and values.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write;

use ironsafe::{Header, Metadata, SafeTensors, TensorInfo};

use crate::Outcome;
use crate::cli::DiffArgs;
use crate::decode::Decoder;
use crate::files::read_header;
use crate::format::{self, natural_cmp};
use crate::ui::Ui;

pub(crate) fn run(args: &DiffArgs, ui: &Ui, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    // Values need the data, mapped; the header-only comparison reads none.
    let files = if args.header_only {
        None
    } else {
        Some((SafeTensors::open(&args.a)?, SafeTensors::open(&args.b)?))
    };
    let (a, b) = match &files {
        Some((a, b)) => (Cow::Borrowed(a.header()), Cow::Borrowed(b.header())),
        None => (
            Cow::Owned(read_header(&args.a)?),
            Cow::Owned(read_header(&args.b)?),
        ),
    };

    let mut lines = header_differences(&a, &b);
    if let Some((a_file, b_file)) = &files {
        let tolerance = (args.atol.is_some() || args.rtol.is_some())
            .then(|| (args.atol.unwrap_or(0.0), args.rtol.unwrap_or(0.0)));
        lines.extend(value_differences(a_file, b_file, tolerance, ui));
    }
    lines.extend(metadata_differences(a.metadata(), b.metadata()));

    writeln!(out, "--- {}", args.a.display())?;
    writeln!(out, "+++ {}", args.b.display())?;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    if lines.is_empty() {
        writeln!(out, "no differences")?;
        Ok(Outcome::Success)
    } else {
        writeln!(out, "{}", format::plural(lines.len(), "difference"))?;
        Ok(Outcome::Finding)
    }
}

/// The union of two headers' tensor names, in natural order.
fn all_names<'h>(a: &'h Header, b: &'h Header) -> Vec<&'h str> {
    let names: BTreeSet<&str> = a
        .tensors()
        .iter()
        .chain(b.tensors())
        .map(|info| info.name.as_str())
        .collect();
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_by(|x, y| natural_cmp(x, y));
    names
}

fn describe(info: &TensorInfo) -> String {
    format!("{} {}", info.dtype, format::shape(&info.shape))
}

/// Tensors only in one file, and dtypes and shapes that differ.
fn header_differences(a: &Header, b: &Header) -> Vec<String> {
    let mut lines = Vec::new();
    for name in all_names(a, b) {
        match (a.get(name), b.get(name)) {
            (Some(x), None) => lines.push(format!("- tensor `{name}` {}", describe(x))),
            (None, Some(y)) => lines.push(format!("+ tensor `{name}` {}", describe(y))),
            (Some(x), Some(y)) => {
                if x.dtype != y.dtype {
                    lines.push(format!(
                        "~ tensor `{name}`: dtype {} -> {}",
                        x.dtype, y.dtype
                    ));
                }
                if x.shape != y.shape {
                    lines.push(format!(
                        "~ tensor `{name}`: shape {} -> {}",
                        format::shape(&x.shape),
                        format::shape(&y.shape)
                    ));
                }
            }
            (None, None) => {}
        }
    }
    lines
}

fn metadata_differences(a: Option<&Metadata>, b: Option<&Metadata>) -> Vec<String> {
    let empty = Metadata::new();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|key| match (a.get(key), b.get(key)) {
            (Some(x), None) => Some(format!("- metadata `{key}`: {x}")),
            (None, Some(y)) => Some(format!("+ metadata `{key}`: {y}")),
            (Some(x), Some(y)) if x != y => Some(format!("~ metadata `{key}`: {x} -> {y}")),
            _ => None,
        })
        .collect()
}

/// The values of the tensors both files have with the same dtype and
/// shape: exactly the same bytes, or with `tolerance` (atol, rtol), numbers
/// that close.
fn value_differences<A: AsRef<[u8]>, B: AsRef<[u8]>>(
    a: &SafeTensors<A>,
    b: &SafeTensors<B>,
    tolerance: Option<(f64, f64)>,
    ui: &Ui,
) -> Vec<String> {
    let pairs: Vec<_> = all_names(a.header(), b.header())
        .into_iter()
        .filter_map(|name| Some((name, a.tensor(name).ok()?, b.tensor(name).ok()?)))
        .filter(|(_, x, y)| x.dtype() == y.dtype() && x.shape() == y.shape())
        .collect();
    let total = pairs.iter().map(|(_, x, _)| x.data().len() as u64).sum();
    let bar = ui.bar(total, "comparing values");
    let mut lines = Vec::new();
    for (name, x, y) in pairs {
        let summary = match Decoder::of(x.dtype()) {
            Some(decoder) => compare_values(decoder, x.data(), y.data(), tolerance),
            None => compare_bytes(x.data(), y.data()),
        };
        bar.inc(x.data().len() as u64);
        lines.extend(summary.map(|summary| format!("~ tensor `{name}`: {summary}")));
    }
    bar.finish_and_clear();
    lines
}

/// How many values differ and by how much at most, or `None` if none does.
fn compare_values(
    decoder: Decoder,
    a: &[u8],
    b: &[u8],
    tolerance: Option<(f64, f64)>,
) -> Option<String> {
    if a == b {
        return None;
    }
    let (mut differing, mut total) = (0u64, 0u64);
    let mut max_difference = 0f64;
    let elements = a
        .chunks_exact(decoder.width)
        .zip(b.chunks_exact(decoder.width));
    for ((x_bytes, y_bytes), (x, y)) in elements.zip(decoder.values(a).zip(decoder.values(b))) {
        total += 1;
        // Equal infinities are equal: their difference is NaN, not 0.
        #[allow(clippy::float_cmp)]
        let same = match tolerance {
            None => x_bytes == y_bytes,
            Some((atol, rtol)) => {
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= atol + rtol * y.abs()
            }
        };
        if !same {
            differing += 1;
            let difference = if x.is_nan() && y.is_nan() {
                0.0
            } else {
                (x - y).abs()
            };
            // A NaN against a number is the largest difference there is.
            if difference.is_nan() || difference > max_difference {
                max_difference = difference;
            }
        }
    }
    (differing > 0).then(|| {
        format!(
            "{differing} of {total} values differ, max abs difference {}",
            number(max_difference)
        )
    })
}

/// For F4 and F6, whose values share bytes: how many bytes differ.
fn compare_bytes(a: &[u8], b: &[u8]) -> Option<String> {
    let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
    (differing > 0).then(|| format!("{differing} of {} bytes differ", a.len()))
}

/// A difference, short: plain notation in a readable range, else scientific.
fn number(value: f64) -> String {
    if value == 0.0 || (1e-4..1e6).contains(&value) || !value.is_finite() {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironsafe::Dtype;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn exact_and_tolerant_comparisons() {
        let decoder = Decoder::of(Dtype::F32).unwrap();
        let a = f32_bytes(&[1.0, 2.0, f32::NAN, 0.0]);
        let b = f32_bytes(&[1.0, 2.5, f32::NAN, -0.0]);
        assert_eq!(
            compare_values(decoder, &a, &b, None).unwrap(),
            "2 of 4 values differ, max abs difference 0.5"
        );
        assert_eq!(
            compare_values(decoder, &a, &b, Some((0.1, 0.0))).unwrap(),
            "1 of 4 values differ, max abs difference 0.5"
        );
        assert_eq!(compare_values(decoder, &a, &b, Some((0.0, 0.25))), None);
        let c = f32_bytes(&[1.0, 2.0, 3.0, 0.0]);
        assert_eq!(
            compare_values(decoder, &a, &c, Some((1.0, 1.0))).unwrap(),
            "1 of 4 values differ, max abs difference NaN"
        );
    }

    #[test]
    fn differences_print_short() {
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(1.5e-9), "1.5e-9");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(
            compare_bytes(&[1, 2], &[1, 3]).unwrap(),
            "1 of 2 bytes differ"
        );
    }
}
