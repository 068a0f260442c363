//! Properties of the whole format: what is written reads back the same, and
//! no input, however broken, makes the reader panic or hand out a bad view.

use std::collections::BTreeMap;

use ironsafe::{Dtype, Metadata, SafeTensors, TensorView, WriteOptions, serialize};
use proptest::prelude::*;

/// A tensor to write: dtype, shape and bytes.
#[derive(Debug, Clone)]
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Tensor {
    fn view(&self) -> TensorView<'_> {
        TensorView::new(self.dtype, &self.shape, &self.data).unwrap()
    }
}

/// Names of every kind: plain, any printable unicode, and any chars at all
/// (quotes, backslashes, control characters), never the reserved key.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.]{0,15}",
        "\\PC{0,8}",
        prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
    .prop_filter("reserved", |name| name != ironsafe::METADATA_KEY)
}

/// A tensor of any dtype whose size is a whole number of bytes.
fn tensor() -> impl Strategy<Value = Tensor> {
    (
        prop::sample::select(Dtype::ALL.to_vec()),
        prop::collection::vec(0..=5usize, 0..=3),
    )
        .prop_flat_map(|(dtype, mut shape)| {
            // A trailing dimension of 4 makes any sub-byte tensor whole bytes.
            if ironsafe::bit_len(dtype, &shape).unwrap() % 8 != 0 {
                shape.push(4);
            }
            let len = ironsafe::bit_len(dtype, &shape).unwrap() / 8;
            prop::collection::vec(any::<u8>(), len).prop_map(move |data| Tensor {
                dtype,
                shape: shape.clone(),
                data,
            })
        })
}

fn tensors(max: usize) -> impl Strategy<Value = BTreeMap<String, Tensor>> {
    prop::collection::btree_map(name(), tensor(), 0..=max)
}

fn metadata() -> impl Strategy<Value = Option<Metadata>> {
    prop::option::of(prop::collection::btree_map(
        "\\PC{0,10}",
        "\\PC{0,20}",
        0..4,
    ))
}

fn write(
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<&Metadata>,
    options: &WriteOptions,
) -> Vec<u8> {
    serialize(
        tensors.iter().map(|(name, tensor)| (name, tensor.view())),
        metadata,
        options,
    )
    .unwrap()
}

/// Everything a successfully parsed file promises: each view lies inside the
/// buffer, right after the header, sized as its dtype and shape say, and the
/// tensors tile the data section to the end of the buffer.
fn check_views(file: &SafeTensors<&[u8]>, buffer: &[u8]) -> Result<(), TestCaseError> {
    let header = file.header();
    prop_assert_eq!(header.data_start() + header.data_len(), buffer.len());
    prop_assert_eq!(file.names().count(), file.len());
    let buffer_start = buffer.as_ptr() as usize;
    let mut covered = 0;
    for (name, view) in file.tensors() {
        let data = view.data();
        let offset = data.as_ptr() as usize - buffer_start;
        prop_assert!(offset >= header.data_start());
        prop_assert!(offset + data.len() <= buffer.len());
        prop_assert_eq!(
            Some(data.len() * 8),
            ironsafe::bit_len(view.dtype(), view.shape())
        );
        prop_assert_eq!(offset, header.data_start() + covered);
        covered += data.len();
        prop_assert_eq!(file.tensor(name).unwrap(), view);
        let all = view.slice(&[]).unwrap();
        prop_assert_eq!(all.shape(), view.shape());
        prop_assert_eq!(all.to_vec(), data.to_vec());
    }
    prop_assert_eq!(covered, header.data_len());
    Ok(())
}

