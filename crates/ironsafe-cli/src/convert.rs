//! `ironsafe convert`: PyTorch checkpoints to safetensors through the
//! pickle-free reader of `ironsafe-pickle`: nothing in the checkpoint runs.
//!
//! SRC is one checkpoint (`.bin`, `.pt`, `.pth`, zip or legacy format),
//! written to the file DST; or a `pytorch_model.bin.index.json`, whose
//! shards are converted one by one into the directory DST as
//! `model-00001-of-0000N.safetensors` with a `model.safetensors.index.json`.
//! Each output is written atomically and, unless `--no-verify`, read back and
//! compared with its source; the index is written last.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use ironsafe_pickle::{ConvertOptions, Report, convert};

use crate::cli::ConvertArgs;
use crate::files::read_header;
use crate::format;
use crate::index::{INDEX_NAME, Index, is_index, shard_name};
use crate::ui::Ui;

pub(crate) fn run(args: &ConvertArgs, ui: &Ui) -> anyhow::Result<()> {
    let options = ConvertOptions {
        key: args.key.clone(),
        strict: args.strict,
        verify: !args.no_verify,
    };
    if is_index(&args.src) {
        return convert_sharded(args, &options, ui);
    }
    let report = convert(&args.src, &args.dst, &options)?;
    tell(ui, &args.src, &report);
    ui.note(&format!(
        "wrote {} ({} tensors)",
        args.dst.display(),
        report.tensors.len()
    ));
    Ok(())
}

/// Converts every shard of a torch index into the directory `args.dst`,
/// then writes the safetensors index of the new shards.
fn convert_sharded(args: &ConvertArgs, options: &ConvertOptions, ui: &Ui) -> anyhow::Result<()> {
    let index = Index::read(&args.src)?;
    let shards = index.shard_paths(&args.src);
    std::fs::create_dir_all(&args.dst)
        .with_context(|| format!("cannot create `{}`", args.dst.display()))?;
    let bar = ui.bar(shards.len() as u64, "converting");
    let (mut weight_map, mut total) = (BTreeMap::new(), 0);
    for (number, (_, source)) in shards.iter().enumerate() {
        let name = shard_name(number + 1, shards.len());
        let path = args.dst.join(&name);
        let report = convert(source, &path, options)?;
        tell(ui, source, &report);
        total += read_header(&path)?.data_len() as u64;
        for tensor in report.tensors {
            weight_map.insert(tensor, name.clone());
        }
        bar.inc(1);
    }
    Index::new(total, weight_map).write(&args.dst.join(INDEX_NAME))?;
    bar.finish_and_clear();
    ui.note(&format!(
        "wrote {} shards ({}) and {INDEX_NAME} to {}",
        shards.len(),
        format::bytes(total),
        args.dst.display()
    ));
    Ok(())
}

/// Says what a conversion left out: entries that are not tensors (always,
/// as a warning: they are data the output lacks) and names dropped as
/// duplicates of a kept one (a note).
fn tell(ui: &Ui, source: &Path, report: &Report) {
    if !report.skipped.is_empty() {
        Ui::warn(&format!(
            "`{}`: skipped {} entries that are not tensors: {} (--strict makes this an error)",
            source.display(),
            report.skipped.len(),
            report.skipped.join(", ")
        ));
    }
    for (removed, kept) in &report.removed {
        ui.note(&format!(
            "`{}`: `{removed}` shares its storage with `{kept}`: written once, as `{kept}` (recorded in the metadata)",
            source.display()
        ));
    }
}
