//! The restricted pickle machine: runs the opcodes torch writes (protocols 2
//! to 5) against an inert value tree, within fixed bounds.
//!
//! Every length is checked against the bytes that remain before anything is
//! allocated, every index is checked, and every refusal names the opcode and
//! its byte offset.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::globals::Global;
use crate::opcodes::{self as op};
use crate::value::{ObjId, Object, Pickle, Value};

/// Bounds on the pickle machine. The defaults are far above what torch
/// writes for the largest models and far below what would exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most values on the stack at once.
    pub max_stack: usize,
    /// The most memo entries.
    pub max_memo: usize,
    /// The most MARKs open at once, and the deepest dict nesting flattened.
    pub max_depth: usize,
    /// The most opcodes run.
    pub max_ops: usize,
    /// The most dict entries a checkpoint's tree flattens to: a bound on
    /// trees that reuse one dict many times through the memo.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stack: 1 << 20,
            max_memo: 1 << 22,
            max_depth: 256,
            max_ops: 1 << 28,
            max_entries: 1 << 20,
        }
    }
}

/// The longest module or attribute name a GLOBAL may give.
const MAX_GLOBAL_LINE: usize = 1024;

impl Pickle {
    /// Reads a pickle with the default [`Limits`]. Bytes after STOP are
    /// ignored.
    pub fn parse(data: &[u8]) -> Result<Pickle> {
        Self::parse_with(data, &Limits::default())
    }

    /// Reads a pickle within `limits`.
    pub fn parse_with(data: &[u8], limits: &Limits) -> Result<Pickle> {
        Self::parse_at(data, 0, limits)
    }

    /// Reads the pickle that starts at `start` in `data`; offsets in errors
    /// are offsets in `data`.
    pub(crate) fn parse_at(data: &[u8], start: usize, limits: &Limits) -> Result<Pickle> {
        Machine {
            data,
            pos: start,
            offset: start,
            code: op::STOP,
            limits,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            pickle: Pickle {
                objects: Vec::new(),
                root: Value::None,
                end: start,
            },
        }
        .run()
    }
}

/// The machine's state while it runs.
pub(crate) struct Machine<'a> {
    data: &'a [u8],
    /// The next byte to read.
    pos: usize,
    /// Where the current opcode starts.
    offset: usize,
    /// The current opcode.
    code: u8,
    limits: &'a Limits,
    stack: Vec<Value>,
    /// The stack length at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// The arena being filled; its root is set at STOP.
    pub(crate) pickle: Pickle,
}

impl<'a> Machine<'a> {
    fn run(mut self) -> Result<Pickle> {
        let mut ops = 0usize;
        loop {
            let Some(&code) = self.data.get(self.pos) else {
                return Err(Error::MissingStop { offset: self.pos });
            };
            self.offset = self.pos;
            self.code = code;
            self.pos += 1;
            ops += 1;
            if ops > self.limits.max_ops {
                return Err(self.limit("opcodes", self.limits.max_ops));
            }
            if code == op::STOP {
                self.pickle.root = self.pop()?;
                self.pickle.end = self.pos;
                return Ok(self.pickle);
            }
            self.step(code)?;
        }
    }

    /// Runs one opcode other than STOP.
    fn step(&mut self, code: u8) -> Result<()> {
        match code {
            op::PROTO | op::FRAME | op::MARK | op::POP | op::POP_MARK => self.control(code),
            op::NONE
            | op::NEWTRUE
            | op::NEWFALSE
            | op::BININT
            | op::BININT1
            | op::BININT2
            | op::LONG1
            | op::LONG4
            | op::BINFLOAT
            | op::SHORT_BINUNICODE
            | op::BINUNICODE
            | op::BINUNICODE8
            | op::SHORT_BINBYTES
            | op::BINBYTES
            | op::BINBYTES8 => self.literal(code),
            op::EMPTY_TUPLE
            | op::EMPTY_LIST
            | op::EMPTY_DICT
            | op::EMPTY_SET
            | op::TUPLE
            | op::TUPLE1
            | op::TUPLE2
            | op::TUPLE3
            | op::FROZENSET
            | op::APPEND
            | op::APPENDS
            | op::ADDITEMS
            | op::SETITEM
            | op::SETITEMS => self.collection(code),
            op::BINPUT | op::LONG_BINPUT | op::MEMOIZE | op::BINGET | op::LONG_BINGET => {
                self.memo(code)
            }
            op::GLOBAL | op::STACK_GLOBAL | op::REDUCE | op::NEWOBJ | op::BUILD | op::BINPERSID => {
                self.interpret(code)
            }
            _ => Err(self.refuse(code)),
        }
    }

