//! `TensorView::slice` and `SliceIter` against a naive element-by-element
//! reference, plus the error cases and sub-byte dtypes.

use ironsafe::{Dtype, Error, SliceIndex, TensorView};
use proptest::prelude::*;

/// The positions one index takes from a dimension of `size`, and whether the
/// dimension stays in the result. Indices must be in range.
fn positions(index: SliceIndex, size: usize) -> (Vec<usize>, bool) {
    match index {
        SliceIndex::All => ((0..size).collect(), true),
        SliceIndex::Select(i) => (vec![i], false),
        SliceIndex::Range { start, stop, step } => ((start..stop).step_by(step).collect(), true),
    }
}

/// The flat indices of the selected elements in row-major order of the
/// result, and the result's shape: an odometer over the per-dimension
/// positions.
fn naive_elements(shape: &[usize], indices: &[SliceIndex]) -> (Vec<usize>, Vec<usize>) {
    let per_dim: Vec<(Vec<usize>, bool)> = shape
        .iter()
        .enumerate()
        .map(|(dim, &size)| positions(indices.get(dim).copied().unwrap_or(SliceIndex::All), size))
        .collect();
    let out_shape = per_dim
        .iter()
        .filter(|(_, kept)| *kept)
        .map(|(p, _)| p.len())
        .collect();
    let mut strides = vec![1usize; shape.len()];
    for dim in (0..shape.len().saturating_sub(1)).rev() {
        strides[dim] = strides[dim + 1] * shape[dim + 1];
    }
    let mut elements = Vec::new();
    if per_dim.iter().any(|(p, _)| p.is_empty()) {
        return (elements, out_shape);
    }
    let mut counters = vec![0usize; shape.len()];
    loop {
        elements.push(
            counters
                .iter()
                .zip(&per_dim)
                .zip(&strides)
                .map(|((&c, (p, _)), &stride)| p[c] * stride)
                .sum(),
        );
        // Advance the odometer, innermost dimension first.
        let mut dim = shape.len();
        loop {
            if dim == 0 {
                return (elements, out_shape);
            }
            dim -= 1;
            counters[dim] += 1;
            if counters[dim] < per_dim[dim].0.len() {
                break;
            }
            counters[dim] = 0;
        }
    }
}

/// The selected bytes of a tensor of whole-byte elements, gathered one
/// element at a time.
fn naive_gather(
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
    indices: &[SliceIndex],
) -> (Vec<u8>, Vec<usize>) {
    let size = dtype.bits() / 8;
    let (elements, out_shape) = naive_elements(shape, indices);
    let bytes = elements
        .iter()
        .flat_map(|&e| &data[e * size..(e + 1) * size])
        .copied()
        .collect();
    (bytes, out_shape)
}

/// What a sub-byte slice must give: `Some(bytes)` when the selected bits form
/// contiguous groups that all start and end on byte boundaries, `None` when
/// the slice cannot be served as whole bytes.
fn naive_bit_gather(
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
    indices: &[SliceIndex],
) -> (Option<Vec<u8>>, Vec<usize>) {
    let bits = dtype.bits();
    let (elements, out_shape) = naive_elements(shape, indices);
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for e in elements {
        let (start, end) = (e * bits, (e + 1) * bits);
        match groups.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => groups.push((start, end)),
        }
    }
    if groups.iter().any(|&(s, e)| s % 8 != 0 || e % 8 != 0) {
        return (None, out_shape);
    }
    let bytes = groups
        .iter()
        .flat_map(|&(s, e)| &data[s / 8..e / 8])
        .copied()
        .collect();
    (Some(bytes), out_shape)
}

/// Every run the iterator yields, checking on the way that `len()` and
/// `remaining_bytes()` count down exactly as the runs come, and that every
/// run is a non-empty piece of `data` itself (nothing copied).
fn runs<'a>(view: &TensorView<'a>, indices: &[SliceIndex]) -> Vec<&'a [u8]> {
    let data = view.data();
    let mut iter = view.slice(indices).unwrap();
    let (count, bytes) = (iter.len(), iter.remaining_bytes());
    assert_eq!(iter.size_hint(), (count, Some(count)));
    let mut out = Vec::new();
    let mut seen = 0;
    while let Some(run) = iter.next() {
        assert!(!run.is_empty(), "empty run");
        let offset = run.as_ptr() as usize - data.as_ptr() as usize;
        assert!(offset + run.len() <= data.len(), "run outside the tensor");
        seen += run.len();
        out.push(run);
        assert_eq!(iter.len(), count - out.len());
        assert_eq!(iter.remaining_bytes(), bytes - seen);
    }
    assert_eq!((out.len(), seen), (count, bytes));
    assert_eq!(iter.len(), 0);
    assert!(iter.next().is_none());
    out
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

