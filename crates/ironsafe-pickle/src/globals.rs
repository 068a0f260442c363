//! The allowlist of globals: the only names a pickle may look up. Each one
//! maps to a tag the machine interprets; nothing is ever imported or called.

use ironsafe::Dtype;

/// A torch element type, as pickles name it: by its storage class
/// (`torch.FloatStorage`) or by its dtype (`torch.float32`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TorchDtype {
    /// The dtype's name in torch, e.g. `float32`.
    pub(crate) name: &'static str,
    /// The typed storage class torch pickles for it, if it has one (the
    /// newer dtypes are only pickled through `UntypedStorage` and a dtype).
    pub(crate) storage: Option<&'static str>,
    /// The safetensors dtype, where the format has one.
    pub(crate) safetensors: Option<Dtype>,
    /// Bytes per element.
    pub(crate) size: usize,
}

const fn dtype(
    name: &'static str,
    storage: Option<&'static str>,
    safetensors: Option<Dtype>,
    size: usize,
) -> TorchDtype {
    TorchDtype {
        name,
        storage,
        safetensors,
        size,
    }
}

/// The element type of `UntypedStorage`: plain bytes.
pub(crate) static UINT8: TorchDtype = dtype("uint8", Some("ByteStorage"), Some(Dtype::U8), 1);

/// Every dtype torch can pickle. Those without a safetensors dtype are still
/// recognised, so that a tensor of such a type is refused by name.
static DTYPES: [TorchDtype; 27] = [
    dtype("float64", Some("DoubleStorage"), Some(Dtype::F64), 8),
    dtype("float32", Some("FloatStorage"), Some(Dtype::F32), 4),
    dtype("float16", Some("HalfStorage"), Some(Dtype::F16), 2),
    dtype("bfloat16", Some("BFloat16Storage"), Some(Dtype::BF16), 2),
    dtype("int64", Some("LongStorage"), Some(Dtype::I64), 8),
    dtype("int32", Some("IntStorage"), Some(Dtype::I32), 4),
    dtype("int16", Some("ShortStorage"), Some(Dtype::I16), 2),
    dtype("int8", Some("CharStorage"), Some(Dtype::I8), 1),
    dtype("bool", Some("BoolStorage"), Some(Dtype::BOOL), 1),
    dtype(
        "complex64",
        Some("ComplexFloatStorage"),
        Some(Dtype::C64),
        8,
    ),
    dtype("complex128", Some("ComplexDoubleStorage"), None, 16),
    dtype("qint8", Some("QInt8Storage"), None, 1),
    dtype("quint8", Some("QUInt8Storage"), None, 1),
    dtype("qint32", Some("QInt32Storage"), None, 4),
    dtype("quint4x2", Some("QUInt4x2Storage"), None, 1),
    dtype("quint2x4", Some("QUInt2x4Storage"), None, 1),
    dtype("uint16", None, Some(Dtype::U16), 2),
    dtype("uint32", None, Some(Dtype::U32), 4),
    dtype("uint64", None, Some(Dtype::U64), 8),
    dtype("float8_e4m3fn", None, Some(Dtype::F8_E4M3), 1),
    dtype("float8_e5m2", None, Some(Dtype::F8_E5M2), 1),
    dtype("float8_e4m3fnuz", None, Some(Dtype::F8_E4M3FNUZ), 1),
    dtype("float8_e5m2fnuz", None, Some(Dtype::F8_E5M2FNUZ), 1),
    dtype("float8_e8m0fnu", None, Some(Dtype::F8_E8M0), 1),
    // Two 4-bit values per byte: torch's element is the byte pair.
    dtype("float4_e2m1fn_x2", None, None, 1),
    dtype("complex32", None, None, 4),
    dtype("uint1", None, None, 1),
];

