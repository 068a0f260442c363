//! The Hugging Face index of a sharded checkpoint,
//! `model.safetensors.index.json`:
//! `{"metadata": {"total_size": <bytes of tensor data>}, "weight_map": {tensor: shard file}}`,
//! with shards named `model-00001-of-00003.safetensors` and so on.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ironsafe::{Header, Metadata};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::format::natural_cmp;

/// The file name transformers gives the index.
pub(crate) const INDEX_NAME: &str = "model.safetensors.index.json";

/// The name of shard `number` (from 1) of `count`.
pub(crate) fn shard_name(number: usize, count: usize) -> String {
    format!("model-{number:05}-of-{count:05}.safetensors")
}

/// Whether `path` names an index (a `.json` file) rather than a
/// safetensors file.
pub(crate) fn is_index(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "json")
}

/// An index file's contents.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Index {
    /// `total_size` and whatever else the writer put there.
    #[serde(default)]
    pub(crate) metadata: Map<String, Value>,
    /// Which shard file holds each tensor.
    pub(crate) weight_map: BTreeMap<String, String>,
}

impl Index {
    /// An index of tensors holding `total_size` bytes.
    pub(crate) fn new(total_size: u64, weight_map: BTreeMap<String, String>) -> Self {
        let mut metadata = Map::new();
        metadata.insert("total_size".to_owned(), total_size.into());
        Self {
            metadata,
            weight_map,
        }
    }

    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses the JSON of the index at `path`.
    pub(crate) fn parse(json: &[u8], path: &Path) -> anyhow::Result<Self> {
        serde_json::from_slice(json)
            .with_context(|| format!("`{}`: not a safetensors index", path.display()))
    }

    /// Writes the index as transformers does (sorted keys, two-space
    /// indent, final newline), atomically.
    pub(crate) fn write(&self, path: &Path) -> anyhow::Result<()> {
        ironsafe::write_atomic(path, false, |file| {
            let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::from)?;
            json.push(b'\n');
            file.write_all(&json)?;
            Ok(())
        })?;
        Ok(())
    }

    /// `metadata.total_size`, if it is there as a number.
    pub(crate) fn total_size(&self) -> Option<u64> {
        self.metadata.get("total_size").and_then(Value::as_u64)
    }

    /// The shard file names, each once, in name order.
    pub(crate) fn shards(&self) -> Vec<&str> {
        let mut shards: Vec<&str> = self.weight_map.values().map(String::as_str).collect();
        shards.sort_unstable_by(|a, b| natural_cmp(a, b));
        shards.dedup();
        shards
    }

    /// Where each shard is: beside the index at `index_path`.
    pub(crate) fn shard_paths<'a>(&'a self, index_path: &Path) -> Vec<(&'a str, PathBuf)> {
        let dir = index_path.parent().unwrap_or(Path::new(""));
        self.shards()
            .into_iter()
            .map(|shard| (shard, dir.join(shard)))
            .collect()
    }

    /// Every way the index and the shards' headers disagree: a tensor the
    /// index maps to a shard that lacks it, a tensor a shard holds that the
    /// index does not map to it.
    pub(crate) fn mismatches<'h>(
        &self,
        shards: impl IntoIterator<Item = (&'h str, &'h Header)>,
    ) -> Vec<String> {
        let shards: BTreeMap<&str, &Header> = shards.into_iter().collect();
        let mut found = Vec::new();
        for (tensor, shard) in &self.weight_map {
            let held = shards
                .get(shard.as_str())
                .is_some_and(|header| header.get(tensor).is_some());
            if !held {
                found.push(format!(
                    "the index maps tensor `{tensor}` to `{shard}`, which does not hold it"
                ));
            }
        }
        for (shard, header) in &shards {
            for info in header.tensors_by_name() {
                match self.weight_map.get(&info.name) {
                    Some(mapped) if mapped == shard => {}
                    Some(mapped) => found.push(format!(
                        "`{shard}` holds tensor `{}`, which the index maps to `{mapped}`",
                        info.name
                    )),
                    None => found.push(format!(
                        "`{shard}` holds tensor `{}`, which the index does not list",
                        info.name
                    )),
                }
            }
        }
        found
    }

    /// What is wrong with `metadata.total_size`, given the bytes of tensor
    /// data the shards hold.
    pub(crate) fn total_size_mismatch(&self, data_len: u64) -> Option<String> {
        match self.total_size() {
            Some(size) if size == data_len => None,
            Some(size) => Some(format!(
                "`total_size` is {size} but the shards hold {data_len} bytes of tensor data"
            )),
            None => Some("`metadata.total_size` is missing or not a number".to_owned()),
        }
    }
}

/// The metadata of all shards together. Transformers writes the same
/// `{"format": "pt"}` into every shard; a key that two shards give different
/// values is an error that names both.
pub(crate) fn merged_metadata<'m>(
    shards: impl IntoIterator<Item = (&'m str, Option<&'m Metadata>)>,
) -> anyhow::Result<Option<Metadata>> {
    let mut merged: Option<Metadata> = None;
    let mut source: BTreeMap<&str, &str> = BTreeMap::new();
    for (shard, metadata) in shards {
        let Some(metadata) = metadata else { continue };
        let merged = merged.get_or_insert_with(Metadata::new);
        for (key, value) in metadata {
            match merged.get(key) {
                Some(seen) if seen != value => bail!(
                    "the shards disagree on metadata `{key}`: `{seen}` in `{}`, `{value}` in `{shard}`",
                    source[key.as_str()]
                ),
                Some(_) => {}
                None => {
                    merged.insert(key.clone(), value.clone());
                    source.insert(key, shard);
                }
            }
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_transformers() {
        assert_eq!(shard_name(2, 13), "model-00002-of-00013.safetensors");
        assert!(is_index(Path::new("x/model.safetensors.index.json")));
        assert!(!is_index(Path::new("model.safetensors")));
    }

    #[test]
    fn metadata_merges_until_shards_disagree() {
        let pt: Metadata = [("format".to_owned(), "pt".to_owned())].into();
        let np: Metadata = [("format".to_owned(), "np".to_owned())].into();
        let merged = merged_metadata([("a", Some(&pt)), ("b", None), ("c", Some(&pt))]).unwrap();
        assert_eq!(merged, Some(pt.clone()));
        assert_eq!(merged_metadata([("a", None)]).unwrap(), None);
        let err = merged_metadata([("a", Some(&pt)), ("b", Some(&np))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the shards disagree on metadata `format`: `pt` in `a`, `np` in `b`"
        );
    }
}
