//! The zip reader: stored entries, zip64, and every refusal.

use crate::testing::{Entry, stored, zip};
use crate::zip::entries;

fn error(bytes: &[u8]) -> String {
    entries(bytes).unwrap_err().to_string()
}

#[test]
fn stored_entries_are_located_in_both_forms() {
    for zip64 in [false, true] {
        let bytes = zip(
            &[stored("a/data.pkl", b"pickle"), stored("a/data/0", b"")],
            zip64,
        );
        let found = entries(&bytes).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(&bytes[found["a/data.pkl"].clone()], b"pickle");
        assert!(found["a/data/0"].is_empty());
    }
}

#[test]
fn compressed_and_encrypted_entries_are_refused() {
    let deflated = zip(
        &[Entry {
            name: "a/data/0",
            data: &[0x4b, 0x4c, 0x04, 0x00],
            method: 8,
        }],
        false,
    );
    assert_eq!(
        error(&deflated),
        "zip entry `a/data/0` is compressed (method 8); only stored (uncompressed) entries are \
         read, nothing is inflated"
    );
    let mut encrypted = zip(&[stored("x", b"1")], false);
    let central = encrypted.len() - 22 - 47;
    encrypted[central + 8] = 1;
    assert_eq!(
        error(&encrypted),
        "malformed zip archive: entry `x` is encrypted"
    );
}

#[test]
fn a_deflate_bomb_is_refused_without_inflating() {
    // A claimed size of 4 GiB behind 16 bytes of deflate data: refused on
    // its method, before any size is used.
    let mut bomb = zip(
        &[Entry {
            name: "archive/data.pkl",
            data: &[0; 16],
            method: 8,
        }],
        false,
    );
    let central = bomb.len() - 22 - 46 - "archive/data.pkl".len();
    bomb[central + 24..central + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(error(&bomb).contains("is compressed (method 8)"));
}

#[test]
fn names_must_be_unique() {
    let twice = zip(&[stored("x", b"1"), stored("x", b"2")], false);
    assert_eq!(
        error(&twice),
        "malformed zip archive: entry `x` appears more than once"
    );
}

#[test]
fn overlapping_entries_are_refused() {
    let mut bytes = zip(&[stored("ab", b"1234"), stored("cd", b"5678")], false);
    // Grow the first entry's size so that its data runs over the second.
    let first_central = bytes.len() - 22 - 2 * 48;
    for at in [first_central + 20, first_central + 24] {
        bytes[at..at + 4].copy_from_slice(&40u32.to_le_bytes());
    }
    assert_eq!(
        error(&bytes),
        "malformed zip archive: entries `ab` and `cd` overlap"
    );
}

#[test]
fn broken_archives_say_what_is_wrong() {
    assert_eq!(
        error(b"PK\x03\x04 not really"),
        "malformed zip archive: no end-of-central-directory record"
    );
    let good = zip(&[stored("x", b"1")], false);
    let mut count = good.clone();
    let end = count.len() - 22;
    count[end + 10..end + 12].copy_from_slice(&1000u16.to_le_bytes());
    assert_eq!(
        error(&count),
        "malformed zip archive: the central directory claims 1000 entries in 47 bytes"
    );
    let mut offset = good.clone();
    let central = offset.len() - 22 - 47;
    offset[central + 42..central + 46].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        error(&offset),
        "malformed zip archive: entry `x` lacks its zip64 sizes"
    );
    let mut size = good.clone();
    for at in [central + 20, central + 24] {
        size[at..at + 4].copy_from_slice(&40u32.to_le_bytes());
    }
    assert_eq!(
        error(&size),
        "malformed zip archive: the data of entry `x` runs into the central directory"
    );
    let mut sizes = good;
    sizes[central + 20..central + 24].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(
        error(&sizes),
        "malformed zip archive: entry `x` is stored with 2 bytes but claims 1"
    );
}
