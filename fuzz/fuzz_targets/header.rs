//! Arbitrary bytes as a safetensors file. Parsing must return a file or an
//! error, never panic; the strict parser and the problem-collecting one must
//! agree on validity; and a file that parses must write back to bytes that
//! parse to the same tensors.

#![no_main]

use ironsafe::{Header, ReadOptions, SafeTensors, WriteOptions, serialize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = SafeTensors::deserialize(data);
    let collected = Header::validate_from(data, &ReadOptions::default());
    assert_eq!(strict.is_ok(), collected.is_ok());
    if let Err(problems) = &collected {
        assert!(!problems.is_empty());
    }
    let Ok(file) = strict else {
        return;
    };
    let tensors: Vec<_> = file.tensors().collect();
    let written = serialize(tensors.iter().copied(), file.metadata(), &WriteOptions::default())
        .expect("a file that parsed writes back");
    let again = SafeTensors::deserialize(&written[..]).expect("written bytes parse");
    assert_eq!(again.metadata(), file.metadata());
    // The writer orders tensors its own way (by dtype, then name): compare
    // them by name.
    assert!(again.tensors_by_name().eq(file.tensors_by_name()));
});
