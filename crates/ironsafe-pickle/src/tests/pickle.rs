//! The pickle machine: every allowed opcode, every refusal, every bound.

use crate::Error;
use crate::globals::Global;
use crate::machine::Limits;
use crate::opcodes as op;
use crate::testing::{Pickler, Tensor};
use crate::value::{Object, Pickle, Value};

fn parse(bytes: &[u8]) -> Pickle {
    Pickle::parse(bytes).unwrap_or_else(|err| panic!("{err}"))
}

fn error(bytes: &[u8]) -> String {
    Pickle::parse(bytes).unwrap_err().to_string()
}

fn object(pickle: &Pickle, value: Value) -> &Object {
    match value {
        Value::Obj(id) => pickle.object(id),
        other => panic!("{other:?} is not an object"),
    }
}

fn dict(pickle: &Pickle) -> &[(Value, Value)] {
    match object(pickle, pickle.root) {
        Object::Dict(entries) => entries,
        other => panic!("{other:?} is not a dict"),
    }
}

/// The values of a dict, by string key.
fn entry(pickle: &Pickle, key: &str) -> Value {
    dict(pickle)
        .iter()
        .find(|(k, _)| pickle.str(*k) == Some(key))
        .map_or_else(|| panic!("no key {key}"), |&(_, v)| v)
}

#[test]
fn scalars_and_strings() {
    let bytes = Pickler::new()
        .op(op::EMPTY_DICT)
        .op(op::MARK)
        .str("none")
        .op(op::NONE)
        .str("true")
        .op(op::NEWTRUE)
        .str("false")
        .op(op::NEWFALSE)
        .str("binint")
        .op(op::BININT)
        .raw(&(-5i32).to_le_bytes())
        .str("binint2")
        .op(op::BININT2)
        .raw(&[0x34, 0x12])
        .str("long1")
        .op(op::LONG1)
        .raw(&[2, 0xff, 0x7f])
        .str("long1 negative")
        .op(op::LONG1)
        .raw(&[1, 0xff])
        .str("long1 zero")
        .op(op::LONG1)
        .raw(&[0])
        .str("long4 big")
        .op(op::LONG4)
        .raw(&9i32.to_le_bytes())
        .raw(&[1; 9])
        .str("float")
        .op(op::BINFLOAT)
        .raw(&1.5f64.to_be_bytes())
        .str("short")
        .op(op::SHORT_BINUNICODE)
        .raw(&[2])
        .raw(b"hi")
        .str("unicode8")
        .op(op::BINUNICODE8)
        .raw(&3u64.to_le_bytes())
        .raw(b"abc")
        .str("bytes")
        .op(op::SHORT_BINBYTES)
        .raw(&[1, 0])
        .str("binbytes")
        .op(op::BINBYTES)
        .raw(&2u32.to_le_bytes())
        .raw(&[0, 0])
        .str("bytes8")
        .op(op::BINBYTES8)
        .raw(&0u64.to_le_bytes())
        .op(op::SETITEMS)
        .stop();
    let pickle = parse(&bytes);
    assert!(matches!(entry(&pickle, "none"), Value::None));
    assert!(matches!(entry(&pickle, "true"), Value::Bool(true)));
    assert!(matches!(entry(&pickle, "false"), Value::Bool(false)));
    assert!(matches!(entry(&pickle, "binint"), Value::Int(-5)));
    assert!(matches!(entry(&pickle, "binint2"), Value::Int(0x1234)));
    assert!(matches!(entry(&pickle, "long1"), Value::Int(0x7fff)));
    assert!(matches!(entry(&pickle, "long1 negative"), Value::Int(-1)));
    assert!(matches!(entry(&pickle, "long1 zero"), Value::Int(0)));
    assert!(matches!(entry(&pickle, "long4 big"), Value::BigInt));
    assert!(matches!(entry(&pickle, "float"), Value::Float));
    assert_eq!(pickle.str(entry(&pickle, "short")), Some("hi"));
    assert_eq!(pickle.str(entry(&pickle, "unicode8")), Some("abc"));
    for key in ["bytes", "binbytes", "bytes8"] {
        assert!(matches!(entry(&pickle, key), Value::Bytes), "{key}");
    }
    assert_eq!(dict(&pickle).len(), 15);
}