    /// The protocol header, framing and the MARK stack.
    fn control(&mut self, code: u8) -> Result<()> {
        match code {
            op::PROTO => {
                let version = self.take(1)?[0];
                if !(2..=5).contains(&version) {
                    return Err(self
                        .malformed(format!("protocol {version}; torch writes protocols 2 to 5")));
                }
            }
            op::FRAME => {
                // Frames only group opcodes for buffered reading; the length
                // must still fit in what remains.
                let len = self.u64()?;
                self.check_len(len)?;
            }
            op::MARK => {
                if self.marks.len() >= self.limits.max_depth {
                    return Err(self.limit("nested MARKs", self.limits.max_depth));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            _ => return Err(self.refuse(code)),
        }
        Ok(())
    }

    /// Constants, numbers, strings and bytes.
    fn literal(&mut self, code: u8) -> Result<()> {
        match code {
            op::NONE => self.push(Value::None),
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::BININT => {
                let bytes = self.array::<4>()?;
                self.push(Value::Int(i32::from_le_bytes(bytes).into()))
            }
            op::BININT1 => {
                let byte = self.take(1)?[0];
                self.push(Value::Int(byte.into()))
            }
            op::BININT2 => {
                let bytes = self.array::<2>()?;
                self.push(Value::Int(u16::from_le_bytes(bytes).into()))
            }
            op::LONG1 => {
                let len = self.take(1)?[0];
                self.long(len.into())
            }
            op::LONG4 => {
                let len = i32::from_le_bytes(self.array::<4>()?);
                let len = u64::try_from(len)
                    .map_err(|_| self.malformed(format!("negative length {len}")))?;
                self.long(len)
            }
            op::BINFLOAT => {
                self.take(8)?;
                self.push(Value::Float)
            }
            op::SHORT_BINUNICODE => {
                let len = self.take(1)?[0];
                self.unicode(len.into())
            }
            op::BINUNICODE => {
                let len = self.u32()?;
                self.unicode(len.into())
            }
            op::BINUNICODE8 => {
                let len = self.u64()?;
                self.unicode(len)
            }
            op::SHORT_BINBYTES => {
                let len = self.take(1)?[0];
                self.bytes(len.into())
            }
            op::BINBYTES => {
                let len = self.u32()?;
                self.bytes(len.into())
            }
            op::BINBYTES8 => {
                let len = self.u64()?;
                self.bytes(len)
            }
            _ => Err(self.refuse(code)),
        }
    }

    /// Building tuples, lists, dicts and sets.
    fn collection(&mut self, code: u8) -> Result<()> {
        match code {
            op::EMPTY_TUPLE => self.push_object(Object::Tuple(Vec::new())),
            op::EMPTY_LIST => self.push_object(Object::List(Vec::new())),
            op::EMPTY_DICT => self.push_object(Object::Dict(Vec::new())),
            op::EMPTY_SET => self.push_object(Object::Set(Vec::new())),
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push_object(Object::Tuple(items))
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let count = usize::from(code - op::TUPLE1 + 1);
                let items = self.pop_n(count)?;
                self.push_object(Object::Tuple(items))
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push_object(Object::Set(items))
            }
            op::APPEND => {
                let item = self.pop()?;
                self.extend(vec![item])
            }
            op::APPENDS | op::ADDITEMS => {
                let items = self.pop_mark()?;
                self.extend(items)
            }
            op::SETITEM => {
                let items = self.pop_n(2)?;
                self.set_items(&items)
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.set_items(&items)
            }
            _ => Err(self.refuse(code)),
        }
    }

    /// Storing and fetching memo entries.
    fn memo(&mut self, code: u8) -> Result<()> {
        match code {
            op::BINPUT => {
                let index = self.take(1)?[0];
                self.memo_put(index.into())
            }
            op::LONG_BINPUT => {
                let index = self.u32()?;
                self.memo_put(index)
            }
            op::MEMOIZE => {
                // The memo is bounded far below `u32::MAX` entries.
                let index = u32::try_from(self.memo.len())
                    .map_err(|_| self.limit("memo entries", self.limits.max_memo))?;
                self.memo_put(index)
            }
            op::BINGET => {
                let index = self.take(1)?[0];
                self.memo_get(index.into())
            }
            op::LONG_BINGET => {
                let index = self.u32()?;
                self.memo_get(index)
            }
            _ => Err(self.refuse(code)),
        }
    }

    /// Globals, and the opcodes that would call them: interpreted (see
    /// `reduce.rs`), never called.
    fn interpret(&mut self, code: u8) -> Result<()> {
        let value = match code {
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(&module, &name)?
            }
            op::STACK_GLOBAL => {
                let operands = self.pop_n(2)?;
                let (Some(module), Some(name)) = (
                    self.pickle.str(operands[0]).map(str::to_owned),
                    self.pickle.str(operands[1]).map(str::to_owned),
                ) else {
                    return Err(self.malformed(format!(
                        "needs a module and a name as strings, got {} and {}",
                        self.pickle.kind(operands[0]),
                        self.pickle.kind(operands[1])
                    )));
                };
                self.global(&module, &name)?
            }
            op::REDUCE => {
                let operands = self.pop_n(2)?;
                self.reduce(operands[0], operands[1])?
            }
            op::NEWOBJ => {
                let operands = self.pop_n(2)?;
                self.new_object(operands[0], operands[1])?
            }
            op::BUILD => {
                // The state is dropped (see `build`).
                self.pop()?;
                let target = self.peek()?;
                return self.build(target);
            }
            op::BINPERSID => {
                let id = self.pop()?;
                self.persistent_load(id)?
            }
            _ => return Err(self.refuse(code)),
        };
        self.push(value)
    }

