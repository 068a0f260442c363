//! `ironsafe merge`: the shards of a Hugging Face index joined into one
//! file, tensor bytes copied straight from memory maps of the shards.

use anyhow::{Context, bail};
use ironsafe::{SafeTensors, WriteOptions, serialize_to_file};

use crate::cli::MergeArgs;
use crate::files::in_file;
use crate::format;
use crate::index::{Index, merged_metadata};
use crate::ui::{Tracked, Ui};

pub(crate) fn run(args: &MergeArgs, ui: &Ui) -> anyhow::Result<()> {
    let index = Index::read(&args.index)?;
    let shards = index
        .shard_paths(&args.index)
        .into_iter()
        .map(|(name, path)| Ok((name, SafeTensors::open(&path)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mismatches = index.mismatches(shards.iter().map(|(name, file)| (*name, file.header())));
    if !mismatches.is_empty() {
        bail!("`{}`: {}", args.index.display(), mismatches.join("; "));
    }
    let metadata = merged_metadata(shards.iter().map(|(name, file)| (*name, file.metadata())))
        .with_context(|| format!("`{}`", args.index.display()))?;

    let total = shards
        .iter()
        .map(|(_, file)| file.header().data_len() as u64)
        .sum();
    let bar = ui.bar(total, "merging");
    let tensors = shards.iter().flat_map(|(_, file)| {
        file.tensors()
            .map(|(name, view)| (name, Tracked { view, bar: &bar }))
    });
    serialize_to_file(
        tensors,
        metadata.as_ref(),
        &args.out,
        &WriteOptions::default(),
    )
    .map_err(|err| in_file(err, &args.out))?;
    bar.finish_and_clear();
    ui.note(&format!(
        "wrote {} ({}, {} tensors from {} shards)",
        args.out.display(),
        format::bytes(total),
        index.weight_map.len(),
        shards.len()
    ));
    Ok(())
}
