//! The inert value tree a pickle becomes.
//!
//! Containers, strings and tensors live in one arena and are referred to by
//! index, so that the memo hands out references (as pickle's memo does)
//! without copying, a value is a few bytes, and dropping a deeply nested
//! tree never recurses.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::globals::{Global, TorchDtype};

/// The index of an object in a [`Pickle`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ObjId(pub(crate) usize);

/// A value on the machine's stack, in its memo, or in a container.
///
/// Floats, bytes and integers too large for `i64` keep only their type:
/// the converter skips such leaves and never reads them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    BigInt,
    Float,
    Bytes,
    Global(Global),
    Obj(ObjId),
}

/// A value that lives in the arena.
#[derive(Debug)]
pub(crate) enum Object {
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Entries in insertion order; a key set twice keeps both (flattening
    /// refuses the duplicate name).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Storage(StorageRef),
    Tensor(TensorDesc),
}

/// A storage named by a persistent id: `('storage', type, key, location,
/// numel[, view_metadata])`. Its bytes live outside the pickle.
#[derive(Debug)]
pub(crate) struct StorageRef {
    /// The name of its bytes: `data/<key>` in a zip, or its place in the
    /// legacy format's storage list.
    pub(crate) key: String,
    /// The element type its class names (bytes for `UntypedStorage`).
    pub(crate) dtype: &'static TorchDtype,
    /// The element count.
    pub(crate) numel: u64,
}

impl StorageRef {
    /// The declared size in bytes, if it fits in a `u64`.
    pub(crate) fn byte_len(&self) -> Option<u64> {
        self.numel.checked_mul(self.dtype.size as u64)
    }
}

/// A tensor: a strided view of a storage, as the rebuild functions describe
/// it. Nothing is checked against the storage yet.
#[derive(Debug)]
pub(crate) struct TensorDesc {
    /// The key of its storage.
    pub(crate) storage: String,
    /// The tensor's element type (the storage's, except for
    /// `_rebuild_tensor_v3`, which names it).
    pub(crate) dtype: &'static TorchDtype,
    /// The offset into the storage, in elements of the tensor's dtype.
    pub(crate) offset: u64,
    pub(crate) shape: Vec<u64>,
    /// In elements.
    pub(crate) strides: Vec<u64>,
}

/// An unpickled value tree: what a pickle describes, as inert data. Nothing
/// was imported or called to build it.
#[derive(Debug)]
pub struct Pickle {
    pub(crate) objects: Vec<Object>,
    pub(crate) root: Value,
    /// The offset just past the STOP opcode.
    pub(crate) end: usize,
}

impl Pickle {
    /// The object behind an index the machine handed out.
    pub(crate) fn object(&self, id: ObjId) -> &Object {
        &self.objects[id.0]
    }

    /// Every storage the pickle references, by key; a key referenced twice
    /// must be declared alike both times.
    pub(crate) fn storages(&self) -> Result<HashMap<&str, &StorageRef>> {
        let mut declared: HashMap<&str, &StorageRef> = HashMap::new();
        for object in &self.objects {
            let Object::Storage(storage) = object else {
                continue;
            };
            let first = *declared.entry(&storage.key).or_insert(storage);
            if (first.dtype, first.numel) != (storage.dtype, storage.numel) {
                let describe = |s: &StorageRef| format!("{} x {}", s.numel, s.dtype.name);
                return Err(Error::StorageConflict {
                    key: storage.key.clone(),
                    first: describe(first),
                    second: describe(storage),
                });
            }
        }
        Ok(declared)
    }

    /// A short name for a value's type, for errors.
    pub(crate) fn kind(&self, value: Value) -> &'static str {
        match value {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::BigInt => "an int",
            Value::Float => "a float",
            Value::Bytes => "bytes",
            Value::Global(_) => "a global",
            Value::Obj(id) => match self.object(id) {
                Object::Str(_) => "a string",
                Object::Tuple(_) => "a tuple",
                Object::List(_) => "a list",
                Object::Dict(_) => "a dict",
                Object::Set(_) => "a set",
                Object::Storage(_) => "a storage",
                Object::Tensor(_) => "a tensor",
            },
        }
    }

    /// The string a value is, if it is one.
    pub(crate) fn str(&self, value: Value) -> Option<&str> {
        match value {
            Value::Obj(id) => match self.object(id) {
                Object::Str(text) => Some(text),
                _ => None,
            },
            _ => None,
        }
    }
}
