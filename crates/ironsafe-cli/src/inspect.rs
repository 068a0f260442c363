//! `ironsafe inspect`: what a file or a sharded model holds, from the
//! headers alone; no tensor data is read.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ironsafe::{Dtype, Header, Metadata, TensorInfo};
use serde::Serialize;

use crate::cli::{InspectArgs, SortKey};
use crate::files::read_header;
use crate::format::{self, natural_cmp};
use crate::index::{self, Index};
use crate::table::{Align, Table};

pub(crate) fn run(args: &InspectArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let models = args
        .files
        .iter()
        .map(|path| Model::load(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut reports = Vec::new();
    for (position, model) in models.iter().enumerate() {
        let tensors = model.select(args);
        if args.json {
            reports.push(model.report(&tensors));
            continue;
        }
        if position > 0 {
            writeln!(out)?;
        }
        model.write_summary(&tensors, out)?;
        if args.tree {
            model.write_tree(&tensors, args.sort, out)?;
        } else {
            model.write_table(&tensors, out)?;
        }
        writeln!(out)?;
        write_totals(&tensors, out)?;
        writeln!(out)?;
        model.write_metadata(out)?;
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &reports)?;
        writeln!(out)?;
    }
    Ok(())
}

/// A file, or the shards an index names, with their headers.
struct Model {
    path: PathBuf,
    /// A plain file is one shard without a name.
    shards: Vec<(Option<String>, Header)>,
    /// The metadata, or why the shards have none together.
    metadata: Result<Option<Metadata>, String>,
}

/// One tensor of a model: the shard (by position) that holds it, and its
/// header entry.
#[derive(Clone, Copy)]
struct Entry<'m> {
    shard: usize,
    info: &'m TensorInfo,
}

impl Entry<'_> {
    fn parameters(&self) -> u64 {
        format::elements(&self.info.shape)
    }

    fn bytes(&self) -> u64 {
        self.info.byte_len() as u64
    }

    /// Where the tensor is in the model: shard, then offset.
    fn position(&self) -> (usize, usize) {
        (self.shard, self.info.data_offsets.0)
    }
}