/// A global the allowlist admits, as the tag the machine interprets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    /// `torch._utils._rebuild_tensor`: (storage, offset, size, stride).
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2`: v1's arguments, then
    /// `requires_grad`, backward hooks and optional metadata.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3`: v2's arguments and the dtype, for
    /// tensors over an untyped storage.
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter` and `_rebuild_parameter_with_state`:
    /// a tensor first, then flags and state the converter ignores.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2`: (rebuild function, class,
    /// arguments, state), for tensors whose class or attributes are saved.
    RebuildFromType,
    /// `torch.Tensor` or `torch.nn.parameter.Parameter`, as the class named
    /// by `_rebuild_from_type_v2`.
    TensorClass,
    /// A storage class, typed (`torch.FloatStorage`) or untyped
    /// (`torch.UntypedStorage`, whose elements are bytes).
    Storage(&'static TorchDtype),
    /// A dtype (`torch.float32`).
    Dtype(&'static TorchDtype),
    /// `collections.OrderedDict`: a dict.
    OrderedDict,
    /// `torch.Size`: a tuple.
    Size,
    /// `builtins.set` (protocol 2 names it `__builtin__.set`).
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `_codecs.encode`, which protocol 2 uses to pickle `bytes`.
    Encode,
}

impl Global {
    /// The allowed global `module.name`, if it is one.
    pub(crate) fn lookup(module: &str, name: &str) -> Option<Global> {
        let global = match (module, name) {
            ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Global::RebuildParameter
            }
            ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
            ("torch" | "torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => {
                Global::TensorClass
            }
            ("torch" | "torch.storage", "UntypedStorage") => Global::Storage(&UINT8),
            ("torch", "Size") => Global::Size,
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("builtins" | "__builtin__", "set") => Global::Set,
            ("builtins" | "__builtin__", "frozenset") => Global::FrozenSet,
            ("_codecs", "encode") => Global::Encode,
            ("torch", _) => return torch_dtype(name),
            _ => return None,
        };
        Some(global)
    }

    /// How errors name it.
    pub(crate) fn describe(self) -> String {
        match self {
            Global::RebuildTensor => "torch._utils._rebuild_tensor".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensorV3 => "torch._utils._rebuild_tensor_v3".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::RebuildFromType => "torch._tensor._rebuild_from_type_v2".into(),
            Global::TensorClass => "a tensor class".into(),
            Global::Storage(dtype) => format!("a torch storage class ({})", dtype.name),
            Global::Dtype(dtype) => format!("torch.{}", dtype.name),
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::Size => "torch.Size".into(),
            Global::Set => "builtins.set".into(),
            Global::FrozenSet => "builtins.frozenset".into(),
            Global::Encode => "_codecs.encode".into(),
        }
    }
}

/// `torch.<name>`: a typed storage class or a dtype.
fn torch_dtype(name: &str) -> Option<Global> {
    let byte_storage = (UINT8.storage == Some(name)).then_some(Global::Storage(&UINT8));
    byte_storage
        .or_else(|| {
            DTYPES
                .iter()
                .find(|dtype| dtype.storage == Some(name))
                .map(Global::Storage)
        })
        .or_else(|| {
            std::iter::once(&UINT8)
                .chain(&DTYPES)
                .find(|dtype| dtype.name == name)
                .map(Global::Dtype)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes_and_dtypes_are_allowed() {
        assert_eq!(
            Global::lookup("torch", "FloatStorage"),
            Some(Global::Storage(&DTYPES[1]))
        );
        assert_eq!(
            Global::lookup("torch", "ByteStorage"),
            Some(Global::Storage(&UINT8))
        );
        assert_eq!(
            Global::lookup("torch.storage", "UntypedStorage"),
            Some(Global::Storage(&UINT8))
        );
        assert_eq!(
            Global::lookup("torch", "uint8"),
            Some(Global::Dtype(&UINT8))
        );
        let Some(Global::Dtype(f8)) = Global::lookup("torch", "float8_e5m2") else {
            panic!("float8_e5m2 is a dtype");
        };
        assert_eq!(f8.safetensors, Some(Dtype::F8_E5M2));
        assert_eq!(
            Global::lookup("torch", "ComplexDoubleStorage").map(Global::describe),
            Some("a torch storage class (complex128)".into())
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for (module, name) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch", "Storage"),
            ("torch._utils", "_rebuild_qtensor"),
            ("collections", "defaultdict"),
            ("torch", ""),
        ] {
            assert_eq!(Global::lookup(module, name), None, "{module}.{name}");
        }
    }
}