#[test]
fn containers_memo_and_protocol_4() {
    // PROTO 4 with a FRAME, MEMOIZE and STACK_GLOBAL as protocol 4 writes.
    let bytes = Pickler(vec![op::PROTO, 4, op::FRAME])
        .raw(&10u64.to_le_bytes())
        .op(op::EMPTY_DICT)
        .op(op::MEMOIZE)
        .str("list")
        .op(op::EMPTY_LIST)
        .op(op::BINPUT)
        .raw(&[7])
        .op(op::BININT1)
        .raw(&[1])
        .op(op::APPEND)
        .op(op::MARK)
        .op(op::BININT1)
        .raw(&[2])
        .op(op::BININT1)
        .raw(&[3])
        .op(op::APPENDS)
        .op(op::SETITEM)
        .str("same list")
        .op(op::BINGET)
        .raw(&[7])
        .op(op::SETITEM)
        .str("tuples")
        .op(op::NONE)
        .op(op::TUPLE1)
        .op(op::NONE)
        .op(op::NONE)
        .op(op::TUPLE2)
        .op(op::NONE)
        .op(op::NONE)
        .op(op::NONE)
        .op(op::TUPLE3)
        .op(op::TUPLE3)
        .op(op::LONG_BINPUT)
        .raw(&u32::MAX.to_le_bytes())
        .op(op::SETITEM)
        .str("again")
        .op(op::LONG_BINGET)
        .raw(&u32::MAX.to_le_bytes())
        .op(op::SETITEM)
        .stop();
    let pickle = parse(&bytes);
    let Object::List(items) = object(&pickle, entry(&pickle, "list")) else {
        panic!("not a list");
    };
    assert!(matches!(
        items[..],
        [Value::Int(1), Value::Int(2), Value::Int(3)]
    ));
    // The memo hands out the same object, not a copy.
    assert!(matches!(
        (entry(&pickle, "list"), entry(&pickle, "same list")),
        (Value::Obj(a), Value::Obj(b)) if a == b
    ));
    let Object::Tuple(tuples) = object(&pickle, entry(&pickle, "tuples")) else {
        panic!("not a tuple");
    };
    let lens: Vec<usize> = tuples
        .iter()
        .map(|&t| match object(&pickle, t) {
            Object::Tuple(items) => items.len(),
            _ => panic!("not a tuple"),
        })
        .collect();
    assert_eq!(lens, [1, 2, 3]);
    assert!(matches!(
        (entry(&pickle, "tuples"), entry(&pickle, "again")),
        (Value::Obj(a), Value::Obj(b)) if a == b
    ));
}

#[test]
fn sets_ordered_dicts_and_pops() {
    let bytes = Pickler::new()
        .op(op::EMPTY_DICT)
        .str("set")
        .op(op::EMPTY_SET)
        .op(op::MARK)
        .op(op::NONE)
        .op(op::ADDITEMS)
        .op(op::SETITEM)
        .str("frozenset")
        .op(op::MARK)
        .op(op::NEWTRUE)
        .op(op::FROZENSET)
        .op(op::SETITEM)
        .str("ordered")
        .op(op::SHORT_BINUNICODE)
        .raw(&[11])
        .raw(b"collections")
        .op(op::SHORT_BINUNICODE)
        .raw(&[11])
        .raw(b"OrderedDict")
        .op(op::STACK_GLOBAL)
        .op(op::EMPTY_TUPLE)
        .op(op::REDUCE)
        .op(op::EMPTY_DICT)
        .op(op::BUILD)
        .op(op::SETITEM)
        .str("newobj")
        .global("builtins", "set")
        .op(op::EMPTY_TUPLE)
        .op(op::NEWOBJ)
        .op(op::SETITEM)
        .str("popped")
        .op(op::NONE)
        .op(op::NONE)
        .op(op::POP)
        .op(op::MARK)
        .op(op::NONE)
        .op(op::POP_MARK)
        .op(op::SETITEM)
        .stop();
    let pickle = parse(&bytes);
    assert!(matches!(object(&pickle, entry(&pickle, "set")), Object::Set(s) if s.len() == 1));
    assert!(matches!(object(&pickle, entry(&pickle, "frozenset")), Object::Set(s) if s.len() == 1));
    assert!(matches!(object(&pickle, entry(&pickle, "ordered")), Object::Dict(d) if d.is_empty()));
    assert!(matches!(object(&pickle, entry(&pickle, "newobj")), Object::Set(s) if s.is_empty()));
    assert!(matches!(entry(&pickle, "popped"), Value::None));
}

