//! The legacy format of `torch.save(..., _use_new_zipfile_serialization=False)`:
//! five pickles one after the other (magic number, protocol version, system
//! info, the object, the list of storage keys), then each storage's bytes
//! in that list's order, each prefixed by its element count as 8 bytes
//! little-endian.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::machine::Limits;
use crate::value::{Object, Pickle, Value};

/// The magic number torch writes first, as its `LONG1` opcode: 10 bytes of
/// little-endian `0x1950a86a20f9469cfc6c`.
const MAGIC: [u8; 12] = [
    0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];
/// Where the magic number can start: after `PROTO n`, and after a `FRAME`
/// header with protocol 4 and above.
const MAGIC_AT: [usize; 2] = [2, 11];
/// The only legacy protocol version torch writes.
const PROTOCOL_VERSION: i64 = 1001;

/// Whether `data` starts like a legacy checkpoint.
pub(crate) fn is_legacy(data: &[u8]) -> bool {
    data.first() == Some(&0x80)
        && MAGIC_AT
            .iter()
            .any(|&at| data.get(at..at + MAGIC.len()) == Some(&MAGIC))
}

/// The object pickle and where each storage's bytes are.
pub(crate) fn read(
    data: &[u8],
    limits: &Limits,
) -> Result<(Pickle, HashMap<String, Range<usize>>)> {
    let magic = parse(data, 0, "the magic number pickle", limits)?;
    let protocol = parse(data, magic.end, "the protocol version pickle", limits)?;
    if !matches!(protocol.root, Value::Int(PROTOCOL_VERSION)) {
        return Err(Error::NotACheckpoint(format!(
            "legacy protocol version {}, not {PROTOCOL_VERSION}",
            protocol.kind(protocol.root)
        )));
    }
    let sys_info = parse(data, protocol.end, "the system info pickle", limits)?;
    if little_endian(&sys_info) == Some(false) {
        return Err(Error::BigEndian);
    }
    let main = parse(data, sys_info.end, "the object pickle", limits)?;
    let keys = parse(data, main.end, "the storage key pickle", limits)?;
    let declared = main.storages()?;

    let mut ranges = HashMap::new();
    let mut at = keys.end;
    for key in storage_keys(&keys)? {
        let storage = declared
            .get(key)
            .ok_or_else(|| Error::MissingStorage(key.to_owned()))?;
        let count = data
            .get(at..at + 8)
            .map(|bytes| u64::from_le_bytes(bytes.try_into().unwrap_or_default()))
            .ok_or_else(|| storage_past_end(key))?;
        let stored = count.checked_mul(storage.dtype.size as u64);
        if count != storage.numel {
            return Err(Error::StorageSize {
                key: key.to_owned(),
                declared: storage.byte_len().unwrap_or(u64::MAX),
                stored: stored.unwrap_or(u64::MAX),
            });
        }
        let start = at + 8;
        let end = stored
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| storage_past_end(key))?;
        if ranges.insert(key.to_owned(), start..end).is_some() {
            return Err(Error::NotACheckpoint(format!(
                "storage `{key}` is listed twice"
            )));
        }
        at = end;
    }
    Ok((main, ranges))
}

fn parse(data: &[u8], start: usize, part: &str, limits: &Limits) -> Result<Pickle> {
    Pickle::parse_at(data, start, limits).map_err(|err| err.in_part(part))
}

fn storage_past_end(key: &str) -> Error {
    Error::NotACheckpoint(format!("storage `{key}` runs past the end of the file"))
}

/// `sys_info["little_endian"]`, if the pickle says.
fn little_endian(sys_info: &Pickle) -> Option<bool> {
    let Value::Obj(id) = sys_info.root else {
        return None;
    };
    let Object::Dict(entries) = sys_info.object(id) else {
        return None;
    };
    entries.iter().find_map(|&(key, value)| match value {
        Value::Bool(little) if sys_info.str(key) == Some("little_endian") => Some(little),
        _ => None,
    })
}

/// The storage keys, in the order their bytes follow.
fn storage_keys(keys: &Pickle) -> Result<Vec<&str>> {
    let not_a_list =
        || Error::NotACheckpoint("the storage key pickle is not a list of strings".into());
    let Value::Obj(id) = keys.root else {
        return Err(not_a_list());
    };
    let Object::List(items) = keys.object(id) else {
        return Err(not_a_list());
    };
    items
        .iter()
        .map(|&item| keys.str(item).ok_or_else(not_a_list))
        .collect()
}
