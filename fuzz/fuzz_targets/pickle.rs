//! Arbitrary bytes as a pickle: the restricted machine must return a value
//! or an error, never panic, hang or exhaust memory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ironsafe_pickle::Pickle::parse(data);
});