#[test]
fn protocol_2_containers_and_bytes_are_rebuilt() {
    // What protocol 2 writes for a set, an OrderedDict with items, a
    // torch.Size and bytes: a global called on its items.
    let bytes = Pickler::new()
        .op(op::EMPTY_DICT)
        .op(op::MARK)
        .str("set")
        .global("__builtin__", "set")
        .op(op::EMPTY_LIST)
        .op(op::MARK)
        .int(1)
        .int(2)
        .op(op::APPENDS)
        .op(op::TUPLE1)
        .op(op::REDUCE)
        .str("ordered")
        .global("collections", "OrderedDict")
        .op(op::EMPTY_LIST)
        .str("k")
        .int(1)
        .op(op::TUPLE2)
        .op(op::APPEND)
        .op(op::TUPLE1)
        .op(op::REDUCE)
        .str("size")
        .global("torch", "Size")
        .ints(&[2, 3])
        .op(op::TUPLE1)
        .op(op::REDUCE)
        .str("bytes")
        .global("_codecs", "encode")
        .str("ab")
        .str("latin1")
        .op(op::TUPLE2)
        .op(op::REDUCE)
        .op(op::SETITEMS)
        .stop();
    let pickle = parse(&bytes);
    assert!(matches!(object(&pickle, entry(&pickle, "set")), Object::Set(s) if s.len() == 2));
    let Object::Dict(ordered) = object(&pickle, entry(&pickle, "ordered")) else {
        panic!("not a dict");
    };
    assert!(matches!(ordered[..], [(key, Value::Int(1))] if pickle.str(key) == Some("k")));
    assert!(matches!(object(&pickle, entry(&pickle, "size")), Object::Tuple(t) if t.len() == 2));
    assert!(matches!(entry(&pickle, "bytes"), Value::Bytes));
    let not_latin1 = Pickler::new()
        .global("_codecs", "encode")
        .str("ab")
        .str("utf-8")
        .op(op::TUPLE2)
        .op(op::REDUCE)
        .stop();
    assert!(
        error(&not_latin1)
            .ends_with("_codecs.encode is only read with a string and the encoding latin1")
    );
    let pair = Pickler::new()
        .global("collections", "OrderedDict")
        .op(op::NONE)
        .op(op::TUPLE1)
        .op(op::TUPLE1)
        .op(op::TUPLE1)
        .op(op::REDUCE)
        .stop();
    assert!(error(&pair).ends_with("an OrderedDict item is not a pair"));
}

#[test]
fn tensor_rebuild_functions_are_interpreted() {
    let v2 = Tensor::f32("0", 6, &[2, 3]);
    let bytes = Pickler::new()
        .op(op::EMPTY_DICT)
        .op(op::MARK)
        .str("v2")
        .tensor(&v2)
        .str("v1")
        .global("torch._utils", "_rebuild_tensor")
        .op(op::MARK)
        .storage("HalfStorage", "1", 4, false)
        .int(1)
        .ints(&[3])
        .ints(&[1])
        .op(op::TUPLE)
        .op(op::REDUCE)
        .str("v3")
        .global("torch._utils", "_rebuild_tensor_v3")
        .op(op::MARK)
        .storage("UntypedStorage", "2", 8, false)
        .int(0)
        .global("torch", "Size")
        .ints(&[4])
        .op(op::TUPLE1)
        .op(op::REDUCE)
        .ints(&[1])
        .op(op::NEWFALSE)
        .op(op::EMPTY_DICT)
        .global("torch", "uint16")
        .op(op::TUPLE)
        .op(op::REDUCE)
        .str("parameter")
        .global("torch._utils", "_rebuild_parameter")
        .tensor(&v2)
        .op(op::NEWTRUE)
        .op(op::EMPTY_DICT)
        .op(op::TUPLE3)
        .op(op::REDUCE)
        .str("from type")
        .global("torch._tensor", "_rebuild_from_type_v2")
        .op(op::MARK)
        .global("torch._utils", "_rebuild_tensor_v2")
        .global("torch.nn.parameter", "Parameter")
        .op(op::MARK)
        .storage("BFloat16Storage", "3", 2, false)
        .int(0)
        .ints(&[2])
        .ints(&[1])
        .op(op::NEWFALSE)
        .op(op::EMPTY_DICT)
        .op(op::TUPLE)
        .op(op::EMPTY_DICT)
        .op(op::TUPLE)
        .op(op::REDUCE)
        .op(op::EMPTY_DICT)
        .op(op::BUILD)
        .op(op::SETITEMS)
        .stop();
    let pickle = parse(&bytes);
    let tensor = |key| match object(&pickle, entry(&pickle, key)) {
        Object::Tensor(desc) => desc,
        other => panic!("{key}: {other:?}"),
    };
    let v2 = tensor("v2");
    assert_eq!(
        (
            v2.storage.as_str(),
            v2.dtype.name,
            v2.offset,
            &v2.shape[..],
            &v2.strides[..]
        ),
        ("0", "float32", 0, &[2, 3][..], &[3, 1][..])
    );
    let v1 = tensor("v1");
    assert_eq!(
        (v1.dtype.name, v1.offset, &v1.shape[..]),
        ("float16", 1, &[3][..])
    );
    let v3 = tensor("v3");
    assert_eq!(
        (v3.storage.as_str(), v3.dtype.name, &v3.shape[..]),
        ("2", "uint16", &[4][..])
    );
    assert_eq!(tensor("parameter").dtype.name, "float32");
    assert_eq!(tensor("from type").dtype.name, "bfloat16");
    let storages = pickle.storages().unwrap();
    assert_eq!(storages["2"].dtype.name, "uint8");
    assert_eq!(storages["0"].byte_len(), Some(24));
}

