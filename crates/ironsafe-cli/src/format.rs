//! Numbers and shapes as people read them: `1.23 GB`, `7.24B`, `[4096, 11008]`.

use std::cmp::Ordering;

/// Byte units, each 1000 times the one before (as the Hugging Face Hub shows
/// file sizes).
const BYTE_UNITS: [&str; 6] = [" B", " kB", " MB", " GB", " TB", " PB"];

/// Parameter-count suffixes, as the Hub shows model sizes: `123M`, `7.24B`.
const COUNT_UNITS: [&str; 6] = ["", "k", "M", "B", "T", "P"];

/// A byte count with three significant digits: `180 B`, `1.23 GB`.
pub(crate) fn bytes(n: u64) -> String {
    compact(n, &BYTE_UNITS)
}

/// A parameter count with three significant digits: `40`, `123M`, `7.24B`.
pub(crate) fn count(n: u64) -> String {
    compact(n, &COUNT_UNITS)
}

/// `n` scaled by powers of 1000 to below 1000, with three significant digits
/// and the unit of that power. Counts under 1000 are exact.
fn compact(n: u64, units: &[&str]) -> String {
    let mut power = 0;
    let mut divisor = 1u64;
    while power + 1 < units.len() && n / divisor >= 1000 {
        power += 1;
        divisor *= 1000;
    }
    if power == 0 {
        return format!("{n}{}", units[0]);
    }
    // Display only: the precision f64 keeps is far beyond three digits.
    #[allow(clippy::cast_precision_loss)]
    let scaled = n as f64 / divisor as f64;
    let text = match scaled {
        s if s < 9.995 => format!("{s:.2}"),
        s if s < 99.95 => format!("{s:.1}"),
        s if s < 999.5 || power + 1 == units.len() => format!("{s:.0}"),
        // Rounds up to 1000 of this unit: show 1.00 of the next.
        _ => return format!("1.00{}", units[power + 1]),
    };
    format!("{text}{}", units[power])
}

/// `1 tensor`, `2 tensors`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A shape as the header writes it: `[4096, 11008]`, `[]` for a scalar.
pub(crate) fn shape(dims: &[usize]) -> String {
    format!("{dims:?}")
}

/// The number of elements of a shape (the format already checked that it
/// fits in `usize`).
pub(crate) fn elements(dims: &[usize]) -> u64 {
    dims.iter().map(|&dim| dim as u64).product()
}

/// Orders names so that numbers inside them compare as numbers:
/// `layers.2` before `layers.10`, as a model's own module order has them.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (x_digits, x_rest) = split_digits(a);
                let (y_digits, y_rest) = split_digits(b);
                let order = compare_numbers(x_digits, y_digits);
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (x_rest, y_rest);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn split_digits(text: &[u8]) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Compares two runs of digits by value, of any length; equal values with
/// more leading zeros come later, so that distinct names never tie.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |digits: &[u8]| {
        let zeros = digits.iter().take_while(|&&d| d == b'0').count();
        digits.len() - zeros
    };
    let (a_len, b_len) = (trim(a), trim(b));
    a_len
        .cmp(&b_len)
        .then_with(|| a[a.len() - a_len..].cmp(&b[b.len() - b_len..]))
        .then_with(|| a.len().cmp(&b.len()))
}

/// Parses a size such as `5GB`, `500MB`, `2GiB` or `1000` (bytes). KB, MB,
/// GB and TB are powers of 1000; KiB, MiB, GiB and TiB powers of 1024.
/// Units are case-insensitive.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "`{text}` is not a size: expected a whole number with an optional unit \
                 (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 5GB"
            ));
        }
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size: expected a whole number first, e.g. 5GB"))?;
    match value.checked_mul(multiplier) {
        Some(0) => Err("the size must be at least 1 byte".to_owned()),
        Some(size) => Ok(size),
        None => Err(format!("`{text}` is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_three_significant_digits() {
        let shown: Vec<String> = [0, 999, 1000, 1234, 12_345, 123_456, 999_499, 999_500]
            .into_iter()
            .map(bytes)
            .collect();
        assert_eq!(
            shown,
            [
                "0 B", "999 B", "1.00 kB", "1.23 kB", "12.3 kB", "123 kB", "999 kB", "1.00 MB"
            ]
        );
        assert_eq!(bytes(14_483_464_192), "14.5 GB");
        assert_eq!(bytes(u64::MAX), "18447 PB");
    }

    #[test]
    fn counts_look_like_the_hub() {
        assert_eq!(count(40), "40");
        assert_eq!(count(123_000_000), "123M");
        assert_eq!(count(7_241_732_096), "7.24B");
        assert_eq!(count(1_500), "1.50k");
    }

    #[test]
    fn numbers_in_names_sort_by_value() {
        let mut names = [
            "layers.10.w",
            "layers.2.w",
            "layers.1.w",
            "embed",
            "layers.02.w",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "embed",
                "layers.1.w",
                "layers.2.w",
                "layers.02.w",
                "layers.10.w"
            ]
        );
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "a.b"), Ordering::Less);
        assert_eq!(
            natural_cmp("x99999999999999999999999", "x1"),
            Ordering::Greater
        );
    }

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("500mb"), Ok(500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10 KB"), Ok(10_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("5XB").unwrap_err().contains("not a size"));
        assert!(parse_size("GB").unwrap_err().contains("whole number"));
        assert!(parse_size("1.5GB").is_err());
        assert_eq!(
            parse_size("0MB"),
            Err("the size must be at least 1 byte".to_owned())
        );
        assert!(
            parse_size("99999999999TB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn nouns_agree_with_counts() {
        assert_eq!(plural(1, "tensor"), "1 tensor");
        assert_eq!(plural(0, "shard"), "0 shards");
    }

    #[test]
    fn shapes_print_like_headers() {
        assert_eq!(shape(&[2, 3]), "[2, 3]");
        assert_eq!(shape(&[]), "[]");
        assert_eq!(elements(&[]), 1);
        assert_eq!(elements(&[4, 0]), 0);
    }
}
