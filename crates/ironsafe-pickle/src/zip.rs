//! A small reader of the zip archives `torch.save` writes: the central
//! directory (zip64 included: torch writes it for large files), then each
//! entry's bytes located in place. Only stored (uncompressed) entries are
//! accepted, so nothing is ever inflated; names must be unique and entries
//! must not overlap.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::{Error, Result};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// The extra field that holds 64-bit sizes and offsets.
const ZIP64_EXTRA: u16 = 0x0001;

const END_LEN: usize = 22;
const LOCATOR_LEN: usize = 20;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

/// Whether `data` starts like a zip archive.
pub(crate) fn is_zip(data: &[u8]) -> bool {
    data.starts_with(&LOCAL_HEADER.to_le_bytes())
}

/// The archive's entries: each name with the byte range of its data.
pub(crate) fn entries(data: &[u8]) -> Result<HashMap<String, Range<usize>>> {
    let directory = Directory::find(data)?;
    let mut entries = HashMap::new();
    // Every entry's span from its local header to the end of its data; no
    // two may overlap, and none may reach into the central directory.
    let mut spans = Vec::new();
    let mut at = directory.offset as u64;
    for _ in 0..directory.count {
        let entry = Central::read(data, at)?;
        at = entry.next;
        let range = entry.locate(data)?;
        if range.end > directory.offset {
            return Err(zip_error(format!(
                "the data of entry `{}` runs into the central directory",
                entry.name
            )));
        }
        spans.push((range.start, range.end, entry.header, entry.name.clone()));
        if entries.insert(entry.name.clone(), range).is_some() {
            return Err(zip_error(format!(
                "entry `{}` appears more than once",
                entry.name
            )));
        }
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, end, _, first), (_, _, header, second)) = (&pair[0], &pair[1]);
        if *header < *end as u64 {
            return Err(zip_error(format!(
                "entries `{first}` and `{second}` overlap"
            )));
        }
    }
    Ok(entries)
}

fn zip_error(problem: impl Into<String>) -> Error {
    Error::Zip(problem.into())
}

/// `len` bytes at `at`, or an error naming what was being read.
fn bytes_at<'d>(data: &'d [u8], at: u64, len: usize, what: &str) -> Result<&'d [u8]> {
    usize::try_from(at)
        .ok()
        .and_then(|at| data.get(at..at.checked_add(len)?))
        .ok_or_else(|| {
            zip_error(format!(
                "the {what} at byte {at} runs past the end of the file"
            ))
        })
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Where the central directory is and how many entries it lists.
struct Directory {
    offset: usize,
    count: u64,
}

impl Directory {
    /// Finds the end-of-directory record (the last one: a comment of up to
    /// 64 KiB may follow it) and, if there is one, its zip64 form.
    fn find(data: &[u8]) -> Result<Directory> {
        let lowest = data.len().saturating_sub(END_LEN + usize::from(u16::MAX));
        let end = (lowest..=data.len().saturating_sub(END_LEN))
            .rev()
            .find(|&at| data.len() >= END_LEN && u32_at(data, at) == END_OF_DIRECTORY)
            .ok_or_else(|| zip_error("no end-of-central-directory record"))?;
        let record = &data[end..end + END_LEN];
        let (mut count, mut offset) =
            (u64::from(u16_at(record, 10)), u64::from(u32_at(record, 16)));
        let disks = (u16_at(record, 4), u16_at(record, 6));
        if let Some(locator) = end.checked_sub(LOCATOR_LEN).map(|at| &data[at..end])
            && u32_at(locator, 0) == ZIP64_LOCATOR
        {
            let record = bytes_at(
                data,
                u64_at(locator, 8),
                56,
                "zip64 end-of-directory record",
            )?;
            if u32_at(record, 0) != ZIP64_END_OF_DIRECTORY {
                return Err(zip_error("the zip64 locator points to no zip64 record"));
            }
            if (u32_at(record, 16), u32_at(record, 20)) != (0, 0) {
                return Err(zip_error("multi-disk archives are not supported"));
            }
            count = u64_at(record, 32);
            offset = u64_at(record, 48);
        } else if disks != (0, 0) {
            return Err(zip_error("multi-disk archives are not supported"));
        }
        let offset = usize::try_from(offset)
            .ok()
            .filter(|&offset| offset <= end)
            .ok_or_else(|| zip_error("the central directory starts past its end record"))?;
        // Each entry takes at least CENTRAL_LEN bytes: a count that cannot
        // fit is refused before looping over it.
        if count > ((end - offset) / CENTRAL_LEN) as u64 {
            return Err(zip_error(format!(
                "the central directory claims {count} entries in {} bytes",
                end - offset
            )));
        }
        Ok(Directory { offset, count })
    }
}

