//! Aligned text tables: a header row, then rows, columns padded to the
//! widest cell.

use std::io::{self, Write};

/// How a column's cells line up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers, so that their digits line up.
    Right,
}

/// A table being built.
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: one cell per column.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// Writes the table, columns two spaces apart, with no trailing spaces.
    pub(crate) fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.columns.iter().map(|(title, _)| title.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let titles = self.columns.iter().map(|(title, _)| (*title).to_owned());
        write_row(out, &self.columns, &widths, &titles.collect::<Vec<_>>())?;
        for row in &self.rows {
            write_row(out, &self.columns, &widths, row)?;
        }
        Ok(())
    }
}

fn write_row(
    out: &mut dyn Write,
    columns: &[(&str, Align)],
    widths: &[usize],
    cells: &[String],
) -> io::Result<()> {
    let mut line = String::new();
    for (index, ((cell, width), (_, align))) in cells.iter().zip(widths).zip(columns).enumerate() {
        if index > 0 {
            line.push_str("  ");
        }
        let pad = " ".repeat(width - cell.chars().count());
        match align {
            Align::Left => {
                line.push_str(cell);
                line.push_str(&pad);
            }
            Align::Right => {
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
    }
    writeln!(out, "{}", line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_end_without_spaces() {
        let mut table = Table::new(&[("NAME", Align::Left), ("SIZE", Align::Right)]);
        table.row(vec!["weight".into(), "1.23 kB".into()]);
        table.row(vec!["b".into(), "8 B".into()]);
        table.row(vec!["naïve".into(), String::new()]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME       SIZE\nweight  1.23 kB\nb           8 B\nnaïve\n"
        );
    }
}