/// One change to a file's bytes. Positions are taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    /// One byte of the 8-byte header length.
    Prefix(usize, u8),
    /// The header length moved by a little.
    PrefixDelta(i64),
    /// An ASCII digit swapped for another, to bend shapes and offsets.
    Digit(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Append(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use prop::sample::Index;
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (0..8usize, any::<u8>()).prop_map(|(i, b)| Mutation::Prefix(i, b)),
        (-16..=16i64).prop_map(Mutation::PrefixDelta),
        (any::<Index>(), b'0'..=b'9').prop_map(|(i, d)| Mutation::Digit(i, d)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<u8>().prop_map(Mutation::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Replace(i, b) if len > 0 => bytes[i.index(len)] = b,
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), b),
        Mutation::Delete(i) if len > 0 => {
            bytes.remove(i.index(len));
        }
        Mutation::Prefix(i, b) if i < len => bytes[i] = b,
        Mutation::PrefixDelta(delta) if len >= 8 => {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            bytes[..8].copy_from_slice(&n.wrapping_add_signed(delta).to_le_bytes());
        }
        Mutation::Digit(i, d) => {
            let digits: Vec<usize> = (0..len).filter(|&j| bytes[j].is_ascii_digit()).collect();
            if !digits.is_empty() {
                bytes[digits[i.index(digits.len())]] = d;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Mutation::Append(b) => bytes.push(b),
        _ => {}
    }
}

/// One header entry of a generated file, mostly right, sometimes off: an
/// unknown dtype, offsets that skip or overlap, a stray field.
#[derive(Debug, Clone)]
struct RawEntry {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    skip: i64,
    stretch: i64,
    extra_field: bool,
}

fn skew() -> impl Strategy<Value = i64> {
    prop_oneof![8 => Just(0i64), 1 => -2..=2i64]
}

fn raw_entry() -> impl Strategy<Value = RawEntry> {
    let dtype = prop_oneof![
        20 => prop::sample::select(Dtype::ALL.to_vec()).prop_map(|d| d.name().to_owned()),
        1 => "[A-Z0-9_]{0,4}",
    ];
    (
        prop_oneof![20 => "[ab]{1,2}", 1 => Just(ironsafe::METADATA_KEY.to_owned())],
        dtype,
        prop::collection::vec(0..=4usize, 0..=3),
        skew(),
        skew(),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(name, dtype, shape, skip, stretch, extra_field)| RawEntry {
                name,
                dtype,
                shape,
                skip,
                stretch,
                extra_field,
            },
        )
}

/// A file built from generated entries whose offsets follow each other
/// unless skewed, with an optional metadata entry, padding and a data
/// section of about the right length: most parse, many fail late.
fn nearly_valid_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(raw_entry(), 0..4),
        prop::bool::ANY,
        prop_oneof![
            2 => Just(String::new()),
            2 => Just(r#""__metadata__":{"k":"v","x":""},"#.to_owned()),
            1 => Just(r#""__metadata__":{"k":1},"#.to_owned()),
            1 => Just(r#""__metadata__":{"k":"v","k":"w"},"#.to_owned()),
        ],
        0..8usize,
        skew(),
        any::<u8>(),
    )
        .prop_map(|(entries, reverse, metadata, padding, tail, fill)| {
            let mut cursor = 0i64;
            let mut parts = Vec::new();
            for entry in &entries {
                let bits = entry
                    .dtype
                    .parse::<Dtype>()
                    .ok()
                    .and_then(|dtype| ironsafe::bit_len(dtype, &entry.shape));
                let size = i64::try_from(bits.map_or(1, |bits| bits / 8)).unwrap();
                let begin = (cursor + entry.skip).max(0);
                let end = (begin + size + entry.stretch).max(0);
                cursor = end;
                let shape: Vec<String> = entry.shape.iter().map(ToString::to_string).collect();
                let extra = if entry.extra_field { r#","x":1"# } else { "" };
                parts.push(format!(
                    r#""{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{begin},{end}]{extra}}}"#,
                    entry.name,
                    entry.dtype,
                    shape.join(","),
                ));
            }
            if reverse {
                parts.reverse();
            }
            let json = format!("{{{metadata}{}}}{}", parts.join(","), " ".repeat(padding));
            let json = json.replacen(",}", "}", 1);
            let data_len = usize::try_from((cursor + tail).max(0)).unwrap();
            let mut file = (json.len() as u64).to_le_bytes().to_vec();
            file.extend_from_slice(json.as_bytes());
            file.resize(file.len() + data_len, fill);
            file
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    #[test]
    fn what_is_written_reads_back(tensors in tensors(6), metadata in metadata()) {
        let bytes = write(&tensors, metadata.as_ref(), &WriteOptions::default());
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        prop_assert_eq!(header_len % 8, 0);

        let file = SafeTensors::deserialize(&bytes[..]).unwrap();
        prop_assert_eq!(file.header().header_len() as u64, header_len);
        prop_assert_eq!(file.header().data_start() % 8, 0);
        prop_assert_eq!(file.metadata(), metadata.as_ref());
        prop_assert!(file.names().eq(tensors.keys().map(String::as_str)));
        for (name, tensor) in &tensors {
            let view = file.tensor(name).unwrap();
            prop_assert_eq!(view.dtype(), tensor.dtype);
            prop_assert_eq!(view.shape(), &tensor.shape[..]);
            prop_assert_eq!(view.data(), &tensor.data[..]);
        }
        // Widest dtypes first, so every tensor starts on its natural alignment.
        for info in file.header().tensors() {
            let align = (info.dtype.bits() / 8).max(1);
            prop_assert_eq!(info.data_offsets.0 % align, 0, "{:?}", info);
        }
        check_views(&file, &bytes)?;
    }

    #[test]
    fn alignment_moves_only_the_data_start(tensors in tensors(4), metadata in metadata()) {
        let plain = write(&tensors, metadata.as_ref(), &WriteOptions::default());
        let plain_file = SafeTensors::deserialize(&plain[..]).unwrap();
        let plain_start = plain_file.header().data_start();
        for alignment in [8, 64, 4096] {
            let options = WriteOptions::default().alignment(alignment);
            let bytes = write(&tensors, metadata.as_ref(), &options);
            let file = SafeTensors::deserialize(&bytes[..]).unwrap();
            let start = file.header().data_start();
            prop_assert_eq!(start % alignment, 0);
            prop_assert!(start < plain_start + alignment);
            prop_assert_eq!(&bytes[start..], &plain[plain_start..]);
            prop_assert_eq!(file.header().tensors(), plain_file.header().tensors());
            prop_assert_eq!(file.metadata(), metadata.as_ref());
            // The same JSON, only padded further with spaces.
            let json = std::str::from_utf8(&bytes[8..start]).unwrap();
            let plain_json = std::str::from_utf8(&plain[8..plain_start]).unwrap();
            prop_assert_eq!(json.trim_end_matches(' '), plain_json.trim_end_matches(' '));
            check_views(&file, &bytes)?;
        }
    }

    #[test]
    fn serialize_is_deterministic_and_ignores_input_order(
        tensors in tensors(6),
        metadata in metadata(),
        rotate in any::<prop::sample::Index>(),
    ) {
        let entries: Vec<(&String, &Tensor)> = tensors.iter().collect();
        let once = write(&tensors, metadata.as_ref(), &WriteOptions::default());
        let again = write(&tensors, metadata.as_ref(), &WriteOptions::default());
        prop_assert_eq!(&once, &again);

        let reversed = serialize(
            entries.iter().rev().map(|(name, tensor)| (name, tensor.view())),
            metadata.as_ref(),
            &WriteOptions::default(),
        )
        .unwrap();
        prop_assert_eq!(&once, &reversed);

        let mut rotated = entries.clone();
        if !rotated.is_empty() {
            rotated.rotate_left(rotate.index(entries.len()));
        }
        let rotated = serialize(
            rotated.iter().map(|(name, tensor)| (name, tensor.view())),
            metadata.as_ref(),
            &WriteOptions::default(),
        )
        .unwrap();
        prop_assert_eq!(&once, &rotated);
    }

    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(file) = SafeTensors::deserialize(&bytes[..]) {
            check_views(&file, &bytes)?;
        }
    }

    #[test]
    fn any_header_after_a_valid_length_parses_or_fails_cleanly(
        json in prop::collection::vec(any::<u8>(), 0..256),
        data in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&data);
        if let Ok(file) = SafeTensors::deserialize(&bytes[..]) {
            check_views(&file, &bytes)?;
        }
    }

    #[test]
    fn nearly_valid_headers_parse_or_fail_cleanly(file in nearly_valid_file()) {
        if let Ok(parsed) = SafeTensors::deserialize(&file[..]) {
            check_views(&parsed, &file)?;
        }
    }

    #[test]
    fn mutated_files_parse_or_fail_cleanly(
        tensors in tensors(3),
        metadata in metadata(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = write(&tensors, metadata.as_ref(), &WriteOptions::default());
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        if let Ok(file) = SafeTensors::deserialize(&bytes[..]) {
            check_views(&file, &bytes)?;
        }
    }
}
