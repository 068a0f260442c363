//! `ironsafe shard`: one file split into shards of at most `--max-size`
//! bytes of tensor data, with a Hugging Face index.
//!
//! Tensors go into shards greedily in name order (numbers by value, so each
//! layer's tensors stay together); a tensor larger than the limit gets a
//! shard of its own. Every shard carries the source's `__metadata__`, as
//! transformers writes `{"format": "pt"}` into each of its shards and checks
//! it on loading. Each file is written atomically, the index last: an index
//! on disk means all its shards are complete.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::Context;
use ironsafe::{SafeTensors, TensorView, WriteOptions, serialize_to_file};

use crate::cli::ShardArgs;
use crate::files::in_file;
use crate::format::{self, natural_cmp};
use crate::index::{INDEX_NAME, Index, shard_name};
use crate::ui::{Tracked, Ui};

pub(crate) fn run(args: &ShardArgs, ui: &Ui) -> anyhow::Result<()> {
    let source = SafeTensors::open(&args.file)?;
    let mut tensors: Vec<(&str, TensorView<'_>)> = source.tensors().collect();
    tensors.sort_by(|(a, _), (b, _)| natural_cmp(a, b));
    let sizes: Vec<u64> = tensors
        .iter()
        .map(|(_, view)| view.data().len() as u64)
        .collect();
    let total: u64 = sizes.iter().sum();
    let shards = plan(&sizes, args.max_size);

    std::fs::create_dir_all(&args.outdir)
        .with_context(|| format!("cannot create `{}`", args.outdir.display()))?;
    let bar = ui.bar(total, "sharding");
    let mut weight_map = BTreeMap::new();
    for (number, range) in shards.iter().enumerate() {
        let name = shard_name(number + 1, shards.len());
        let path = args.outdir.join(&name);
        let shard = tensors[range.clone()]
            .iter()
            .map(|&(tensor, view)| (tensor, Tracked { view, bar: &bar }));
        serialize_to_file(shard, source.metadata(), &path, &WriteOptions::default())
            .map_err(|err| in_file(err, &path))?;
        for (tensor, _) in &tensors[range.clone()] {
            weight_map.insert((*tensor).to_owned(), name.clone());
        }
    }
    Index::new(total, weight_map).write(&args.outdir.join(INDEX_NAME))?;
    bar.finish_and_clear();
    ui.note(&format!(
        "wrote {} shards ({}) and {INDEX_NAME} to {}",
        shards.len(),
        format::bytes(total),
        args.outdir.display()
    ));
    Ok(())
}

/// The tensors of each shard, as ranges of `sizes`: filled in order while
/// they stay within `max_size`. There is always one shard, if only an
/// empty one, so that a file without tensors still round-trips.
fn plan(sizes: &[u64], max_size: u64) -> Vec<Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut filled) = (0, 0u64);
    for (index, &size) in sizes.iter().enumerate() {
        if index > start && filled.saturating_add(size) > max_size {
            shards.push(start..index);
            (start, filled) = (index, 0);
        }
        filled = filled.saturating_add(size);
    }
    shards.push(start..sizes.len());
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(sizes: &[u64], max_size: u64) -> Vec<(usize, usize)> {
        plan(sizes, max_size)
            .into_iter()
            .map(|range| (range.start, range.end))
            .collect()
    }

    #[test]
    fn shards_fill_greedily_and_big_tensors_stand_alone() {
        assert_eq!(shards(&[4, 4, 4, 4], 8), [(0, 2), (2, 4)]);
        assert_eq!(shards(&[4, 4, 4], 10), [(0, 2), (2, 3)]);
        assert_eq!(shards(&[2, 20, 2, 2], 8), [(0, 1), (1, 2), (2, 4)]);
        assert_eq!(shards(&[20], 8), [(0, 1)]);
        assert_eq!(shards(&[0, 0, 8, 0], 8), [(0, 4)]);
        assert_eq!(shards(&[], 8), [(0, 0)]);
    }
}