impl Model {
    fn load(path: &Path) -> anyhow::Result<Self> {
        if !index::is_index(path) {
            let header = read_header(path)?;
            return Ok(Self {
                path: path.to_owned(),
                metadata: Ok(header.metadata().cloned()),
                shards: vec![(None, header)],
            });
        }
        let index = Index::read(path)?;
        let shards = index
            .shard_paths(path)
            .into_iter()
            .map(|(name, shard_path)| Ok((Some(name.to_owned()), read_header(&shard_path)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let metadata = index::merged_metadata(
            shards
                .iter()
                .map(|(name, header)| (name.as_deref().unwrap_or_default(), header.metadata())),
        )
        .map_err(|err| err.to_string());
        Ok(Self {
            path: path.to_owned(),
            shards,
            metadata,
        })
    }

    fn is_sharded(&self) -> bool {
        self.shards.len() != 1 || self.shards[0].0.is_some()
    }

    /// The tensors `--filter` lets through, in the `--sort` order.
    fn select(&self, args: &InspectArgs) -> Vec<Entry<'_>> {
        let mut tensors: Vec<Entry<'_>> = self
            .shards
            .iter()
            .enumerate()
            .flat_map(|(shard, (_, header))| {
                header
                    .tensors()
                    .iter()
                    .map(move |info| Entry { shard, info })
            })
            .filter(|entry| {
                args.filter.is_empty()
                    || args
                        .filter
                        .iter()
                        .any(|glob| glob.matches(&entry.info.name))
            })
            .collect();
        tensors.sort_by(|a, b| compare(args.sort, a, b));
        tensors
    }

    fn tensor_count(&self) -> usize {
        self.shards.iter().map(|(_, header)| header.len()).sum()
    }

    fn shard_name(&self, entry: &Entry<'_>) -> &str {
        self.shards[entry.shard].0.as_deref().unwrap_or_default()
    }

    fn write_summary(&self, tensors: &[Entry<'_>], out: &mut dyn Write) -> std::io::Result<()> {
        let (parameters, bytes) = sums(tensors.iter());
        let total = self.tensor_count();
        let count = if tensors.len() == total {
            format::plural(total, "tensor")
        } else {
            format!("{} of {}", tensors.len(), format::plural(total, "tensor"))
        };
        let shards = if self.is_sharded() {
            format!("{}, ", format::plural(self.shards.len(), "shard"))
        } else {
            format!(
                "header {}, ",
                format::bytes(self.shards[0].1.header_len() as u64)
            )
        };
        writeln!(
            out,
            "{}: {shards}{count}, {} parameters, {}",
            self.path.display(),
            format::count(parameters),
            format::bytes(bytes)
        )
    }

    fn columns(&self, leading: &[(&'static str, Align)]) -> Table {
        let mut columns = leading.to_vec();
        if self.is_sharded() {
            columns.push(("FILE", Align::Left));
        }
        Table::new(&columns)
    }

    fn write_table(&self, tensors: &[Entry<'_>], out: &mut dyn Write) -> std::io::Result<()> {
        let mut table = self.columns(&TENSOR_COLUMNS);
        for entry in tensors {
            let (begin, end) = entry.info.data_offsets;
            let mut cells = tensor_cells(
                entry.info.name.clone(),
                Some(entry),
                entry.parameters(),
                entry.bytes(),
            );
            cells.push(format!("{begin}..{end}"));
            if self.is_sharded() {
                cells.push(self.shard_name(entry).to_owned());
            }
            table.row(cells);
        }
        table.write(out)
    }

    fn write_tree(
        &self,
        tensors: &[Entry<'_>],
        sort: SortKey,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let mut root = Node::default();
        for entry in tensors {
            root.insert(*entry);
        }
        let mut table = self.columns(&TENSOR_COLUMNS[..5]);
        self.tree_rows(&root, 0, sort, &mut table);
        table.write(out)
    }

    fn tree_rows(&self, node: &Node<'_>, depth: usize, sort: SortKey, table: &mut Table) {
        let mut children: Vec<(&&str, &Node<'_>)> = node.children.iter().collect();
        children.sort_by(|(a_name, a), (b_name, b)| match sort {
            SortKey::Name => natural_cmp(a_name, b_name),
            SortKey::Offset => a.first.cmp(&b.first),
            SortKey::Size => b
                .bytes
                .cmp(&a.bytes)
                .then_with(|| natural_cmp(a_name, b_name)),
        });
        for (name, child) in children {
            let label = format!("{}{name}", "  ".repeat(depth));
            let mut cells =
                tensor_cells(label, child.tensor.as_ref(), child.parameters, child.bytes);
            if self.is_sharded() {
                let shard = child.tensor.as_ref().map(|entry| self.shard_name(entry));
                cells.push(shard.unwrap_or_default().to_owned());
            }
            table.row(cells);
            self.tree_rows(child, depth + 1, sort, table);
        }
    }

    fn write_metadata(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match &self.metadata {
            Err(conflict) => writeln!(out, "metadata: {conflict}"),
            Ok(None) => writeln!(out, "no metadata"),
            Ok(Some(metadata)) => {
                let mut table = Table::new(&[("METADATA", Align::Left), ("VALUE", Align::Left)]);
                for (key, value) in metadata {
                    table.row(vec![one_line(key), one_line(value)]);
                }
                table.write(out)
            }
        }
    }

    fn report<'m>(&'m self, tensors: &[Entry<'m>]) -> Report<'m> {
        let (header_size, shards) = if self.is_sharded() {
            let shards = self.shards.iter().map(|(name, header)| ShardReport {
                file: name.as_deref().unwrap_or_default(),
                header_size: header.header_len(),
                metadata: header.metadata(),
            });
            (None, Some(shards.collect()))
        } else {
            (Some(self.shards[0].1.header_len()), None)
        };
        let (parameters, bytes) = sums(tensors.iter());
        Report {
            path: self.path.display().to_string(),
            header_size,
            shards,
            tensors: tensors
                .iter()
                .map(|entry| TensorReport {
                    name: &entry.info.name,
                    dtype: entry.info.dtype,
                    shape: &entry.info.shape,
                    parameters: entry.parameters(),
                    bytes: entry.bytes(),
                    data_offsets: [entry.info.data_offsets.0, entry.info.data_offsets.1],
                    file: self.is_sharded().then(|| self.shard_name(entry)),
                })
                .collect(),
            totals: Totals {
                parameters,
                bytes,
                dtypes: dtype_totals(tensors)
                    .into_iter()
                    .map(|(dtype, (parameters, bytes))| (dtype, Sums { parameters, bytes }))
                    .collect(),
            },
            metadata: self.metadata.as_ref().ok().and_then(Option::as_ref),
        }
    }
}

const TENSOR_COLUMNS: [(&str, Align); 6] = [
    ("NAME", Align::Left),
    ("DTYPE", Align::Left),
    ("SHAPE", Align::Left),
    ("PARAMS", Align::Right),
    ("SIZE", Align::Right),
    ("OFFSETS", Align::Left),
];

/// The NAME, DTYPE, SHAPE, PARAMS and SIZE cells of a row; DTYPE and SHAPE
/// are empty for a tree node that is no tensor.
fn tensor_cells(
    name: String,
    tensor: Option<&Entry<'_>>,
    parameters: u64,
    bytes: u64,
) -> Vec<String> {
    let (dtype, shape) = tensor.map_or_else(Default::default, |entry| {
        (
            entry.info.dtype.to_string(),
            format::shape(&entry.info.shape),
        )
    });
    vec![
        name,
        dtype,
        shape,
        format::count(parameters),
        format::bytes(bytes),
    ]
}

fn compare(sort: SortKey, a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
    match sort {
        SortKey::Name => natural_cmp(&a.info.name, &b.info.name),
        SortKey::Offset => a.position().cmp(&b.position()),
        SortKey::Size => b
            .bytes()
            .cmp(&a.bytes())
            .then_with(|| natural_cmp(&a.info.name, &b.info.name)),
    }
}

fn sums<'a, 'm: 'a>(tensors: impl Iterator<Item = &'a Entry<'m>>) -> (u64, u64) {
    tensors.fold((0, 0), |(parameters, bytes), entry| {
        (parameters + entry.parameters(), bytes + entry.bytes())
    })
}

/// Parameters and bytes per dtype, most parameters first.
fn dtype_totals(tensors: &[Entry<'_>]) -> Vec<(Dtype, (u64, u64))> {
    let mut totals: BTreeMap<Dtype, (u64, u64)> = BTreeMap::new();
    for entry in tensors {
        let (parameters, bytes) = totals.entry(entry.info.dtype).or_default();
        *parameters += entry.parameters();
        *bytes += entry.bytes();
    }
    let mut totals: Vec<(Dtype, (u64, u64))> = totals.into_iter().collect();
    totals.sort_by(|(a_dtype, (a, _)), (b_dtype, (b, _))| {
        b.cmp(a).then_with(|| a_dtype.name().cmp(b_dtype.name()))
    });
    totals
}

/// Per dtype, then all together, as the Hub's file viewer sums a model.
fn write_totals(tensors: &[Entry<'_>], out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new(&[
        ("DTYPE", Align::Left),
        ("PARAMS", Align::Right),
        ("SIZE", Align::Right),
    ]);
    for (dtype, (parameters, bytes)) in dtype_totals(tensors) {
        table.row(vec![
            dtype.to_string(),
            format::count(parameters),
            format::bytes(bytes),
        ]);
    }
    let (parameters, bytes) = sums(tensors.iter());
    table.row(vec![
        "total".to_owned(),
        format::count(parameters),
        format::bytes(bytes),
    ]);
    table.write(out)
}

/// A metadata string on one table line: line breaks and tabs escaped.
fn one_line(text: &str) -> String {
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// A name-prefix group of `--tree`: the tensors under it, summed.
#[derive(Default)]
struct Node<'m> {
    children: BTreeMap<&'m str, Node<'m>>,
    /// The tensor named by the path to this node, if there is one.
    tensor: Option<Entry<'m>>,
    parameters: u64,
    bytes: u64,
    /// The position of the first tensor under it, for `--sort offset`.
    first: (usize, usize),
}

impl<'m> Node<'m> {
    fn insert(&mut self, entry: Entry<'m>) {
        let mut node = self;
        for part in entry.info.name.split('.') {
            node = node.children.entry(part).or_insert_with(|| Node {
                first: entry.position(),
                ..Node::default()
            });
            node.parameters += entry.parameters();
            node.bytes += entry.bytes();
            node.first = node.first.min(entry.position());
        }
        node.tensor = Some(entry);
    }
}

/// `--json`: one object per file given.
#[derive(Serialize)]
struct Report<'m> {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<Vec<ShardReport<'m>>>,
    tensors: Vec<TensorReport<'m>>,
    totals: Totals,
    metadata: Option<&'m Metadata>,
}

#[derive(Serialize)]
struct ShardReport<'m> {
    file: &'m str,
    header_size: usize,
    metadata: Option<&'m Metadata>,
}

#[derive(Serialize)]
struct TensorReport<'m> {
    name: &'m str,
    #[serde(serialize_with = "dtype_name")]
    dtype: Dtype,
    shape: &'m [usize],
    parameters: u64,
    bytes: u64,
    data_offsets: [usize; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'m str>,
}

#[derive(Serialize)]
struct Totals {
    parameters: u64,
    bytes: u64,
    #[serde(serialize_with = "dtype_map")]
    dtypes: Vec<(Dtype, Sums)>,
}

#[derive(Serialize)]
struct Sums {
    parameters: u64,
    bytes: u64,
}

// Serde's signature: the value is passed by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn dtype_name<S: serde::Serializer>(dtype: &Dtype, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(dtype.name())
}

/// The per-dtype sums as a JSON object, in the order of the human output.
fn dtype_map<S: serde::Serializer>(
    sums: &[(Dtype, Sums)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(sums.iter().map(|(dtype, sums)| (dtype.name(), sums)))
}
