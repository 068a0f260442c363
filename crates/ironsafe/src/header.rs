//! The header: parsing and validating the 8-byte length and the JSON that
//! describes every tensor.
//!
//! Parsing only ever allocates in proportion to bytes that are really there:
//! the header length is checked against the input before anything is read,
//! and no size claimed inside the JSON is used to reserve memory.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::slice::{SliceIndex, SliceRanges};
use crate::source::ByteSource;
use crate::tensor::byte_len;
use crate::{Dtype, Error, Result};

/// The reference's limit on the header length, in bytes.
pub const MAX_HEADER_SIZE: usize = 100_000_000;

/// The key under which a header keeps its string-to-string metadata.
pub const METADATA_KEY: &str = "__metadata__";

/// Metadata: free-form string pairs stored in the header.
pub type Metadata = BTreeMap<String, String>;

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The largest header accepted, in bytes. Defaults to the reference's
    /// 100,000,000; raise it for checkpoints with bigger headers.
    pub max_header_size: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_header_size: MAX_HEADER_SIZE,
        }
    }
}

impl ReadOptions {
    /// Sets [`ReadOptions::max_header_size`].
    #[must_use]
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes;
        self
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Its bytes, relative to the start of the data section, end exclusive.
    pub data_offsets: (usize, usize),
}

impl TensorInfo {
    /// The number of bytes of tensor data.
    #[must_use]
    pub fn byte_len(&self) -> usize {
        self.data_offsets.1 - self.data_offsets.0
    }

    /// The byte ranges, relative to the tensor's first byte, that a slice
    /// selects: for reading a slice straight from a [`ByteSource`].
    pub fn slice_ranges(&self, indices: &[SliceIndex]) -> Result<SliceRanges> {
        SliceRanges::new(self.dtype, &self.shape, self.byte_len() * 8, indices)
    }
}

/// A parsed and validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    metadata: Option<Metadata>,
    /// In file order: ascending data offsets.
    tensors: Vec<TensorInfo>,
    /// Indices into `tensors`, ordered by name.
    by_name: Vec<usize>,
    /// The header length N, padding included.
    len: usize,
}

impl Header {
    /// Parses the header of a complete file held in `file` (length prefix,
    /// header and data) and checks it against the file's length.
    pub fn parse(file: &[u8], options: &ReadOptions) -> Result<Self> {
        let prefix: [u8; 8] = file
            .get(..8)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(Error::HeaderTooSmall {
                len: file.len() as u64,
            })?;
        let len = header_len(prefix, file.len() as u64, options)?;
        Self::from_json(&file[8..8 + len], file.len() as u64, &mut Problems::Stop)
    }

    /// Reads and parses the header of the file `source` holds, reading only
    /// the length prefix and the header itself.
    pub fn read_from<S: ByteSource + ?Sized>(source: &S, options: &ReadOptions) -> Result<Self> {
        let (json, file_len) = read_json(source, options)?;
        Self::from_json(&json, file_len, &mut Problems::Stop)
    }

    /// Reads the header of the file `source` holds like
    /// [`Header::read_from`], but on failure reports every problem it can
    /// find rather than the first: each bad tensor entry, each duplicate
    /// key, each hole or overlap, the data length. A header too broken to
    /// read on (not JSON, a bad length prefix) and I/O errors give a single
    /// error. The returned list is never empty.
    pub fn validate_from<S: ByteSource + ?Sized>(
        source: &S,
        options: &ReadOptions,
    ) -> Result<Self, Vec<Error>> {
        let mut problems = Problems::Collect(Vec::new());
        let header = read_json(source, options)
            .and_then(|(json, file_len)| Self::from_json(&json, file_len, &mut problems));
        let mut found = problems.into_found();
        match header {
            Ok(header) if found.is_empty() => Ok(header),
            Ok(_) => Err(found),
            Err(fatal) => {
                found.push(fatal);
                Err(found)
            }
        }
    }

