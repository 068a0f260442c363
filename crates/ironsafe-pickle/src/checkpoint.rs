//! A checkpoint file: its format recognised, its pickle read, its storages
//! located and checked, and its value tree flattened into named tensors.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use ironsafe::Mmap;

use crate::error::{Error, Result, io_error};
use crate::machine::Limits;
use crate::tensor::{Tensor, TensorData};
use crate::value::{Object, Pickle, Value};
use crate::{legacy, zip};

/// A torch checkpoint, read without running pickle: its tensors, named by
/// their flattened keys, and the names of the entries that are not tensors.
///
/// `B` holds the file's bytes: a [`Mmap`] for [`Checkpoint::open`], or any
/// buffer for [`Checkpoint::from_buffer`]. Tensors borrow from it.
#[derive(Debug)]
pub struct Checkpoint<B> {
    buffer: B,
    tensors: Vec<Tensor>,
    skipped: Vec<String>,
}

impl Checkpoint<Mmap> {
    /// Maps the checkpoint at `path` and reads all of it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// Maps the checkpoint at `path` and reads the sub-dict under the
    /// top-level `key` (e.g. `state_dict`), or all of it.
    pub fn open_with(path: impl AsRef<Path>, key: Option<&str>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_error("cannot open", path))?;
        let len = file
            .metadata()
            .map_err(io_error("cannot stat", path))?
            .len();
        // An empty file cannot be mapped everywhere: say what it is not.
        if len == 0 {
            return Err(Error::NotACheckpoint("the file is empty".into()).in_file(path));
        }
        let map = Mmap::map(&file).map_err(io_error("cannot map", path))?;
        Self::from_buffer(map, key).map_err(|err| err.in_file(path))
    }
}

impl<B: AsRef<[u8]>> Checkpoint<B> {
    /// Reads the checkpoint held in `buffer` (zip or legacy format), keeping
    /// the sub-dict under the top-level `key` if one is given.
    pub fn from_buffer(buffer: B, key: Option<&str>) -> Result<Self> {
        Self::from_buffer_with(buffer, key, &Limits::default())
    }

    /// Reads the checkpoint held in `buffer` within `limits`.
    pub fn from_buffer_with(buffer: B, key: Option<&str>, limits: &Limits) -> Result<Self> {
        let data = buffer.as_ref();
        let (pickle, stored) = if zip::is_zip(data) {
            read_zip(data, limits)?
        } else if legacy::is_legacy(data) {
            legacy::read(data, limits)?
        } else {
            return Err(Error::NotACheckpoint(
                "neither a zip archive nor a legacy torch.save stream".into(),
            ));
        };
        let storages = locate_storages(&pickle, &stored)?;
        let root = select(&pickle, key)?;
        let mut flat = Flattener {
            pickle: &pickle,
            storages: &storages,
            limits,
            entries: 0,
            names: HashSet::new(),
            tensors: Vec::new(),
            skipped: Vec::new(),
        };
        flat.walk(root, "", 0)?;
        let (tensors, skipped) = (flat.tensors, flat.skipped);
        Ok(Checkpoint {
            buffer,
            tensors,
            skipped,
        })
    }

    /// The tensors, in the order the checkpoint lists them.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The flattened names of the entries that are not tensors (ints,
    /// floats, strings, lists, ...), which a conversion skips.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// A tensor's data, for writing: borrowed from the file where the
    /// tensor is contiguous.
    pub fn data<'a>(&'a self, tensor: &'a Tensor) -> TensorData<'a> {
        tensor.data(self.buffer.as_ref())
    }
}

/// A zip checkpoint: `<root>/data.pkl` and the entries under `<root>/data/`.
fn read_zip(data: &[u8], limits: &Limits) -> Result<(Pickle, HashMap<String, Range<usize>>)> {
    let entries = zip::entries(data)?;
    let mut roots = entries.keys().filter_map(|name| {
        name.strip_suffix("/data.pkl")
            .filter(|root| !root.contains('/'))
    });
    let root = match (roots.next(), roots.next()) {
        (Some(root), None) => root.to_owned(),
        (None, _) => return Err(Error::MissingEntry("<root>/data.pkl".into())),
        (Some(_), Some(_)) => {
            return Err(Error::Zip("the archive has more than one data.pkl".into()));
        }
    };
    if let Some(order) = entries.get(&format!("{root}/byteorder")) {
        match &data[order.clone()] {
            b"little" => {}
            b"big" => return Err(Error::BigEndian),
            other => {
                return Err(Error::Zip(format!(
                    "`{root}/byteorder` says {:?}",
                    String::from_utf8_lossy(other)
                )));
            }
        }
    }
    let pickle_name = format!("{root}/data.pkl");
    let pickle_bytes = entries
        .get(&pickle_name)
        .map_or(&[][..], |range| &data[range.clone()]);
    let pickle = Pickle::parse_with(pickle_bytes, limits)
        .map_err(|err| err.in_part(format!("`{pickle_name}`")))?;
    let prefix = format!("{root}/data/");
    let stored = entries
        .into_iter()
        .filter_map(|(name, range)| Some((name.strip_prefix(&prefix)?.to_owned(), range)))
        .collect();
    Ok((pickle, stored))
}

