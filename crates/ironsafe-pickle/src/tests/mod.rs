//! The crate's tests, by area; the inputs are written byte by byte with
//! the helpers of `testing.rs`.

mod checkpoint;
mod convert;
mod pickle;
mod zip;