fn slice_err(view: &TensorView<'_>, indices: &[SliceIndex]) -> Error {
    view.slice(indices).unwrap_err()
}

fn range(start: usize, end: usize, step: usize) -> SliceIndex {
    SliceIndex::Range {
        start,
        stop: end,
        step,
    }
}

/// The dtypes whose elements are whole bytes.
fn whole_byte() -> Vec<Dtype> {
    Dtype::ALL
        .into_iter()
        .filter(|d| !d.is_sub_byte())
        .collect()
}

/// One valid index for a dimension of `size`.
fn index_for(size: usize) -> BoxedStrategy<SliceIndex> {
    let step = prop_oneof![8 => 1..=4usize, 1 => Just(usize::MAX)];
    let range = (0..=size, 0..=size, step).prop_map(|(start, stop, step)| range(start, stop, step));
    if size == 0 {
        prop_oneof![Just(SliceIndex::All), range].boxed()
    } else {
        prop_oneof![
            1 => Just(SliceIndex::All),
            1 => (0..size).prop_map(SliceIndex::Select),
            3 => range,
        ]
        .boxed()
    }
}

/// Up to one valid index per dimension (possibly fewer than the rank).
fn indices_for(shape: &[usize]) -> impl Strategy<Value = Vec<SliceIndex>> + use<> {
    let all: Vec<_> = shape.iter().map(|&size| index_for(size)).collect();
    (all, 0..=shape.len()).prop_map(|(mut all, given)| {
        all.truncate(given);
        all
    })
}