/// Each declared storage's stored bytes, whose length must be the declared
/// size.
fn locate_storages<'p>(
    pickle: &'p Pickle,
    stored: &HashMap<String, Range<usize>>,
) -> Result<HashMap<&'p str, Range<usize>>> {
    let mut by_key = HashMap::new();
    for (key, storage) in pickle.storages()? {
        let range = stored
            .get(key)
            .ok_or_else(|| Error::MissingStorage(key.to_owned()))?;
        let declared = storage.byte_len();
        if declared != Some(range.len() as u64) {
            return Err(Error::StorageSize {
                key: key.to_owned(),
                declared: declared.unwrap_or(u64::MAX),
                stored: range.len() as u64,
            });
        }
        by_key.insert(key, range.clone());
    }
    Ok(by_key)
}

/// The root of the tree to flatten: the pickle's object, or its entry `key`.
fn select(pickle: &Pickle, key: Option<&str>) -> Result<Value> {
    let Some(key) = key else {
        return Ok(pickle.root);
    };
    let entries = dict_entries(pickle, pickle.root).ok_or_else(|| Error::Structure {
        entry: String::new(),
        problem: format!(
            "the checkpoint is {}, not a dict, so it has no key `{key}`",
            pickle.kind(pickle.root)
        ),
    })?;
    let selected = entries
        .iter()
        .find(|&&(name, _)| pickle.str(name) == Some(key))
        .map(|&(_, value)| value)
        .ok_or_else(|| Error::KeyNotFound {
            key: key.to_owned(),
            available: entries
                .iter()
                .filter_map(|&(name, _)| pickle.str(name))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if dict_entries(pickle, selected).is_none() {
        return Err(Error::Structure {
            entry: key.to_owned(),
            problem: format!("{}, not a dict of tensors", pickle.kind(selected)),
        });
    }
    Ok(selected)
}

fn dict_entries(pickle: &Pickle, value: Value) -> Option<&[(Value, Value)]> {
    match value {
        Value::Obj(id) => match pickle.object(id) {
            Object::Dict(entries) => Some(entries),
            _ => None,
        },
        _ => None,
    }
}

/// Walks nested dicts, naming each leaf by its keys joined with `.`.
struct Flattener<'p> {
    pickle: &'p Pickle,
    storages: &'p HashMap<&'p str, Range<usize>>,
    limits: &'p Limits,
    entries: usize,
    names: HashSet<String>,
    tensors: Vec<Tensor>,
    skipped: Vec<String>,
}

impl Flattener<'_> {
    fn walk(&mut self, value: Value, name: &str, depth: usize) -> Result<()> {
        let structure = |problem: String| Error::Structure {
            entry: name.to_owned(),
            problem,
        };
        if let Some(entries) = dict_entries(self.pickle, value) {
            if depth >= self.limits.max_depth {
                return Err(structure(format!(
                    "dicts nested more than {} deep",
                    self.limits.max_depth
                )));
            }
            for &(key, child) in entries {
                self.entries += 1;
                if self.entries > self.limits.max_entries {
                    return Err(structure(format!(
                        "more than {} entries",
                        self.limits.max_entries
                    )));
                }
                let key = match key {
                    Value::Int(n) => n.to_string(),
                    other => self.pickle.str(other).map(str::to_owned).ok_or_else(|| {
                        structure(format!(
                            "a dict key is {}, not a string or an int",
                            self.pickle.kind(other)
                        ))
                    })?,
                };
                let child_name = if name.is_empty() {
                    key
                } else {
                    format!("{name}.{key}")
                };
                self.walk(child, &child_name, depth + 1)?;
            }
            return Ok(());
        }
        if depth == 0 {
            return Err(structure(format!(
                "{}, not a dict of tensors",
                self.pickle.kind(value)
            )));
        }
        if !self.names.insert(name.to_owned()) {
            return Err(structure("two entries flatten to this name".into()));
        }
        match value {
            Value::Obj(id) => match self.pickle.object(id) {
                Object::Tensor(desc) => {
                    let range = self
                        .storages
                        .get(desc.storage.as_str())
                        .ok_or_else(|| Error::MissingStorage(desc.storage.clone()))?;
                    let tensor = Tensor::new(name.to_owned(), desc, range.clone())?;
                    self.tensors.push(tensor);
                }
                _ => self.skipped.push(name.to_owned()),
            },
            _ => self.skipped.push(name.to_owned()),
        }
        Ok(())
    }
}