    /// The error for an opcode outside the allowlist.
    fn refuse(&self, code: u8) -> Error {
        match op::name(code) {
            Some(opcode) => Error::ForbiddenOpcode {
                opcode,
                offset: self.offset,
                why: op::refusal(code),
            },
            None => Error::UnknownOpcode {
                code,
                offset: self.offset,
            },
        }
    }

    /// An error about the current opcode.
    pub(crate) fn malformed(&self, problem: impl Into<String>) -> Error {
        Error::Malformed {
            opcode: self.opcode(),
            offset: self.offset,
            problem: problem.into(),
        }
    }

    fn limit(&self, what: &'static str, limit: usize) -> Error {
        Error::Limit {
            opcode: self.opcode(),
            offset: self.offset,
            what,
            limit,
        }
    }

    fn opcode(&self) -> &'static str {
        op::name(self.code).unwrap_or("?")
    }

    /// Fails unless `len` more bytes remain.
    fn check_len(&self, len: u64) -> Result<usize> {
        let available = self.data.len() - self.pos;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= available)
            .ok_or(Error::Truncated {
                opcode: self.opcode(),
                offset: self.offset,
                needed: len,
                available,
            })
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8]> {
        let len = self.check_len(len)?;
        let data = self.data;
        let bytes = &data[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N as u64)?);
        Ok(array)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A newline-terminated line of GLOBAL.
    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let Some(len) = rest.iter().take(MAX_GLOBAL_LINE).position(|&b| b == b'\n') else {
            return Err(self.malformed(format!(
                "no newline within {MAX_GLOBAL_LINE} bytes after a module or attribute name"
            )));
        };
        let line = std::str::from_utf8(&rest[..len])
            .map_err(|_| self.malformed("a module or attribute name is not UTF-8"))?
            .to_owned();
        self.pos += len + 1;
        Ok(line)
    }

    /// A little-endian two's complement integer of `len` bytes.
    fn long(&mut self, len: u64) -> Result<()> {
        let bytes = self.take(len)?;
        if bytes.len() <= 8 {
            // Sign-extend from the top byte, then read as i64.
            let fill = if bytes.last().is_some_and(|&b| b >= 0x80) {
                0xff
            } else {
                0
            };
            let mut wide = [fill; 8];
            wide[..bytes.len()].copy_from_slice(bytes);
            self.push(Value::Int(i64::from_le_bytes(wide)))
        } else {
            self.push(Value::BigInt)
        }
    }

    fn unicode(&mut self, len: u64) -> Result<()> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|err| self.malformed(format!("the string is not UTF-8: {err}")))?
            .to_owned();
        self.push_object(Object::Str(text))
    }

    fn bytes(&mut self, len: u64) -> Result<()> {
        self.take(len)?;
        self.push(Value::Bytes)
    }

    fn push(&mut self, value: Value) -> Result<()> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(self.limit("values on the stack", self.limits.max_stack));
        }
        self.stack.push(value);
        Ok(())
    }

    /// Adds `object` to the arena and returns a reference to it.
    pub(crate) fn alloc(&mut self, object: Object) -> Value {
        self.pickle.objects.push(object);
        Value::Obj(ObjId(self.pickle.objects.len() - 1))
    }

    fn push_object(&mut self, object: Object) -> Result<()> {
        let value = self.alloc(object);
        self.push(value)
    }

    /// The bottom of the current MARK frame: opcodes other than the
    /// MARK-popping ones never reach below it.
    fn frame_start(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value> {
        Ok(self.pop_n(1)?[0])
    }

    fn peek(&self) -> Result<Value> {
        match self.stack.last() {
            Some(&value) if self.stack.len() > self.frame_start() => Ok(value),
            _ => Err(self.malformed("the stack is empty")),
        }
    }

    /// The top `count` values, bottom first.
    fn pop_n(&mut self, count: usize) -> Result<Vec<Value>> {
        let available = self.stack.len() - self.frame_start();
        if available < count {
            return Err(self.malformed(format!(
                "needs {count} values on the stack, {available} are above the last MARK"
            )));
        }
        Ok(self.stack.split_off(self.stack.len() - count))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.malformed("no MARK is open"));
        };
        Ok(self.stack.split_off(mark))
    }

    /// The arena object a value refers to, for filling a container.
    fn object_mut(&mut self, value: Value) -> Option<&mut Object> {
        match value {
            Value::Obj(id) => Some(&mut self.pickle.objects[id.0]),
            _ => None,
        }
    }

    /// APPEND(S) into a list, ADDITEMS into a set.
    fn extend(&mut self, items: Vec<Value>) -> Result<()> {
        let target = self.peek()?;
        let into_set = self.code == op::ADDITEMS;
        match (self.object_mut(target), into_set) {
            (Some(Object::List(list)), false) => list.extend(items),
            (Some(Object::Set(set)), true) => set.extend(items),
            _ => {
                let kind = self.pickle.kind(target);
                return Err(self.malformed(format!("cannot add items to {kind}")));
            }
        }
        Ok(())
    }

    fn set_items(&mut self, items: &[Value]) -> Result<()> {
        if items.len() % 2 != 0 {
            return Err(
                self.malformed(format!("needs key-value pairs, got {} values", items.len()))
            );
        }
        let target = self.peek()?;
        let Some(Object::Dict(dict)) = self.object_mut(target) else {
            let kind = self.pickle.kind(target);
            return Err(self.malformed(format!("cannot set items of {kind}")));
        };
        dict.extend(items.chunks_exact(2).map(|pair| (pair[0], pair[1])));
        Ok(())
    }

    fn memo_put(&mut self, index: u32) -> Result<()> {
        let value = self.peek()?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&index) {
            return Err(self.limit("memo entries", self.limits.max_memo));
        }
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<()> {
        let value = *self
            .memo
            .get(&index)
            .ok_or_else(|| self.malformed(format!("memo entry {index} was never set")))?;
        self.push(value)
    }

    /// An allowed global, or the error that names the refused one.
    fn global(&self, module: &str, name: &str) -> Result<Value> {
        let global = Global::lookup(module, name).ok_or_else(|| Error::ForbiddenGlobal {
            module: module.to_owned(),
            name: name.to_owned(),
            offset: self.offset,
        })?;
        Ok(Value::Global(global))
    }
}
