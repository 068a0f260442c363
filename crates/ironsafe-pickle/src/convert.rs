//! Converting a checkpoint to a safetensors file, as the reference's
//! `convert.py` does: shared storages deduplicated, every tensor written
//! contiguous, `{"format": "pt"}` in the metadata, and the output read back
//! and compared.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ironsafe::{Layout, Metadata, SafeTensors, View, WriteOptions};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How to convert: build it as a literal, or from [`ConvertOptions::default`]
/// (verification on) with the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Convert only the sub-dict under this top-level key (e.g.
    /// `state_dict` or `model_state`).
    pub key: Option<String>,
    /// Fail if any entry is not a tensor, instead of skipping it.
    pub strict: bool,
    /// Read the written file back and compare every tensor with the source
    /// (on by default).
    pub verify: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            key: None,
            strict: false,
            verify: true,
        }
    }
}

impl ConvertOptions {
    /// Sets [`ConvertOptions::key`].
    #[must_use]
    pub fn key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    /// Sets [`ConvertOptions::strict`].
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets [`ConvertOptions::verify`].
    #[must_use]
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The names of the tensors written, in name order.
    pub tensors: Vec<String>,
    /// Each name dropped because it is the same view of a storage as a kept
    /// name, mapped to that name (also recorded in the file's metadata).
    pub removed: BTreeMap<String, String>,
    /// The entries that are not tensors, which were skipped.
    pub skipped: Vec<String>,
}

/// Converts the torch checkpoint at `src` to a safetensors file at `dst`
/// (written atomically), without running pickle.
pub fn convert(src: &Path, dst: &Path, options: &ConvertOptions) -> Result<Report> {
    let checkpoint = Checkpoint::open_with(src, options.key.as_deref())?;
    if options.strict && !checkpoint.skipped().is_empty() {
        return Err(Error::NonTensorEntries(checkpoint.skipped().to_vec()).in_file(src));
    }
    let removed = shared_names(checkpoint.tensors());
    let mut metadata = Metadata::from([("format".to_owned(), "pt".to_owned())]);
    for (name, kept) in &removed {
        // As the reference does: a name already in the metadata stays.
        metadata.entry(name.clone()).or_insert_with(|| kept.clone());
    }
    let mut kept: Vec<&Tensor> = checkpoint
        .tensors()
        .iter()
        .filter(|tensor| !removed.contains_key(tensor.name()))
        .collect();
    kept.sort_by(|a, b| a.name().cmp(b.name()));

    let views = kept
        .iter()
        .map(|&tensor| (tensor.name(), checkpoint.data(tensor)));
    Layout::new(views, Some(&metadata), &WriteOptions::default())
        .and_then(|layout| layout.write_file(dst, false))
        .map_err(|err| Error::from(err).in_file(dst))?;
    if options.verify
        && let Err(err) = verify(&checkpoint, &kept, &metadata, dst)
    {
        // A file that does not match its source must not be left behind.
        let _ = std::fs::remove_file(dst);
        return Err(err.in_file(dst));
    }
    Ok(Report {
        tensors: kept.iter().map(|tensor| tensor.name().to_owned()).collect(),
        removed,
        skipped: checkpoint.skipped().to_vec(),
    })
}

/// The names to drop, each mapped to the name kept in its place.
///
/// As the reference's `_remove_duplicate_names`: among the names sharing a
/// storage, the alphabetically first *complete* one (covering the whole
/// storage) is kept and the others dropped. A complete tensor overlaps every
/// other view of its storage, so the storage is the group. Unlike the
/// reference, a name is only dropped for a kept name that is the very same
/// view: a partial view, or a complete one of another shape such as a
/// transpose, is written as its own copy, so that no name is mapped to a
/// tensor that differs from it.
fn shared_names(tensors: &[Tensor]) -> BTreeMap<String, String> {
    let mut complete: Vec<&Tensor> = tensors
        .iter()
        // Empty storages share nothing (the reference skips them too).
        .filter(|tensor| tensor.storage_len() > 0 && tensor.is_complete())
        .collect();
    complete.sort_by(|a, b| a.name().cmp(b.name()));
    let mut kept = HashMap::new();
    let mut removed = BTreeMap::new();
    for tensor in complete {
        let first = *kept.entry(tensor.view_key()).or_insert(tensor.name());
        if first != tensor.name() {
            removed.insert(tensor.name().to_owned(), first.to_owned());
        }
    }
    removed
}

/// Reads `dst` back and compares it with the source tensors.
fn verify<B: AsRef<[u8]>>(
    checkpoint: &Checkpoint<B>,
    kept: &[&Tensor],
    metadata: &Metadata,
    dst: &Path,
) -> Result<()> {
    let written = SafeTensors::open(dst)?;
    if written.metadata() != Some(metadata) {
        return Err(Error::Verify {
            tensor: "__metadata__".into(),
            problem: "differs from the metadata written".into(),
        });
    }
    if written.len() != kept.len() {
        return Err(Error::Verify {
            tensor: String::new(),
            problem: format!(
                "count: the file has {} tensors, {} were written",
                written.len(),
                kept.len()
            ),
        });
    }
    for &tensor in kept {
        let differs = |problem: &str| Error::Verify {
            tensor: tensor.name().to_owned(),
            problem: problem.to_owned(),
        };
        let view = written
            .tensor(tensor.name())
            .map_err(|_| differs("is missing"))?;
        if view.dtype() != tensor.dtype() || view.shape() != tensor.shape() {
            return Err(differs("has another dtype or shape"));
        }
        if view.data() != &*checkpoint.data(tensor).data() {
            return Err(differs("has other bytes than the source"));
        }
    }
    Ok(())
}
