//! What REDUCE, NEWOBJ, BUILD and BINPERSID mean here: each allowed global
//! is *interpreted* (a tensor rebuild function describes a tensor, a
//! container class makes an empty container); nothing is called.

use crate::error::Result;
use crate::globals::{Global, TorchDtype};
use crate::machine::Machine;
use crate::value::{Object, StorageRef, TensorDesc, Value};

impl Machine<'_> {
    /// REDUCE: `func(*args)` for an allowed `func`.
    pub(crate) fn reduce(&mut self, func: Value, args: Value) -> Result<Value> {
        let Value::Global(global) = func else {
            let kind = self.pickle.kind(func);
            return Err(self.malformed(format!("calls {kind}, not an allowed global")));
        };
        let args = self.tuple(args, &format!("the arguments of {}", global.describe()))?;
        match global {
            Global::RebuildTensor | Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                self.rebuild_tensor(global, &args)
            }
            Global::RebuildParameter => {
                // (data, requires_grad, backward_hooks[, state]): the data.
                match args.first() {
                    Some(&tensor) if self.is_tensor(tensor) => Ok(tensor),
                    _ => Err(self.malformed(
                        "torch._utils._rebuild_parameter needs a tensor as its first argument",
                    )),
                }
            }
            Global::RebuildFromType => self.rebuild_from_type(&args),
            Global::OrderedDict | Global::Set | Global::FrozenSet | Global::Size => {
                self.container(global, &args)
            }
            Global::Encode => self.encode(&args),
            Global::TensorClass | Global::Storage(_) | Global::Dtype(_) => {
                Err(self.malformed(format!("{} cannot be called", global.describe())))
            }
        }
    }

    /// NEWOBJ: `cls.__new__(cls, *args)`, for the container classes only.
    pub(crate) fn new_object(&mut self, class: Value, args: Value) -> Result<Value> {
        match class {
            Value::Global(
                global @ (Global::OrderedDict | Global::Set | Global::FrozenSet | Global::Size),
            ) => {
                let args = self.tuple(args, &format!("the arguments of {}", global.describe()))?;
                self.container(global, &args)
            }
            Value::Global(global) => {
                Err(self.malformed(format!("{} cannot be instantiated", global.describe())))
            }
            other => {
                let kind = self.pickle.kind(other);
                Err(self.malformed(format!("instantiates {kind}, not an allowed class")))
            }
        }
    }

    /// BUILD: sets the state of `target`. A dict's attributes (a state
    /// dict's `_metadata`) and a tensor's Python attributes mean nothing to
    /// the converter, so the state is dropped; any other target is refused.
    pub(crate) fn build(&self, target: Value) -> Result<()> {
        match target {
            Value::Obj(id)
                if matches!(self.pickle.object(id), Object::Dict(_) | Object::Tensor(_)) =>
            {
                Ok(())
            }
            other => {
                let kind = self.pickle.kind(other);
                Err(self.malformed(format!("cannot set the state of {kind}")))
            }
        }
    }

    /// BINPERSID: torch's persistent id of a storage,
    /// `('storage', storage_class, key, location, numel[, view_metadata])`.
    /// The location (`cpu`, `cuda:0`, ...) does not matter: a storage is
    /// bytes wherever it was saved from.
    pub(crate) fn persistent_load(&mut self, id: Value) -> Result<Value> {
        let fields = self.tuple(id, "a persistent id")?;
        let storage = match fields[..] {
            [
                tag,
                Value::Global(Global::Storage(dtype)),
                key,
                location,
                Value::Int(numel),
                ref rest @ ..,
            ] if self.pickle.str(tag) == Some("storage")
                && self.pickle.str(location).is_some()
                && rest.len() <= 1 =>
            {
                if let [view] = rest
                    && !matches!(view, Value::None)
                {
                    return Err(self.malformed(
                        "storage views (a persistent id with view metadata) are not supported",
                    ));
                }
                let key = self.pickle.str(key).map(str::to_owned);
                let numel = u64::try_from(numel).ok();
                match (key, numel) {
                    (Some(key), Some(numel)) => StorageRef { key, dtype, numel },
                    _ => {
                        return Err(
                            self.malformed("a storage key must be a string and its size a count")
                        );
                    }
                }
            }
            _ => {
                return Err(self.malformed(
                    "a persistent id must be ('storage', storage class, key, location, size)",
                ));
            }
        };
        Ok(self.alloc(Object::Storage(storage)))
    }

    /// `_rebuild_tensor(storage, offset, size, stride)`, `_v2` with
    /// `requires_grad, backward_hooks[, metadata]` after, and `_v3` with the
    /// dtype after those.
    fn rebuild_tensor(&mut self, global: Global, args: &[Value]) -> Result<Value> {
        let arity = match global {
            Global::RebuildTensor => 4..=4,
            Global::RebuildTensorV2 => 6..=7,
            _ => 7..=8,
        };
        if !arity.contains(&args.len()) {
            return Err(self.malformed(format!(
                "{} takes {} to {} arguments, got {}",
                global.describe(),
                arity.start(),
                arity.end(),
                args.len()
            )));
        }
        let (storage, storage_dtype) = match args[0] {
            Value::Obj(id) => match self.pickle.object(id) {
                Object::Storage(storage) => (storage.key.clone(), storage.dtype),
                _ => return Err(self.not_a_storage(args[0])),
            },
            other => return Err(self.not_a_storage(other)),
        };
        let offset = self.count(args[1], "storage offset")?;
        let shape = self.counts(args[2], "size")?;
        let strides = self.counts(args[3], "stride")?;
        if shape.len() != strides.len() {
            return Err(self.malformed(format!(
                "the size has {} dimensions but the stride has {}",
                shape.len(),
                strides.len()
            )));
        }
        let dtype = if global == Global::RebuildTensorV3 {
            self.dtype(args[6])?
        } else {
            storage_dtype
        };
        Ok(self.alloc(Object::Tensor(TensorDesc {
            storage,
            dtype,
            offset,
            shape,
            strides,
        })))
    }

    /// `_rebuild_from_type_v2(func, new_type, args, state)`: `func(*args)`
    /// for a tensor rebuild `func`, with `new_type` a tensor class.
    fn rebuild_from_type(&mut self, args: &[Value]) -> Result<Value> {
        let [func, class, inner, _state] = args[..] else {
            return Err(self.malformed(format!(
                "torch._tensor._rebuild_from_type_v2 takes 4 arguments, got {}",
                args.len()
            )));
        };
        let func = match func {
            Value::Global(
                global @ (Global::RebuildTensor
                | Global::RebuildTensorV2
                | Global::RebuildTensorV3
                | Global::RebuildParameter),
            ) => global,
            other => {
                let kind = self.pickle.kind(other);
                return Err(self.malformed(format!(
                    "torch._tensor._rebuild_from_type_v2 rebuilds with {kind}, not a tensor \
                     rebuild function"
                )));
            }
        };
        if !matches!(class, Value::Global(Global::TensorClass)) {
            return Err(self.malformed(
                "torch._tensor._rebuild_from_type_v2 makes a class other than Tensor or Parameter",
            ));
        }
        self.reduce(Value::Global(func), inner)
    }

    /// An `OrderedDict`, set or `torch.Size` made from its arguments: none,
    /// or one list, tuple or set of items (key-value pairs for a dict).
    fn container(&mut self, global: Global, args: &[Value]) -> Result<Value> {
        let items = match args {
            [] => Vec::new(),
            [items] => self.items(*items, &global.describe())?,
            _ => {
                return Err(self.malformed(format!(
                    "{} takes at most one argument, got {}",
                    global.describe(),
                    args.len()
                )));
            }
        };
        let object = match global {
            Global::OrderedDict => {
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    match self.items(item, "an OrderedDict item")?[..] {
                        [key, value] => pairs.push((key, value)),
                        _ => return Err(self.malformed("an OrderedDict item is not a pair")),
                    }
                }
                Object::Dict(pairs)
            }
            Global::Size => Object::Tuple(items),
            _ => Object::Set(items),
        };
        Ok(self.alloc(object))
    }

    /// `_codecs.encode(text, 'latin1')`, protocol 2's way of pickling bytes.
    fn encode(&self, args: &[Value]) -> Result<Value> {
        match args {
            [text, encoding]
                if self.pickle.str(*text).is_some()
                    && matches!(self.pickle.str(*encoding), Some("latin1" | "latin-1")) =>
            {
                Ok(Value::Bytes)
            }
            _ => {
                Err(self
                    .malformed("_codecs.encode is only read with a string and the encoding latin1"))
            }
        }
    }

    fn is_tensor(&self, value: Value) -> bool {
        matches!(value, Value::Obj(id) if matches!(self.pickle.object(id), Object::Tensor(_)))
    }

    fn not_a_storage(&self, value: Value) -> crate::Error {
        let kind = self.pickle.kind(value);
        self.malformed(format!("a tensor's storage is {kind}, not a storage"))
    }

    /// The items of a tuple.
    fn tuple(&self, value: Value, what: &str) -> Result<Vec<Value>> {
        if let Value::Obj(id) = value
            && let Object::Tuple(items) = self.pickle.object(id)
        {
            return Ok(items.clone());
        }
        let kind = self.pickle.kind(value);
        Err(self.malformed(format!("{what} must be a tuple, got {kind}")))
    }

    /// The items of a tuple, list or set.
    fn items(&self, value: Value, what: &str) -> Result<Vec<Value>> {
        if let Value::Obj(id) = value
            && let Object::Tuple(items) | Object::List(items) | Object::Set(items) =
                self.pickle.object(id)
        {
            return Ok(items.clone());
        }
        let kind = self.pickle.kind(value);
        Err(self.malformed(format!("{what} takes a sequence, got {kind}")))
    }

    fn count(&self, value: Value, what: &str) -> Result<u64> {
        match value {
            Value::Int(n) => u64::try_from(n)
                .map_err(|_| self.malformed(format!("a tensor's {what} is negative ({n})"))),
            Value::BigInt => {
                Err(self.malformed(format!("a tensor's {what} does not fit in 64 bits")))
            }
            other => {
                let kind = self.pickle.kind(other);
                Err(self.malformed(format!("a tensor's {what} is {kind}, not an int")))
            }
        }
    }

    fn counts(&self, value: Value, what: &str) -> Result<Vec<u64>> {
        let items = self.items(value, &format!("a tensor's {what}"))?;
        items
            .into_iter()
            .map(|item| self.count(item, what))
            .collect()
    }

    fn dtype(&self, value: Value) -> Result<&'static TorchDtype> {
        match value {
            Value::Global(Global::Dtype(dtype)) => Ok(dtype),
            other => {
                let kind = self.pickle.kind(other);
                Err(self.malformed(format!("a tensor's dtype is {kind}, not a torch dtype")))
            }
        }
    }
}
