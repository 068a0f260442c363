//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::format::parse_size;
use crate::glob::Glob;

/// Inspect, verify, compare, shard and merge safetensors files.
#[derive(Debug, Parser)]
#[command(name = "ironsafe", version)]
pub(crate) struct Cli {
    /// No progress bars and no notes of what was written; errors still show.
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the tensors, sizes and metadata of files, reading headers only.
    Inspect(InspectArgs),
    /// Check files against every rule of the format; exit 1 if one breaks any.
    Verify(VerifyArgs),
    /// Compare two files: names, dtypes, shapes, metadata and values; exit 1
    /// if they differ.
    Diff(DiffArgs),
    /// Split a file into shards with a Hugging Face index.
    Shard(ShardArgs),
    /// Join the shards of a Hugging Face index into one file.
    Merge(MergeArgs),
    /// Convert a PyTorch checkpoint (`.bin`, `.pt`, `.pth`) to safetensors
    /// without running its pickle.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Safetensors files, or `model.safetensors.index.json` files for whole
    /// sharded models.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,

    /// Group tensors by dot-separated name prefix, with the size of each group.
    #[arg(long)]
    pub(crate) tree: bool,

    /// Print JSON: an array with one object per file.
    #[arg(long, conflicts_with = "tree")]
    pub(crate) json: bool,

    /// The order of tensors (size: largest first).
    #[arg(long, value_enum, default_value_t = SortKey::Name)]
    pub(crate) sort: SortKey,

    /// Only tensors whose name matches this pattern (`*`, `?`, `[a-z]`);
    /// may be given more than once.
    #[arg(long, value_name = "GLOB")]
    pub(crate) filter: Vec<Glob>,
}

/// How `inspect` orders tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SortKey {
    /// By name, numbers inside names by value (`layers.2` before `layers.10`).
    Name,
    /// By position in the file (the shard's, for an index).
    Offset,
    /// Largest first.
    Size,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Safetensors files, or `model.safetensors.index.json` files (every
    /// shard, and the index against the shards).
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,

    /// Also read every float tensor and count its NaN and infinite values.
    #[arg(long)]
    pub(crate) values: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The first file.
    pub(crate) a: PathBuf,
    /// The second file.
    pub(crate) b: PathBuf,

    /// Values within this absolute difference are equal (|a - b| <= atol + rtol * |b|).
    #[arg(long, value_name = "TOL", value_parser = tolerance)]
    pub(crate) atol: Option<f64>,

    /// Values within this relative difference are equal (|a - b| <= atol + rtol * |b|).
    #[arg(long, value_name = "TOL", value_parser = tolerance)]
    pub(crate) rtol: Option<f64>,

    /// Compare the headers only: names, dtypes, shapes and metadata.
    #[arg(long, conflicts_with_all = ["atol", "rtol"])]
    pub(crate) header_only: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShardArgs {
    /// The safetensors file to split.
    pub(crate) file: PathBuf,
    /// Where to write the shards and `model.safetensors.index.json`
    /// (created if missing).
    pub(crate) outdir: PathBuf,

    /// The most tensor data per shard: KB, MB, GB (powers of 1000) or KiB,
    /// MiB, GiB (powers of 1024). A larger tensor gets a shard of its own.
    #[arg(long, value_name = "SIZE", default_value = "5GB", value_parser = parse_size)]
    pub(crate) max_size: u64,
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// The `model.safetensors.index.json` of the shards.
    pub(crate) index: PathBuf,
    /// The safetensors file to write.
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// A `torch.save` checkpoint (zip or legacy format), or a
    /// `pytorch_model.bin.index.json` of a sharded one.
    pub(crate) src: PathBuf,
    /// The safetensors file to write; for an index, the directory that
    /// receives the shards and `model.safetensors.index.json`.
    pub(crate) dst: PathBuf,

    /// Convert only the sub-dict under this top-level key (e.g. `state_dict`,
    /// `model_state`).
    #[arg(long, value_name = "NAME")]
    pub(crate) key: Option<String>,

    /// Fail on entries that are not tensors instead of skipping them.
    #[arg(long)]
    pub(crate) strict: bool,

    /// Do not read the output back to compare it with the source.
    #[arg(long)]
    pub(crate) no_verify: bool,
}

/// A tolerance: a finite number, not negative.
fn tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!(
            "`{text}` is not a tolerance: expected a number of at least 0, e.g. 1e-5"
        )),
    }
}
