//! N-dimensional strided slices of a tensor, served as contiguous byte runs.
//!
//! A slice is one [`SliceIndex`] per leading dimension (missing trailing ones
//! select everything). The result is produced as the list of contiguous runs
//! of the source bytes, in row-major order of the result, so a caller copies
//! exactly the selected bytes once, straight into its destination.
//!
//! [`SliceRanges`] gives the runs as byte ranges within the tensor, for
//! readers that fetch them from a [`ByteSource`](crate::ByteSource);
//! [`SliceIter`] gives them as slices of a tensor already in memory.

use std::ops::Range;

use crate::{Dtype, Error, Result};

/// What to take from one dimension. Indices are already normalized: no
/// negative values, bounds within the dimension (a front end that offers
/// Python semantics clamps and converts before it gets here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceIndex {
    /// The whole dimension.
    All,
    /// One position; the dimension is dropped from the result.
    Select(usize),
    /// Positions `start, start + step, ...` below `stop`. `start` and `stop`
    /// are at most the dimension's size; `stop <= start` selects nothing.
    Range {
        /// The first position.
        start: usize,
        /// One past the last position that may be taken.
        stop: usize,
        /// The distance between positions, at least 1.
        step: usize,
    },
}

impl From<std::ops::Range<usize>> for SliceIndex {
    fn from(range: std::ops::Range<usize>) -> Self {
        SliceIndex::Range {
            start: range.start,
            stop: range.end,
            step: 1,
        }
    }
}

impl From<usize> for SliceIndex {
    fn from(index: usize) -> Self {
        SliceIndex::Select(index)
    }
}

/// One dimension of a slice: where it starts, how many positions, how far
/// apart, all in bits so that sub-byte dtypes are handled alike.
#[derive(Debug, Clone, Copy)]
struct Axis {
    start: usize,
    count: usize,
    step: usize,
    stride_bits: usize,
    kept: bool,
}

/// An outer dimension walked by the iterator, in bytes.
#[derive(Debug, Clone, Copy)]
struct Walk {
    count: usize,
    step_bytes: usize,
}

/// The contiguous byte runs of a slice, as ranges relative to the start of
/// the tensor's data, in row-major order of the result.
#[derive(Debug, Clone)]
pub struct SliceRanges {
    shape: Vec<usize>,
    chunk_len: usize,
    walks: Vec<Walk>,
    counters: Vec<usize>,
    offset: usize,
    remaining: usize,
}

impl SliceRanges {
    /// The runs of `indices` applied to a tensor whose size the caller has
    /// validated: `bits` is the bit length of `dtype` x `shape`.
    pub(crate) fn new(
        dtype: Dtype,
        shape: &[usize],
        bits: usize,
        indices: &[SliceIndex],
    ) -> Result<Self> {
        if indices.len() > shape.len() {
            return Err(Error::SliceRank {
                given: indices.len(),
                rank: shape.len(),
            });
        }
        let axes = axes(dtype, shape, indices)?;
        let out_shape: Vec<usize> = axes.iter().filter(|a| a.kept).map(|a| a.count).collect();
        if axes.iter().any(|axis| axis.count == 0) {
            return Ok(Self::empty(out_shape));
        }

        // The innermost dimensions taken whole form one contiguous run, and so
        // does the first dimension outside them when its positions are adjacent.
        let whole = axes
            .iter()
            .zip(shape)
            .rev()
            .take_while(|(axis, size)| axis.start == 0 && axis.count == **size)
            .count();
        let (outer, chunk_bits) = match axes.len() - whole {
            0 => (0, bits),
            partial => {
                let inner = axes[partial - 1];
                if inner.step == 1 || inner.count == 1 {
                    (partial - 1, inner.stride_bits * inner.count)
                } else {
                    (partial, inner.stride_bits)
                }
            }
        };

        let base_bits: usize = axes.iter().map(|a| a.start * a.stride_bits).sum();
        // Every run starts at base + a sum of steps, so these three decide
        // whether all of them start and end on byte boundaries.
        let aligned = base_bits % 8 == 0
            && chunk_bits % 8 == 0
            && axes[..outer]
                .iter()
                .all(|a| a.count == 1 || (a.step * a.stride_bits) % 8 == 0);
        if !aligned {
            return Err(Error::MisalignedSlice {
                dtype,
                shape: shape.to_vec(),
            });
        }

        let walks: Vec<Walk> = axes[..outer]
            .iter()
            .map(|a| Walk {
                count: a.count,
                // A step only matters between two positions, which then both
                // lie inside the dimension, so the product cannot overflow.
                step_bytes: if a.count > 1 {
                    a.step * a.stride_bits / 8
                } else {
                    0
                },
            })
            .collect();
        Ok(Self {
            shape: out_shape,
            chunk_len: chunk_bits / 8,
            remaining: walks.iter().map(|w| w.count).product(),
            counters: vec![0; walks.len()],
            walks,
            offset: base_bits / 8,
        })
    }