#[test]
fn dangerous_globals_are_refused_by_name_and_offset() {
    for (module, name) in [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("__builtin__", "getattr"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("torch._utils", "_rebuild_qtensor"),
    ] {
        let bytes = Pickler::new()
            .global(module, name)
            .str("echo pwned")
            .op(op::TUPLE1)
            .op(op::REDUCE)
            .stop();
        assert_eq!(
            error(&bytes),
            format!(
                "refused global `{module}.{name}` at byte 2: only torch's tensor rebuild \
                 functions, storage types, dtypes and inert containers are allowed"
            )
        );
    }
    // STACK_GLOBAL names the same way, with its own offset.
    let bytes = Pickler::new()
        .str("subprocess")
        .str("check_output")
        .op(op::STACK_GLOBAL)
        .stop();
    let err = Pickle::parse(&bytes).unwrap_err();
    assert!(
        matches!(&err, Error::ForbiddenGlobal { module, name, offset: 34 }
            if module == "subprocess" && name == "check_output"),
        "{err}"
    );
}

#[test]
fn code_running_opcodes_are_refused() {
    let cases: [(&[u8], &str); 9] = [
        (b"(S'ls'\nios\nsystem\n.", "refused opcode STRING at byte 3"),
        (
            b"(ios\nsystem\n.",
            "refused opcode INST at byte 3: it instantiates a class by name",
        ),
        (b"(X\x02\x00\x00\x00lso.", "refused opcode OBJ at byte 10"),
        (
            b"\x82\x01.",
            "refused opcode EXT1 at byte 2: it loads a global",
        ),
        (b"\x92.", "refused opcode NEWOBJ_EX at byte 2"),
        (b"P0\n.", "refused opcode PERSID at byte 2"),
        (b"\x97.", "refused opcode NEXT_BUFFER at byte 2"),
        (b"I1\n.", "refused opcode INT at byte 2"),
        (b"\xff.", "unknown opcode 0xff at byte 2"),
    ];
    for (body, message) in cases {
        let bytes = Pickler::new().raw(body).0;
        let err = error(&bytes);
        assert!(err.starts_with(message), "{err} / {message}");
    }
}

#[test]
fn calls_of_allowed_globals_are_checked() {
    let cases: [(Pickler, &str); 8] = [
        (
            Pickler::new()
                .global("torch", "FloatStorage")
                .op(op::EMPTY_TUPLE)
                .op(op::REDUCE),
            "REDUCE at byte 23: a torch storage class (float32) cannot be called",
        ),
        (
            Pickler::new()
                .op(op::NONE)
                .op(op::EMPTY_TUPLE)
                .op(op::REDUCE),
            "REDUCE at byte 4: calls None, not an allowed global",
        ),
        (
            Pickler::new()
                .global("collections", "OrderedDict")
                .op(op::NONE)
                .op(op::REDUCE),
            "REDUCE at byte 28: the arguments of collections.OrderedDict must be a tuple, got None",
        ),
        (
            Pickler::new()
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(op::EMPTY_TUPLE)
                .op(op::NEWOBJ),
            "NEWOBJ at byte 36: torch._utils._rebuild_tensor_v2 cannot be instantiated",
        ),
        (
            Pickler::new().op(op::EMPTY_LIST).op(op::NONE).op(op::BUILD),
            "BUILD at byte 4: cannot set the state of a list",
        ),
        (
            Pickler::new()
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(op::NONE)
                .op(op::NONE)
                .op(op::TUPLE2)
                .op(op::REDUCE),
            "REDUCE at byte 38: torch._utils._rebuild_tensor_v2 takes 6 to 7 arguments, got 2",
        ),
        (
            Pickler::new()
                .str("storage")
                .op(op::TUPLE1)
                .op(op::BINPERSID),
            "BINPERSID at byte 15: a persistent id must be ('storage', storage class, key, location, size)",
        ),
        (
            Pickler::new().int(1).str("x").op(op::STACK_GLOBAL),
            "STACK_GLOBAL at byte 10: needs a module and a name as strings, got an int and a string",
        ),
    ];
    for (pickler, message) in cases {
        assert_eq!(error(&pickler.stop()), message);
    }
}

#[test]
fn tensor_arguments_are_checked() {
    let with_args = |offset: Pickler| {
        offset
            .global("torch._utils", "_rebuild_tensor")
            .op(op::MARK)
            .storage("FloatStorage", "0", 4, false)
    };
    let negative = with_args(Pickler::new())
        .op(op::BININT)
        .raw(&(-1i32).to_le_bytes())
        .ints(&[2])
        .ints(&[1])
        .op(op::TUPLE)
        .op(op::REDUCE)
        .stop();
    assert!(error(&negative).ends_with("a tensor's storage offset is negative (-1)"));
    let huge = with_args(Pickler::new())
        .op(op::LONG1)
        .raw(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        .ints(&[2])
        .ints(&[1])
        .op(op::TUPLE)
        .op(op::REDUCE)
        .stop();
    assert!(error(&huge).ends_with("a tensor's storage offset does not fit in 64 bits"));
    let ranks = with_args(Pickler::new())
        .int(0)
        .ints(&[2, 2])
        .ints(&[1])
        .op(op::TUPLE)
        .op(op::REDUCE)
        .stop();
    assert!(error(&ranks).ends_with("the size has 2 dimensions but the stride has 1"));
    let not_storage = Pickler::new()
        .global("torch._utils", "_rebuild_tensor")
        .op(op::MARK)
        .op(op::NONE)
        .int(0)
        .ints(&[])
        .ints(&[])
        .op(op::TUPLE)
        .op(op::REDUCE)
        .stop();
    assert!(error(&not_storage).ends_with("a tensor's storage is None, not a storage"));
    let view = Pickler::new()
        .op(op::MARK)
        .str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(4)
        .str("view")
        .op(op::TUPLE)
        .op(op::BINPERSID)
        .stop();
    assert!(
        error(&view)
            .ends_with("storage views (a persistent id with view metadata) are not supported")
    );
}

#[test]
fn lengths_are_checked_before_reading() {
    let huge_string = Pickler::new()
        .op(op::BINUNICODE)
        .raw(&u32::MAX.to_le_bytes())
        .stop();
    assert_eq!(
        error(&huge_string),
        "BINUNICODE at byte 2 needs 4294967295 bytes but only 1 remain"
    );
    let huge_bytes = Pickler::new()
        .op(op::BINBYTES8)
        .raw(&u64::MAX.to_le_bytes())
        .stop();
    assert!(error(&huge_bytes).starts_with("BINBYTES8 at byte 2 needs 18446744073709551615 bytes"));
    let huge_long = Pickler::new()
        .op(op::LONG4)
        .raw(&i32::MAX.to_le_bytes())
        .stop();
    assert!(error(&huge_long).starts_with("LONG4 at byte 2 needs 2147483647 bytes"));
    let negative_long = Pickler::new()
        .op(op::LONG4)
        .raw(&(-1i32).to_le_bytes())
        .stop();
    assert_eq!(error(&negative_long), "LONG4 at byte 2: negative length -1");
    let frame = Pickler::new()
        .op(op::FRAME)
        .raw(&100u64.to_le_bytes())
        .stop();
    assert!(error(&frame).starts_with("FRAME at byte 2 needs 100 bytes"));
    let cut = Pickler::new().op(op::BININT).raw(&[1, 2]).0;
    assert_eq!(
        error(&cut),
        "BININT at byte 2 needs 4 bytes but only 2 remain"
    );
    assert_eq!(
        error(&Pickler::new().op(op::NONE).0),
        "the pickle ends at byte 3 without STOP"
    );
    assert_eq!(error(b""), "the pickle ends at byte 0 without STOP");
    let line = Pickler::new().raw(b"cos").0;
    assert!(error(&line).starts_with("GLOBAL at byte 2: no newline within 1024 bytes"));
    let not_utf8 = Pickler::new()
        .op(op::SHORT_BINUNICODE)
        .raw(&[1, 0xff])
        .stop();
    assert!(error(&not_utf8).starts_with("SHORT_BINUNICODE at byte 2: the string is not UTF-8"));
    assert_eq!(
        error(&[op::PROTO, 6, op::NONE, op::STOP]),
        "PROTO at byte 0: protocol 6; torch writes protocols 2 to 5"
    );
}

#[test]
fn the_stack_and_marks_are_checked() {
    let cases: [(Pickler, &str); 7] = [
        (
            Pickler::new(),
            "STOP at byte 2: needs 1 values on the stack, 0 are above the last MARK",
        ),
        (
            Pickler::new().op(op::NONE).op(op::MARK).op(op::APPEND),
            "APPEND at byte 4: needs 1 values on the stack, 0 are above the last MARK",
        ),
        (
            Pickler::new().op(op::TUPLE),
            "TUPLE at byte 2: no MARK is open",
        ),
        (
            Pickler::new()
                .op(op::EMPTY_DICT)
                .op(op::MARK)
                .op(op::NONE)
                .op(op::SETITEMS),
            "SETITEMS at byte 5: needs key-value pairs, got 1 values",
        ),
        (
            Pickler::new()
                .op(op::EMPTY_DICT)
                .op(op::NONE)
                .op(op::APPEND),
            "APPEND at byte 4: cannot add items to a dict",
        ),
        (
            Pickler::new()
                .op(op::NONE)
                .op(op::NONE)
                .op(op::NONE)
                .op(op::SETITEM),
            "SETITEM at byte 5: cannot set items of None",
        ),
        (
            Pickler::new().op(op::BINGET).raw(&[3]),
            "BINGET at byte 2: memo entry 3 was never set",
        ),
    ];
    for (pickler, message) in cases {
        assert_eq!(error(&pickler.stop()), message);
    }
}

#[test]
fn bounds_are_enforced() {
    let limits = Limits {
        max_stack: 4,
        max_memo: 2,
        max_depth: 3,
        max_ops: 10,
        max_entries: 1,
    };
    let run = |pickler: Pickler| {
        Pickle::parse_with(&pickler.stop(), &limits)
            .unwrap_err()
            .to_string()
    };
    let stack = (0..5).fold(Pickler::new(), |p, _| p.op(op::NONE));
    assert_eq!(
        run(stack),
        "NONE at byte 6: more than 4 values on the stack"
    );
    let memo = (0..3u8).fold(Pickler::new().op(op::NONE), |p, i| {
        p.op(op::BINPUT).raw(&[i])
    });
    assert_eq!(run(memo), "BINPUT at byte 7: more than 2 memo entries");
    // Overwriting an entry takes no new room.
    let rewrite = (0..4).fold(Pickler::new().op(op::NONE), |p, _| {
        p.op(op::BINPUT).raw(&[0])
    });
    assert!(Pickle::parse_with(&rewrite.stop(), &limits).is_ok());
    let marks = (0..4).fold(Pickler::new(), |p, _| p.op(op::MARK));
    assert_eq!(run(marks), "MARK at byte 5: more than 3 nested MARKs");
    let ops = (0..10).fold(Pickler::new().op(op::NONE), |p, _| {
        p.op(op::POP).op(op::NONE)
    });
    assert_eq!(run(ops), "POP at byte 11: more than 10 opcodes");
}

#[test]
fn a_memo_bomb_stays_small() {
    // Each tuple holds the previous one twice: 2^60 leaves if expanded, one
    // object per opcode here.
    let bomb = (0..60).fold(
        Pickler::new().op(op::EMPTY_LIST).op(op::BINPUT).raw(&[0]),
        |p, _| {
            p.op(op::BINGET)
                .raw(&[0])
                .op(op::BINGET)
                .raw(&[0])
                .op(op::TUPLE2)
                .op(op::BINPUT)
                .raw(&[0])
                .op(op::POP)
        },
    );
    let pickle = parse(&bomb.op(op::BINGET).raw(&[0]).stop());
    assert!(pickle.objects.len() <= 61);
    assert!(matches!(object(&pickle, pickle.root), Object::Tuple(items) if items.len() == 2));
}

#[test]
fn globals_are_tags() {
    let pickle = parse(&Pickler::new().global("torch", "bfloat16").stop());
    assert!(matches!(pickle.root, Value::Global(Global::Dtype(d)) if d.name == "bfloat16"));
}