    /// Parses the JSON of a header of `json.len()` bytes that belongs to a
    /// file of `file_len` bytes. Problems that leave the rest readable go to
    /// `problems`; the others end parsing.
    fn from_json(json: &[u8], file_len: u64, problems: &mut Problems) -> Result<Self> {
        let text = std::str::from_utf8(json).map_err(|err| Error::HeaderNotUtf8 {
            valid_up_to: err.valid_up_to(),
        })?;
        let Entries(entries) = serde_json::from_str(text).map_err(Error::HeaderJson)?;

        // Seen once at most; `null` reads as no metadata, as in the reference.
        let mut metadata: Option<Option<Metadata>> = None;
        let mut tensors = Vec::with_capacity(entries.len());
        for (name, raw) in entries {
            if name == METADATA_KEY {
                if metadata.is_some() {
                    problems.report(Error::DuplicateKey(name))?;
                    continue;
                }
                metadata = Some(parse_metadata(raw, problems)?);
            } else {
                tensors.push((name, raw));
            }
        }
        let by_name = unique_names(&mut tensors, problems)?;
        let count = tensors.len();
        let mut infos = Vec::with_capacity(count);
        for (name, raw) in tensors {
            match parse_entry(name, raw) {
                Ok(info) => infos.push(info),
                Err(err) => problems.report(err)?,
            }
        }
        // Entries dropped for their problems shift the positions, and leave
        // the data length unknown.
        let dropped = infos.len() != count;
        let by_name = if dropped {
            name_order(&infos, |info| &info.name).0
        } else {
            by_name
        };
        let (tensors, by_name) = into_file_order(infos, by_name, problems)?;

        let data_len = tensors.last().map_or(0, |last| last.data_offsets.1) as u64;
        let available = file_len - 8 - json.len() as u64;
        if data_len != available && !dropped {
            problems.report(Error::DataLengthMismatch {
                expected: data_len,
                actual: available,
            })?;
        }
        Ok(Self {
            metadata: metadata.flatten(),
            tensors,
            by_name,
            len: json.len(),
        })
    }

    /// The metadata, if the header has a `__metadata__` entry.
    #[must_use]
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// The tensors in file order (ascending data offsets).
    #[must_use]
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensors in name order.
    pub fn tensors_by_name(&self) -> impl ExactSizeIterator<Item = &TensorInfo> + '_ {
        self.by_name.iter().map(|&index| &self.tensors[index])
    }

    /// The entry of the tensor called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name
            .binary_search_by(|&index| self.tensors[index].name.as_str().cmp(name))
            .ok()
            .map(|found| &self.tensors[self.by_name[found]])
    }

    /// The number of tensors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensor.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The header length N, padding included.
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.len
    }

    /// The file offset where tensor data starts: `8 + N`.
    #[must_use]
    pub fn data_start(&self) -> usize {
        8 + self.len
    }

    /// The length of the data section.
    #[must_use]
    pub fn data_len(&self) -> usize {
        self.tensors.last().map_or(0, |last| last.data_offsets.1)
    }
}

/// Where the problems of a header go.
enum Problems {
    /// The first problem ends parsing: the reader's way.
    Stop,
    /// Every problem is kept, and parsing goes on past those it can.
    Collect(Vec<Error>),
}

impl Problems {
    /// Hands over a problem that parsing can go on after; fails when this
    /// one must stop it.
    fn report(&mut self, problem: Error) -> Result<()> {
        match self {
            Problems::Stop => Err(problem),
            Problems::Collect(found) => {
                found.push(problem);
                Ok(())
            }
        }
    }

    /// The problems collected.
    fn into_found(self) -> Vec<Error> {
        match self {
            Problems::Stop => Vec::new(),
            Problems::Collect(found) => found,
        }
    }
}

/// Reads the length prefix and the header JSON of the file `source` holds;
/// returns the JSON and the file's length.
fn read_json<S: ByteSource + ?Sized>(source: &S, options: &ReadOptions) -> Result<(Vec<u8>, u64)> {
    let file_len = source.size()?;
    if file_len < 8 {
        return Err(Error::HeaderTooSmall { len: file_len });
    }
    let mut prefix = [0; 8];
    source.read_exact_at(0, &mut prefix)?;
    let len = header_len(prefix, file_len, options)?;
    let mut json = vec![0; len];
    source.read_exact_at(8, &mut json)?;
    Ok((json, file_len))
}

/// Decodes the header length from the 8-byte prefix and checks it against the
/// limit and the file's length.
fn header_len(prefix: [u8; 8], file_len: u64, options: &ReadOptions) -> Result<usize> {
    let len = u64::from_le_bytes(prefix);
    let too_large = Error::HeaderTooLarge {
        len,
        limit: options.max_header_size,
    };
    let len = usize::try_from(len).map_err(|_| too_large)?;
    if len > options.max_header_size {
        return Err(Error::HeaderTooLarge {
            len: len as u64,
            limit: options.max_header_size,
        });
    }
    let available = file_len - 8;
    if len as u64 > available {
        return Err(Error::InvalidHeaderLength {
            len: len as u64,
            available,
        });
    }
    Ok(len)
}

/// Indices of `items` sorted by name, and the indices of the items whose
/// name an earlier item already has.
pub(crate) fn name_order<T>(items: &[T], name: impl Fn(&T) -> &str) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable, so that of equal names the first item comes first.
    order.sort_by(|&a, &b| name(&items[a]).cmp(name(&items[b])));
    let repeats = order
        .windows(2)
        .filter(|pair| name(&items[pair[0]]) == name(&items[pair[1]]))
        .map(|pair| pair[1])
        .collect();
    (order, repeats)
}

