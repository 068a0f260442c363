//! Test helpers: pickles, zip archives and legacy streams written byte by
//! byte, the way torch lays them out.

use crate::opcodes as op;

/// A pickle under construction, starting with `PROTO 2`.
pub(crate) struct Pickler(pub(crate) Vec<u8>);

impl Pickler {
    pub(crate) fn new() -> Self {
        Self(vec![op::PROTO, 2])
    }

    pub(crate) fn op(mut self, code: u8) -> Self {
        self.0.push(code);
        self
    }

    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn str(self, text: &str) -> Self {
        let len = u32::try_from(text.len()).unwrap().to_le_bytes();
        self.op(op::BINUNICODE).raw(&len).raw(text.as_bytes())
    }

    /// A non-negative int up to `i64::MAX`, as the shortest opcode torch
    /// would use.
    pub(crate) fn int(self, n: u64) -> Self {
        match n {
            0..=0xff => self.op(op::BININT1).raw(&[n as u8]),
            0x100..=0xffff => self.op(op::BININT2).raw(&(n as u16).to_le_bytes()),
            _ => self.op(op::LONG1).raw(&[8]).raw(&n.to_le_bytes()),
        }
    }

    pub(crate) fn global(self, module: &str, name: &str) -> Self {
        self.op(op::GLOBAL)
            .raw(module.as_bytes())
            .raw(b"\n")
            .raw(name.as_bytes())
            .raw(b"\n")
    }

    pub(crate) fn ints(self, values: &[u64]) -> Self {
        let with_items = values.iter().fold(self.op(op::MARK), |p, &v| p.int(v));
        with_items.op(op::TUPLE)
    }

    /// `persistent_load(('storage', torch.<class>, key, 'cpu', numel))`;
    /// the legacy format adds a sixth field, `None`.
    pub(crate) fn storage(self, class: &str, key: &str, numel: u64, legacy: bool) -> Self {
        let module = if class == "UntypedStorage" {
            "torch.storage"
        } else {
            "torch"
        };
        let fields = self
            .op(op::MARK)
            .str("storage")
            .global(module, class)
            .str(key)
            .str("cuda:0")
            .int(numel);
        let fields = if legacy { fields.op(op::NONE) } else { fields };
        fields.op(op::TUPLE).op(op::BINPERSID)
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub(crate) fn tensor(self, storage: &Tensor) -> Self {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(op::MARK)
            .storage(storage.class, storage.key, storage.numel, storage.legacy)
            .int(storage.offset)
            .ints(&storage.shape)
            .ints(&storage.stride)
            .op(op::NEWFALSE)
            .global("collections", "OrderedDict")
            .op(op::EMPTY_TUPLE)
            .op(op::REDUCE)
            .op(op::TUPLE)
            .op(op::REDUCE)
    }

    /// A dict of named tensors.
    pub(crate) fn state_dict(self, tensors: &[(&str, Tensor)]) -> Self {
        let items = tensors
            .iter()
            .fold(self.op(op::EMPTY_DICT).op(op::MARK), |p, (name, tensor)| {
                p.str(name).tensor(tensor)
            });
        items.op(op::SETITEMS)
    }

    pub(crate) fn stop(self) -> Vec<u8> {
        self.op(op::STOP).0
    }
}

/// A tensor as a test pickles it.
#[derive(Clone)]
pub(crate) struct Tensor {
    pub(crate) class: &'static str,
    pub(crate) key: &'static str,
    pub(crate) numel: u64,
    pub(crate) offset: u64,
    pub(crate) shape: Vec<u64>,
    pub(crate) stride: Vec<u64>,
    pub(crate) legacy: bool,
}

impl Tensor {
    /// A contiguous float32 tensor of `shape` over storage `key`.
    pub(crate) fn f32(key: &'static str, numel: u64, shape: &[u64]) -> Self {
        Tensor {
            class: "FloatStorage",
            key,
            numel,
            offset: 0,
            shape: shape.to_vec(),
            stride: row_major(shape),
            legacy: false,
        }
    }

    /// The same storage seen with another offset, shape and stride.
    pub(crate) fn view(&self, offset: u64, shape: &[u64], stride: &[u64]) -> Self {
        Tensor {
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            ..self.clone()
        }
    }
}

fn row_major(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1; shape.len()];
    for dim in (0..shape.len().saturating_sub(1)).rev() {
        strides[dim] = strides[dim + 1] * shape[dim + 1];
    }
    strides
}

