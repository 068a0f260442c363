//! Arbitrary slices of a small tensor of every dtype. Slicing must return
//! the selected bytes or an error, never panic; for whole-byte dtypes the
//! bytes must equal a naive element-by-element gather, and the byte ranges a
//! reader would fetch must add up to the same bytes.

#![no_main]

use ironsafe::{Dtype, SliceIndex, TensorInfo, TensorView, bit_len};
use libfuzzer_sys::fuzz_target;

/// Takes bytes from the front of the input, one at a time.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }
}

fn index(input: &mut Input<'_>, dim: usize) -> Option<SliceIndex> {
    let start = usize::from(input.byte()?) % (dim + 1);
    Some(match input.byte()? % 3 {
        0 => SliceIndex::All,
        1 if dim > 0 => SliceIndex::Select(start % dim),
        _ => SliceIndex::Range {
            start,
            stop: usize::from(input.byte()?) % (dim + 1),
            step: usize::from(input.byte()? % 4) + 1,
        },
    })
}

/// The selected elements one by one, for dtypes of whole bytes.
fn naive(data: &[u8], shape: &[usize], indices: &[SliceIndex], width: usize) -> Vec<u8> {
    let mut picks: Vec<Vec<usize>> = Vec::new();
    for (axis, &dim) in shape.iter().enumerate() {
        picks.push(match indices.get(axis).copied().unwrap_or(SliceIndex::All) {
            SliceIndex::All => (0..dim).collect(),
            SliceIndex::Select(i) => vec![i],
            SliceIndex::Range { start, stop, step } => (start..stop.max(start)).step_by(step).collect(),
        });
    }
    let mut out = Vec::new();
    let mut position = vec![0; shape.len()];
    if picks.iter().any(Vec::is_empty) {
        return out;
    }
    loop {
        let element = position
            .iter()
            .zip(&picks)
            .zip(shape)
            .fold(0, |flat, ((&at, pick), &dim)| flat * dim + pick[at]);
        out.extend_from_slice(&data[element * width..(element + 1) * width]);
        // The next position, last axis fastest.
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            position[axis] += 1;
            if position[axis] < picks[axis].len() {
                break;
            }
            position[axis] = 0;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(choice) = input.byte() else { return };
    let dtype = Dtype::ALL[usize::from(choice) % Dtype::ALL.len()];
    let rank = input.byte().map_or(0, |b| usize::from(b % 5));
    let shape: Vec<usize> = (0..rank).filter_map(|_| Some(usize::from(input.byte()? % 9))).collect();
    let Some(bits) = bit_len(dtype, &shape) else { return };
    if bits % 8 != 0 {
        return;
    }
    let bytes: Vec<u8> = (0..bits / 8).map(|i| i as u8).collect();
    let Ok(view) = TensorView::new(dtype, &shape, &bytes) else { return };
    let count = input.byte().map_or(0, |b| usize::from(b) % (shape.len() + 2));
    let indices: Vec<SliceIndex> = shape
        .iter()
        .chain(std::iter::repeat(&0))
        .take(count)
        .map_while(|&dim| index(&mut input, dim))
        .collect();

    let info = TensorInfo {
        name: "t".into(),
        dtype,
        shape: shape.clone(),
        data_offsets: (0, bytes.len()),
    };
    let (sliced, ranges) = (view.slice(&indices), info.slice_ranges(&indices));
    assert_eq!(sliced.is_ok(), ranges.is_ok());
    let (Ok(sliced), Ok(ranges)) = (sliced, ranges) else { return };
    let gathered: Vec<u8> = ranges.flat_map(|run| bytes[run].to_vec()).collect();
    let got = sliced.to_vec();
    assert_eq!(got, gathered);
    if dtype.bits() % 8 == 0 && indices.len() <= shape.len() {
        assert_eq!(got, naive(&bytes, &shape, &indices, dtype.bits() / 8));
    }
});