/// One entry of the central directory.
struct Central {
    name: String,
    /// The offset of its local header.
    header: u64,
    size: u64,
    /// The offset of the next central entry.
    next: u64,
}

impl Central {
    fn read(data: &[u8], at: u64) -> Result<Central> {
        let fixed = bytes_at(data, at, CENTRAL_LEN, "central directory entry")?;
        if u32_at(fixed, 0) != CENTRAL_HEADER {
            return Err(zip_error(format!(
                "no central directory entry at byte {at}"
            )));
        }
        let (flags, method) = (u16_at(fixed, 8), u16_at(fixed, 10));
        let (name_len, extra_len, comment_len) = (
            usize::from(u16_at(fixed, 28)),
            usize::from(u16_at(fixed, 30)),
            usize::from(u16_at(fixed, 32)),
        );
        let variable = bytes_at(
            data,
            at + CENTRAL_LEN as u64,
            name_len + extra_len,
            "central directory entry",
        )?;
        let name = std::str::from_utf8(&variable[..name_len])
            .map_err(|_| zip_error(format!("an entry name at byte {at} is not UTF-8")))?
            .to_owned();
        if flags & 1 != 0 {
            return Err(zip_error(format!("entry `{name}` is encrypted")));
        }
        if method != 0 {
            return Err(Error::CompressedEntry {
                entry: name,
                method,
            });
        }
        let mut compressed = u64::from(u32_at(fixed, 20));
        let mut size = u64::from(u32_at(fixed, 24));
        let mut header = u64::from(u32_at(fixed, 42));
        // The zip64 field holds, in this order, each value whose 32-bit
        // field is saturated.
        let mut wide = zip64_field(&variable[name_len..]).into_iter().flatten();
        for field in [&mut size, &mut compressed, &mut header] {
            if *field == u64::from(u32::MAX) {
                *field = wide
                    .next()
                    .ok_or_else(|| zip_error(format!("entry `{name}` lacks its zip64 sizes")))?;
            }
        }
        if compressed != size {
            return Err(zip_error(format!(
                "entry `{name}` is stored with {compressed} bytes but claims {size}"
            )));
        }
        let next = at + (CENTRAL_LEN + name_len + extra_len + comment_len) as u64;
        Ok(Central {
            name,
            header,
            size,
            next,
        })
    }

    /// The byte range of the entry's data, after its local header.
    fn locate(&self, data: &[u8]) -> Result<Range<usize>> {
        let fixed = bytes_at(data, self.header, LOCAL_LEN, "local header")?;
        if u32_at(fixed, 0) != LOCAL_HEADER {
            return Err(zip_error(format!(
                "entry `{}` has no local header at byte {}",
                self.name, self.header
            )));
        }
        let (name_len, extra_len) = (
            usize::from(u16_at(fixed, 26)),
            usize::from(u16_at(fixed, 28)),
        );
        let name = bytes_at(
            data,
            self.header + LOCAL_LEN as u64,
            name_len,
            "local header",
        )?;
        if name != self.name.as_bytes() {
            return Err(zip_error(format!(
                "entry `{}` has a local header with another name",
                self.name
            )));
        }
        let start = self.header + (LOCAL_LEN + name_len + extra_len) as u64;
        let past_end = || {
            zip_error(format!(
                "the data of entry `{}` runs past the end of the file",
                self.name
            ))
        };
        let start = usize::try_from(start).map_err(|_| past_end())?;
        let len = usize::try_from(self.size).map_err(|_| past_end())?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(past_end)?;
        Ok(start..end)
    }
}

/// The 64-bit values of a zip64 extra field, if the extra data has one.
fn zip64_field(mut extra: &[u8]) -> Option<impl Iterator<Item = u64> + '_> {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
        let body = extra.get(4..4 + len)?;
        if id == ZIP64_EXTRA {
            return Some(body.chunks_exact(8).map(|word| u64_at(word, 0)));
        }
        extra = &extra[4 + len..];
    }
    None
}
