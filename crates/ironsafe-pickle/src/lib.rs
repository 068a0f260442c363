//! Converts torch checkpoints (`torch.save`, zip and legacy formats) to
//! safetensors **without executing pickle**.
//!
//! `torch.load` runs pickle, so a malicious checkpoint runs code. This crate
//! reads the pickle with a restricted machine instead: an allowlist of the
//! opcodes torch writes and of the globals it names (tensor rebuild
//! functions, storage types, dtypes, a few inert containers). Allowed
//! globals are interpreted into an inert value tree; nothing is imported or
//! called, and anything else is refused with its `module.name` and byte
//! offset.
//!
//! ```no_run
//! use std::path::Path;
//! use ironsafe_pickle::{ConvertOptions, convert};
//!
//! let options = ConvertOptions::default().key(Some("state_dict".into()));
//! let report = convert(Path::new("model.pt"), Path::new("model.safetensors"), &options)?;
//! println!("{} tensors, skipped {:?}", report.tensors.len(), report.skipped);
//! # Ok::<(), ironsafe_pickle::Error>(())
//! ```

mod checkpoint;
mod convert;
mod error;
mod globals;
mod legacy;
mod machine;
mod opcodes;
mod reduce;
mod tensor;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod value;
mod zip;

pub use checkpoint::Checkpoint;
pub use convert::{ConvertOptions, Report, convert};
pub use error::{Error, Result};
pub use machine::Limits;
pub use tensor::{Tensor, TensorData};
pub use value::Pickle;