/// Little-endian float32 bytes.
pub(crate) fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An entry of a test zip archive.
pub(crate) struct Entry<'a> {
    pub(crate) name: &'a str,
    pub(crate) data: &'a [u8],
    pub(crate) method: u16,
}

/// A zip archive of stored entries; with `zip64`, every size and offset
/// goes in zip64 fields, as torch writes large files.
pub(crate) fn zip(entries: &[Entry<'_>], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = out.len() as u64;
        let size = entry.data.len() as u32;
        let name_len = entry.name.len() as u16;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0]);
        out.extend_from_slice(&entry.method.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(entry.name.as_bytes());
        out.extend_from_slice(entry.data);

        let (small_size, small_offset, extra) = if zip64 {
            let mut extra = vec![1, 0, 24, 0];
            for value in [entry.data.len() as u64, entry.data.len() as u64, offset] {
                extra.extend_from_slice(&value.to_le_bytes());
            }
            (u32::MAX, u32::MAX, extra)
        } else {
            (size, offset as u32, Vec::new())
        };
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        central.extend_from_slice(&entry.method.to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&small_size.to_le_bytes());
        central.extend_from_slice(&small_size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        // Comment length, disk, internal and external attributes.
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&small_offset.to_le_bytes());
        central.extend_from_slice(entry.name.as_bytes());
        central.extend_from_slice(&extra);
    }
    let directory = out.len() as u64;
    let count = entries.len() as u64;
    out.extend_from_slice(&central);
    if zip64 {
        let record = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for value in [count, count, central.len() as u64, directory] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&record.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    let (small_count, small_len, small_offset) = if zip64 {
        (u16::MAX, u32::MAX, u32::MAX)
    } else {
        (count as u16, central.len() as u32, directory as u32)
    };
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&small_count.to_le_bytes());
    out.extend_from_slice(&small_count.to_le_bytes());
    out.extend_from_slice(&small_len.to_le_bytes());
    out.extend_from_slice(&small_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A zip checkpoint as `torch.save` lays it out: `archive/data.pkl`, the
/// storages under `archive/data/`, `byteorder` and `version`.
pub(crate) fn zip_checkpoint(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let names: Vec<String> = storages
        .iter()
        .map(|(key, _)| format!("archive/data/{key}"))
        .collect();
    let mut entries = vec![
        stored("archive/data.pkl", pickle),
        stored("archive/byteorder", b"little"),
    ];
    entries.extend(
        names
            .iter()
            .zip(storages)
            .map(|(name, (_, data))| stored(name, data)),
    );
    entries.push(stored("archive/version", b"3\n"));
    zip(&entries, false)
}

pub(crate) fn stored<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        data,
        method: 0,
    }
}

/// A legacy checkpoint: the five pickles, then each storage prefixed by its
/// element count.
pub(crate) fn legacy_checkpoint(
    little_endian: bool,
    pickle: &[u8],
    storages: &[(&str, u64, &[u8])],
) -> Vec<u8> {
    // Protocol 4 frames the magic number, as torch writes it with
    // `pickle_protocol=4`.
    let mut out = vec![0x80, 4, op::FRAME];
    out.extend_from_slice(&13u64.to_le_bytes());
    out.extend_from_slice(&[
        0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
    ]);
    out.push(op::STOP);
    out.extend(
        Pickler::new()
            .op(op::BININT2)
            .raw(&1001u16.to_le_bytes())
            .stop(),
    );
    let flag = if little_endian {
        op::NEWTRUE
    } else {
        op::NEWFALSE
    };
    out.extend(
        Pickler::new()
            .op(op::EMPTY_DICT)
            .str("protocol_version")
            .int(1001)
            .op(op::SETITEM)
            .str("little_endian")
            .op(flag)
            .op(op::SETITEM)
            .stop(),
    );
    out.extend_from_slice(pickle);
    let keys = storages.iter().fold(
        Pickler::new().op(op::EMPTY_LIST).op(op::MARK),
        |p, (key, ..)| p.str(key),
    );
    out.extend(keys.op(op::APPENDS).stop());
    for (_, count, data) in storages {
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}