/// Reports and drops each tensor whose name an earlier one has; returns the
/// name order of those left.
fn unique_names<T>(tensors: &mut Vec<(String, T)>, problems: &mut Problems) -> Result<Vec<usize>> {
    let (order, repeats) = name_order(tensors, |(name, _)| name);
    if repeats.is_empty() {
        return Ok(order);
    }
    let mut repeated = vec![false; tensors.len()];
    for index in repeats {
        problems.report(Error::DuplicateKey(tensors[index].0.clone()))?;
        repeated[index] = true;
    }
    let mut index = 0;
    tensors.retain(|_| {
        index += 1;
        !repeated[index - 1]
    });
    Ok(name_order(tensors, |(name, _)| name).0)
}

/// The `dtype`/`shape`/`data_offsets` object of one tensor, nothing more.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry<'a> {
    #[serde(borrow)]
    dtype: std::borrow::Cow<'a, str>,
    shape: Vec<usize>,
    #[serde(deserialize_with = "offset_pair")]
    data_offsets: (usize, usize),
}

/// `[begin, end]`, with an error that says so for any other length.
fn offset_pair<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(usize, usize), D::Error> {
    let offsets = Vec::<usize>::deserialize(deserializer)?;
    match offsets[..] {
        [begin, end] => Ok((begin, end)),
        _ => Err(serde::de::Error::invalid_length(
            offsets.len(),
            &"[begin, end]",
        )),
    }
}

fn parse_entry(name: String, raw: &RawValue) -> Result<TensorInfo> {
    // serde's derived structs also take their fields as a list,
    // `["U8", [1], [0, 1]]`; an entry of the format is an object.
    let parsed = if raw.get().starts_with('[') {
        Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Seq,
            &"struct RawEntry",
        ))
    } else {
        serde_json::from_str::<RawEntry<'_>>(raw.get())
    };
    let entry = match parsed {
        Ok(entry) => entry,
        Err(source) => {
            return Err(Error::InvalidEntry {
                tensor: name,
                source,
            });
        }
    };
    let Ok(dtype) = entry.dtype.parse() else {
        return Err(Error::UnknownDtype {
            tensor: name,
            dtype: entry.dtype.into_owned(),
        });
    };
    // Sizes are checked here, offsets once every tensor is known.
    byte_len(&name, dtype, &entry.shape)?;
    Ok(TensorInfo {
        name,
        dtype,
        shape: entry.shape,
        data_offsets: entry.data_offsets,
    })
}

fn parse_metadata(raw: &RawValue, problems: &mut Problems) -> Result<Option<Metadata>> {
    let pairs: Option<Entries<String>> = match serde_json::from_str(raw.get()) {
        Ok(pairs) => pairs,
        Err(err) => {
            problems.report(Error::InvalidMetadata(err))?;
            return Ok(None);
        }
    };
    let Some(Entries(pairs)) = pairs else {
        return Ok(None);
    };
    let mut metadata = Metadata::new();
    for (key, value) in pairs {
        if metadata.contains_key(&key) {
            problems.report(Error::DuplicateMetadataKey(key))?;
            continue;
        }
        metadata.insert(key, value);
    }
    Ok(Some(metadata))
}

/// Sorts tensors by their offsets and checks that they tile the data section
/// from 0 with no hole or overlap, each range as long as its tensor. Returns
/// the sorted tensors and the name order remapped to the new positions.
fn into_file_order(
    tensors: Vec<TensorInfo>,
    by_name: Vec<usize>,
    problems: &mut Problems,
) -> Result<(Vec<TensorInfo>, Vec<usize>)> {
    let mut indexed: Vec<(usize, TensorInfo)> = tensors.into_iter().enumerate().collect();
    // Stable, so tensors with equal offsets (zero-sized ones) keep header order.
    indexed.sort_by_key(|(_, info)| info.data_offsets);
    let mut position = vec![0; indexed.len()];
    for (new, (old, _)) in indexed.iter().enumerate() {
        position[*old] = new;
    }
    let by_name = by_name.into_iter().map(|old| position[old]).collect();

    let mut sorted = Vec::with_capacity(indexed.len());
    let mut expected_begin = 0;
    for (_, info) in indexed {
        let (begin, end) = info.data_offsets;
        if begin != expected_begin || end < begin {
            problems.report(Error::InvalidOffsets {
                tensor: info.name.clone(),
                begin,
                end,
                expected_begin,
            })?;
        }
        let expected = byte_len(&info.name, info.dtype, &info.shape)?;
        if end >= begin && end - begin != expected {
            problems.report(Error::TensorSizeMismatch {
                tensor: info.name.clone(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                expected,
                actual: end - begin,
            })?;
        }
        // Go on from the furthest end seen, so that one hole or overlap is
        // reported once, not again for every tensor after it.
        expected_begin = expected_begin.max(end);
        sorted.push(info);
    }
    Ok((sorted, by_name))
}

/// A JSON object read as its key-value pairs in order, so that duplicate keys
/// are seen rather than silently merged.
struct Entries<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Entries(pairs))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
