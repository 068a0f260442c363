//! `TensorSpec`: a tensor to write, described by dtype, shape and memory.

use ironsafe::Dtype;
use pyo3::prelude::*;

use crate::error::SafetensorError;
use crate::raw::RawView;

/// The dtype names `TensorSpec` accepts (torch's), with the file code each
/// maps to.
const DTYPE_NAMES: [(&str, Dtype); 20] = [
    ("bool", Dtype::BOOL),
    ("int8", Dtype::I8),
    ("uint8", Dtype::U8),
    ("int16", Dtype::I16),
    ("uint16", Dtype::U16),
    ("int32", Dtype::I32),
    ("uint32", Dtype::U32),
    ("int64", Dtype::I64),
    ("uint64", Dtype::U64),
    ("float16", Dtype::F16),
    ("float32", Dtype::F32),
    ("float64", Dtype::F64),
    ("bfloat16", Dtype::BF16),
    ("float8_e4m3fn", Dtype::F8_E4M3),
    ("float8_e4m3fnuz", Dtype::F8_E4M3FNUZ),
    ("float8_e5m2", Dtype::F8_E5M2),
    ("float8_e5m2fnuz", Dtype::F8_E5M2FNUZ),
    ("float8_e8m0fnu", Dtype::F8_E8M0),
    ("float4_e2m1fn_x2", Dtype::F4),
    ("complex64", Dtype::C64),
];

/// Describes one tensor for `serialize` / `serialize_file`: its dtype (a
/// torch-style name such as `"float32"`), its shape, and `data_len` bytes of
/// little-endian, row-major data at address `data_ptr`.
///
/// For `float4_e2m1fn_x2` (two 4-bit values per byte) pass the packed shape
/// your framework reports; the last dimension is doubled to the logical
/// element count that the header records.
///
/// The memory at `data_ptr` must stay alive and unchanged until every
/// `serialize` call that takes this spec has returned.
#[pyclass(frozen, module = "ironsafe", from_py_object)]
#[derive(Clone)]
pub(crate) struct TensorSpec {
    pub(crate) view: RawView,
}

#[pymethods]
impl TensorSpec {
    #[new]
    #[pyo3(signature = (*, dtype, shape, data_ptr, data_len))]
    fn new(dtype: &str, mut shape: Vec<usize>, data_ptr: usize, data_len: usize) -> PyResult<Self> {
        let Some(&(_, code)) = DTYPE_NAMES.iter().find(|(name, _)| *name == dtype) else {
            let names: Vec<&str> = DTYPE_NAMES.iter().map(|(name, _)| *name).collect();
            return Err(SafetensorError::new_err(format!(
                "Unknown dtype \"{dtype}\". Supported dtypes: {}",
                names.join(", ")
            )));
        };
        if code == Dtype::F4 {
            if let Some(last) = shape.last_mut() {
                *last = last
                    .checked_mul(2)
                    .ok_or_else(|| SafetensorError::new_err("float4 shape is too large"))?;
            }
        }
        if data_ptr == 0 && data_len > 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "data_ptr is null but data_len is not 0",
            ));
        }
        Ok(Self {
            view: RawView {
                dtype: code,
                shape,
                address: data_ptr,
                len: data_len,
            },
        })
    }

    /// The file's dtype code, e.g. `"F32"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.view.dtype.name()
    }

    /// The logical shape, as the header records it.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.view.shape.clone()
    }

    /// The address of the first byte.
    #[getter]
    fn data_ptr(&self) -> usize {
        self.view.address
    }

    /// The number of bytes.
    #[getter]
    fn data_len(&self) -> usize {
        self.view.len
    }

    fn __repr__(&self) -> String {
        format!(
            "TensorSpec(dtype='{}', shape={:?}, data_ptr={}, data_len={})",
            self.dtype(),
            self.view.shape,
            self.view.address,
            self.view.len
        )
    }
}