/// A tensor of `dtype` with a random shape (rank 0..=4, dims 0..=6), data and
/// valid indices.
fn case(
    dtype: impl Strategy<Value = Dtype>,
) -> impl Strategy<Value = (Dtype, Vec<usize>, Vec<u8>, Vec<SliceIndex>)> {
    (dtype, prop::collection::vec(0..=6usize, 0..=4))
        .prop_filter("whole bytes", |(dtype, shape)| {
            ironsafe::bit_len(*dtype, shape).is_some_and(|bits| bits % 8 == 0)
        })
        .prop_flat_map(|(dtype, shape)| {
            let len = ironsafe::bit_len(dtype, &shape).unwrap() / 8;
            (
                Just(dtype),
                Just(shape.clone()),
                prop::collection::vec(any::<u8>(), len),
                indices_for(&shape),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    #[test]
    fn slices_match_a_naive_gather(
        (dtype, shape, data, indices) in case(prop::sample::select(whole_byte()))
    ) {
        let view = TensorView::new(dtype, &shape, &data).unwrap();
        let (expected, expected_shape) = naive_gather(dtype, &shape, &data, &indices);

        let iter = view.slice(&indices).unwrap();
        prop_assert_eq!(iter.shape(), &expected_shape[..]);
        prop_assert_eq!(iter.remaining_bytes(), expected.len());
        prop_assert_eq!(iter.clone().to_vec(), expected.clone());

        let runs = runs(&view, &indices);
        prop_assert_eq!(runs.concat(), expected);
        // Runs are whole elements, at most one per selected element. (They
        // are not always maximal: [2, 3][:, ::2] yields elements 2 and 3 as
        // two runs.)
        let size = dtype.bits() / 8;
        prop_assert!(runs.iter().all(|run| run.len() % size == 0));
        prop_assert!(runs.len() <= runs.concat().len() / size);
    }

    #[test]
    fn sub_byte_slices_are_whole_bytes_or_misaligned(
        (dtype, shape, data, indices) in case(prop::sample::select(vec![
            Dtype::F4, Dtype::F6_E2M3, Dtype::F6_E3M2,
        ]))
    ) {
        let view = TensorView::new(dtype, &shape, &data).unwrap();
        let (expected, expected_shape) = naive_bit_gather(dtype, &shape, &data, &indices);
        match (view.slice(&indices), expected) {
            (Ok(iter), Some(expected)) => {
                prop_assert_eq!(iter.shape(), &expected_shape[..]);
                prop_assert_eq!(iter.remaining_bytes(), expected.len());
                prop_assert_eq!(iter.to_vec(), expected.clone());
                prop_assert_eq!(runs(&view, &indices).concat(), expected);
            }
            (Err(Error::MisalignedSlice { dtype: d, shape: s }), None) => {
                prop_assert_eq!((d, s), (dtype, shape));
            }
            (Ok(iter), None) => {
                prop_assert!(false, "misaligned slice accepted: {:?}", iter.to_vec());
            }
            (Err(err), _) => prop_assert!(false, "unexpected error: {}", err),
        }
    }
}

#[test]
fn a_scalar_with_no_indices_is_one_run() {
    let data = 1.5f32.to_le_bytes();
    let view = TensorView::new(Dtype::F32, &[], &data).unwrap();
    let iter = view.slice(&[]).unwrap();
    assert_eq!(
        (iter.shape(), iter.len(), iter.remaining_bytes()),
        (&[][..], 1, 4)
    );
    assert_eq!(runs(&view, &[]), [&data[..]]);

    let err = slice_err(&view, &[SliceIndex::All]);
    assert!(
        matches!(err, Error::SliceRank { given: 1, rank: 0 }),
        "{err}"
    );
}

#[test]
fn the_whole_tensor_is_one_run() {
    let data = bytes(2 * 3 * 4 * 2);
    let view = TensorView::new(Dtype::F16, &[2, 3, 4], &data).unwrap();
    for indices in [
        &[][..],
        &[SliceIndex::All],
        &[SliceIndex::All, SliceIndex::All, SliceIndex::All],
        &[range(0, 2, 1), range(0, 3, 1), range(0, 4, 1)],
    ] {
        let runs = runs(&view, indices);
        assert_eq!(runs, [&data[..]], "{indices:?}");
        assert_eq!(view.slice(indices).unwrap().shape(), [2, 3, 4]);
    }
}

#[test]
fn rows_and_blocks_of_rows_are_one_run() {
    let data = bytes(4 * 5 * 4);
    let view = TensorView::new(Dtype::I32, &[4, 5], &data).unwrap();

    let iter = view.slice(&[SliceIndex::Select(2)]).unwrap();
    assert_eq!(iter.shape(), [5]);
    assert_eq!(runs(&view, &[2.into()]), [&data[40..60]]);

    let iter = view.slice(&[(1..3).into()]).unwrap();
    assert_eq!(iter.shape(), [2, 5]);
    assert_eq!(runs(&view, &[(1..3).into()]), [&data[20..60]]);

    // A part of one row is one run too.
    assert_eq!(runs(&view, &[3.into(), (1..4).into()]), [&data[64..76]]);

    // Every other row: one run per row.
    assert_eq!(
        runs(&view, &[range(0, 4, 2)]),
        [&data[0..20], &data[40..60]]
    );

    // A column: one run per element.
    let column = runs(&view, &[SliceIndex::All, 1.into()]);
    assert_eq!(column.len(), 4);
    assert_eq!(
        column.concat(),
        [4, 5, 6, 7, 24, 25, 26, 27, 44, 45, 46, 47, 64, 65, 66, 67]
    );
}

#[test]
fn zero_sized_dimensions_select_nothing() {
    let data: [u8; 0] = [];
    let view = TensorView::new(Dtype::U8, &[2, 0, 3], &data).unwrap();
    for (indices, shape) in [
        (&[][..], &[2, 0, 3][..]),
        (&[SliceIndex::Select(1)], &[0, 3]),
        (&[SliceIndex::All, range(0, 0, 1)], &[2, 0, 3]),
        (
            &[SliceIndex::All, SliceIndex::All, SliceIndex::Select(2)],
            &[2, 0],
        ),
    ] {
        let iter = view.slice(indices).unwrap();
        assert_eq!(iter.shape(), shape, "{indices:?}");
        assert_eq!((iter.len(), iter.remaining_bytes()), (0, 0));
        assert!(iter.to_vec().is_empty());
    }
    let err = slice_err(&view, &[SliceIndex::All, SliceIndex::Select(0)]);
    assert_eq!(
        err.to_string(),
        "index 0 is out of bounds for dimension 1 of size 0"
    );
}

#[test]
fn stop_at_or_before_start_is_empty() {
    let data = bytes(3 * 2);
    let view = TensorView::new(Dtype::U8, &[3, 2], &data).unwrap();
    for index in [
        range(2, 1, 1),
        range(2, 2, 1),
        range(3, 3, 1),
        range(3, 0, 2),
    ] {
        let iter = view.slice(&[index]).unwrap();
        assert_eq!(iter.shape(), [0, 2], "{index:?}");
        assert_eq!((iter.len(), iter.remaining_bytes()), (0, 0));
        assert!(iter.to_vec().is_empty());
    }
    // Empty in an inner dimension too, whatever the outer ones select.
    let iter = view.slice(&[range(0, 3, 2), range(1, 1, 1)]).unwrap();
    assert_eq!((iter.shape(), iter.len()), (&[2, 0][..], 0));
}

#[test]
fn bad_indices_are_errors_with_clear_messages() {
    let data = bytes(2 * 3);
    let view = TensorView::new(Dtype::U8, &[2, 3], &data).unwrap();
    let cases = [
        (
            vec![SliceIndex::All; 3],
            "too many indices for a tensor of rank 2: 3",
        ),
        (
            vec![SliceIndex::Select(2)],
            "index 2 is out of bounds for dimension 0 of size 2",
        ),
        (
            vec![SliceIndex::All, SliceIndex::Select(usize::MAX)],
            "index 18446744073709551615 is out of bounds for dimension 1 of size 3",
        ),
        (
            vec![SliceIndex::All, range(4, 3, 1)],
            "index 4 is out of bounds for dimension 1 of size 3",
        ),
        (
            vec![SliceIndex::All, range(0, 4, 1)],
            "index 4 is out of bounds for dimension 1 of size 3",
        ),
        (
            vec![range(0, 2, 0)],
            "slice step must be at least 1 (dimension 0)",
        ),
        (
            vec![SliceIndex::All, range(0, 3, 0)],
            "slice step must be at least 1 (dimension 1)",
        ),
        // Several bad indices: the first is the one reported.
        (
            vec![SliceIndex::Select(5), SliceIndex::Select(7)],
            "index 5 is out of bounds for dimension 0 of size 2",
        ),
    ];
    for (indices, message) in cases {
        let err = slice_err(&view, &indices);
        assert_eq!(err.to_string(), message, "{indices:?}");
    }
    assert!(matches!(
        slice_err(&view, &[SliceIndex::All; 3]),
        Error::SliceRank { given: 3, rank: 2 }
    ));
    assert!(matches!(
        slice_err(&view, &[SliceIndex::All, range(0, 4, 1)]),
        Error::SliceOutOfRange {
            dim: 1,
            index: 4,
            size: 3
        }
    ));
    assert!(matches!(
        slice_err(&view, &[SliceIndex::All, range(0, 3, 0)]),
        Error::ZeroStep { dim: 1 }
    ));
}

#[test]
fn byte_aligned_sub_byte_slices_give_their_bytes() {
    // F4 [4, 6]: each row is 24 bits, 3 bytes.
    let data = bytes(12);
    let view = TensorView::new(Dtype::F4, &[4, 6], &data).unwrap();
    let rows = view.slice(&[(1..3).into()]).unwrap();
    assert_eq!(rows.shape(), [2, 6]);
    assert_eq!(rows.to_vec(), &data[3..9]);
    assert_eq!(view.slice(&[3.into()]).unwrap().to_vec(), &data[9..12]);
    // Columns 0..2 of every row: the first byte of each row.
    let columns = view.slice(&[SliceIndex::All, (0..2).into()]).unwrap();
    assert_eq!(columns.shape(), [4, 2]);
    assert_eq!(columns.to_vec(), [0, 3, 6, 9]);
    // Columns 2..6 of rows 0 and 2.
    let block = view.slice(&[range(0, 4, 2), (2..6).into()]).unwrap();
    assert_eq!(block.to_vec(), [1, 2, 7, 8]);
    assert_eq!(view.slice(&[]).unwrap().to_vec(), data);

    // F6_E2M3 [4, 4]: each row is 24 bits, 3 bytes.
    let view = TensorView::new(Dtype::F6_E2M3, &[4, 4], &data).unwrap();
    assert_eq!(view.slice(&[1.into()]).unwrap().to_vec(), &data[3..6]);
    assert_eq!(
        view.slice(&[range(1, 4, 2)]).unwrap().to_vec(),
        [3, 4, 5, 9, 10, 11]
    );
}

#[test]
fn misaligned_sub_byte_slices_are_errors() {
    let data = bytes(12);
    let cases: [(Dtype, &[usize], Vec<SliceIndex>, &str); 5] = [
        // Row 1 is bits 12..24.
        (
            Dtype::F4,
            &[4, 3],
            vec![1.into()],
            "this slice of a F4 tensor of shape [4, 3] does not select whole bytes",
        ),
        // Columns 1..3 start half way into a byte.
        (
            Dtype::F4,
            &[4, 6],
            vec![SliceIndex::All, (1..3).into()],
            "this slice of a F4 tensor of shape [4, 6] does not select whole bytes",
        ),
        // A single element, half a byte.
        (
            Dtype::F4,
            &[4, 6],
            vec![0.into(), 0.into()],
            "this slice of a F4 tensor of shape [4, 6] does not select whole bytes",
        ),
        // Row 1 is 18 bits at bit 18.
        (
            Dtype::F6_E2M3,
            &[4, 3],
            vec![1.into()],
            "this slice of a F6_E2M3 tensor of shape [4, 3] does not select whole bytes",
        ),
        // Rows 0 and 2 start at whole bytes but are 18 bits each.
        (
            Dtype::F6_E3M2,
            &[4, 3],
            vec![range(0, 4, 2)],
            "this slice of a F6_E3M2 tensor of shape [4, 3] does not select whole bytes",
        ),
    ];
    for (dtype, shape, indices, message) in cases {
        let len = ironsafe::bit_len(dtype, shape).unwrap() / 8;
        let view = TensorView::new(dtype, shape, &data[..len]).unwrap();
        let err = slice_err(&view, &indices);
        assert_eq!(err.to_string(), message);
        assert!(
            matches!(err, Error::MisalignedSlice { dtype: d, ref shape } if d == dtype && shape == view.shape()),
            "{err:?}"
        );
    }
}

#[test]
fn a_huge_step_takes_only_the_first_position() {
    let data = bytes(5 * 3);
    let view = TensorView::new(Dtype::U8, &[5, 3], &data).unwrap();
    let iter = view.slice(&[range(0, 5, usize::MAX)]).unwrap();
    assert_eq!(iter.shape(), [1, 3]);
    assert_eq!(iter.to_vec(), [0, 1, 2]);
    let iter = view
        .slice(&[range(2, 5, usize::MAX), range(1, 3, usize::MAX)])
        .unwrap();
    assert_eq!(iter.shape(), [1, 1]);
    assert_eq!(iter.to_vec(), [7]);
    let iter = view.slice(&[range(5, 5, usize::MAX)]).unwrap();
    assert_eq!((iter.shape(), iter.len()), (&[0, 3][..], 0));

    // A long dimension.
    let data = vec![7u8; 1 << 20];
    let view = TensorView::new(Dtype::U8, &[1 << 20], &data).unwrap();
    let iter = view.slice(&[range(3, 1 << 20, usize::MAX)]).unwrap();
    assert_eq!(iter.shape(), [1]);
    assert_eq!(iter.to_vec(), [7]);
    let iter = view.slice(&[range(0, 1 << 20, (1 << 20) - 1)]).unwrap();
    assert_eq!(iter.shape(), [2]);
}

/// A tensor with no elements may still have dimensions whose product with the
/// element size overflows: `bit_len` is 0, so both `TensorView::new` and the
/// reader accept it. Slicing it must not overflow.
#[test]
fn empty_tensors_with_huge_dimensions_slice_without_overflow() {
    let data: [u8; 0] = [];
    let shape = [0, usize::MAX, 2];
    let view = TensorView::new(Dtype::U8, &shape, &data).unwrap();
    // The reader accepts such a tensor from an untrusted file.
    let file =
        ironsafe::serialize([("t", view)], None, &ironsafe::WriteOptions::default()).unwrap();
    let file = ironsafe::SafeTensors::deserialize(&file[..]).unwrap();
    let iter = file.tensor("t").unwrap().slice(&[]).unwrap();
    assert_eq!((iter.shape(), iter.len()), (&shape[..], 0));
    let iter = view
        .slice(&[SliceIndex::All, SliceIndex::Select(5)])
        .unwrap();
    assert_eq!((iter.shape(), iter.len()), (&[0, 2][..], 0));
}