    fn empty(shape: Vec<usize>) -> Self {
        Self {
            shape,
            chunk_len: 0,
            walks: Vec::new(),
            counters: Vec::new(),
            offset: 0,
            remaining: 0,
        }
    }

    /// The shape of the result: one entry per dimension not selected by
    /// [`SliceIndex::Select`].
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The bytes still to come.
    #[must_use]
    pub fn remaining_bytes(&self) -> usize {
        self.remaining * self.chunk_len
    }
}

/// Validates the indices against the shape and normalizes each dimension.
fn axes(dtype: Dtype, shape: &[usize], indices: &[SliceIndex]) -> Result<Vec<Axis>> {
    // Bits between consecutive positions of each dimension: the suffix
    // products. A view's size was validated, so they fit unless some
    // dimension is 0; then nothing is selected and the saturated strides are
    // never used.
    let mut strides = vec![dtype.bits(); shape.len()];
    for dim in (1..shape.len()).rev() {
        strides[dim - 1] = strides[dim].saturating_mul(shape[dim]);
    }
    // In order, so that the first bad index is the one reported.
    let mut axes = Vec::with_capacity(shape.len());
    for (dim, (&size, &stride_bits)) in shape.iter().zip(&strides).enumerate() {
        let index = indices.get(dim).copied().unwrap_or(SliceIndex::All);
        let out_of_range = |index| Error::SliceOutOfRange { dim, index, size };
        let (start, count, step, kept) = match index {
            SliceIndex::All => (0, size, 1, true),
            SliceIndex::Select(i) if i < size => (i, 1, 1, false),
            SliceIndex::Select(i) => return Err(out_of_range(i)),
            SliceIndex::Range { step: 0, .. } => return Err(Error::ZeroStep { dim }),
            SliceIndex::Range { start, .. } if start > size => return Err(out_of_range(start)),
            SliceIndex::Range { stop, .. } if stop > size => return Err(out_of_range(stop)),
            SliceIndex::Range { start, stop, step } => {
                (start, stop.saturating_sub(start).div_ceil(step), step, true)
            }
        };
        axes.push(Axis {
            start,
            count,
            step,
            stride_bits,
            kept,
        });
    }
    Ok(axes)
}

impl Iterator for SliceRanges {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let run = self.offset..self.offset + self.chunk_len;
        // Advance the odometer: the innermost walked dimension moves first.
        for (counter, walk) in self.counters.iter_mut().zip(&self.walks).rev() {
            *counter += 1;
            if *counter < walk.count {
                self.offset += walk.step_bytes;
                break;
            }
            *counter = 0;
            self.offset -= walk.step_bytes * (walk.count - 1);
        }
        Some(run)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for SliceRanges {}

/// The contiguous byte runs of a slice of a tensor in memory, in row-major
/// order of the result.
#[derive(Debug, Clone)]
pub struct SliceIter<'a> {
    data: &'a [u8],
    ranges: SliceRanges,
}

impl<'a> SliceIter<'a> {
    pub(crate) fn new(data: &'a [u8], ranges: SliceRanges) -> Self {
        Self { data, ranges }
    }

    /// The shape of the result.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        self.ranges.shape()
    }

    /// The bytes still to come.
    #[must_use]
    pub fn remaining_bytes(&self) -> usize {
        self.ranges.remaining_bytes()
    }

    /// Copies the remaining runs into one buffer.
    #[must_use]
    pub fn to_vec(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.remaining_bytes());
        for run in self {
            out.extend_from_slice(run);
        }
        out
    }
}

impl<'a> Iterator for SliceIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        self.ranges.next().map(|run| &self.data[run])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ranges.size_hint()
    }
}

impl ExactSizeIterator for SliceIter<'_> {}
