//! Every rule of the format, broken once: the parser must return the specific
//! error, with its context, and never panic.

mod common;

use common::raw_file;
use ironsafe::{ByteSource, Dtype, Error, Header, ReadOptions, SafeTensors};

fn parse(file: &[u8]) -> Result<SafeTensors<&[u8]>, Error> {
    SafeTensors::deserialize(file)
}

fn rejected(file: &[u8]) -> Error {
    let err = parse(file).expect_err("the file must be rejected");
    // Reading through a byte source must reject it the same way.
    let via_source = Header::read_from(file, &ReadOptions::default())
        .expect_err("the header read from a source must be rejected too");
    assert_eq!(err.to_string(), via_source.to_string());
    // Collecting every problem finds this one first.
    let all = Header::validate_from(file, &ReadOptions::default())
        .expect_err("validation must find the problem");
    assert_eq!(all[0].to_string(), err.to_string());
    err
}

const F32_2: &str = r#""dtype":"F32","shape":[2]"#;

#[test]
fn too_short_for_the_length_prefix() {
    for len in 0..8 {
        let err = rejected(&vec![0; len]);
        assert!(
            matches!(err, Error::HeaderTooSmall { len: l } if l == len as u64),
            "{err}"
        );
    }
    assert_eq!(
        rejected(b"\x02\0\0").to_string(),
        "the file is 3 bytes long, too short for the 8-byte header length"
    );
}

#[test]
fn header_length_over_the_limit() {
    let mut file = 100_000_001u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"{}");
    let err = rejected(&file);
    assert_eq!(
        err.to_string(),
        "the header is 100000001 bytes, over the limit of 100000000 bytes"
    );
    let err = rejected(&u64::MAX.to_le_bytes());
    assert!(
        matches!(err, Error::HeaderTooLarge { len: u64::MAX, .. }),
        "{err}"
    );
}

#[test]
fn header_limit_is_configurable() {
    let file = raw_file(&format!("{{{}}}", " ".repeat(64)), 0);
    let strict = ReadOptions::default().max_header_size(16);
    let err = SafeTensors::deserialize_with(&file[..], &strict).unwrap_err();
    assert!(
        matches!(err, Error::HeaderTooLarge { len: 66, limit: 16 }),
        "{err}"
    );
    let lenient = ReadOptions::default().max_header_size(66);
    assert!(
        SafeTensors::deserialize_with(&file[..], &lenient)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn header_length_past_the_end() {
    let mut file = raw_file("{}", 0);
    file[0] = 3;
    let err = rejected(&file);
    assert_eq!(
        err.to_string(),
        "the header claims 3 bytes but only 2 bytes follow the 8-byte header length"
    );
}

#[test]
fn header_not_utf8() {
    let mut file = raw_file(r#"{"a\xff":1}"#, 0);
    file[11] = 0xff;
    let err = rejected(&file);
    assert!(
        matches!(err, Error::HeaderNotUtf8 { valid_up_to: 3 }),
        "{err}"
    );
}

#[test]
fn header_not_a_json_object() {
    for json in [
        "",
        "[]",
        "1",
        "{",
        "{}x",
        "{}{}",
        "\u{feff}{}",
        "{\"a\":}",
        "{\"a\" 1}",
    ] {
        let err = rejected(&raw_file(json, 0));
        assert!(matches!(err, Error::HeaderJson(_)), "{json:?}: {err}");
        assert!(
            err.to_string()
                .starts_with("the header is not a valid JSON object: ")
        );
    }
    let err = rejected(&raw_file("[]", 0));
    assert!(err.to_string().contains("expected a JSON object"), "{err}");
}

#[test]
fn json_whitespace_around_the_object_is_allowed() {
    for json in ["{}", " {}", "\n\t\r {} ", "{}        "] {
        assert!(parse(&raw_file(json, 0)).unwrap().is_empty(), "{json:?}");
    }
}

#[test]
fn metadata_must_map_strings_to_strings() {
    for json in [
        r#"{"__metadata__":{"a":1}}"#,
        r#"{"__metadata__":{"a":null}}"#,
        r#"{"__metadata__":{"a":["x"]}}"#,
        r#"{"__metadata__":"x"}"#,
        r#"{"__metadata__":[]}"#,
    ] {
        let err = rejected(&raw_file(json, 0));
        assert!(matches!(err, Error::InvalidMetadata(_)), "{json}: {err}");
        assert!(
            err.to_string()
                .starts_with("`__metadata__` must map strings to strings: ")
        );
    }
}

#[test]
fn metadata_null_or_empty_is_accepted() {
    // The reference reads `null` as "no metadata"; so do we.
    let file = raw_file(r#"{"__metadata__":null}"#, 0);
    assert_eq!(parse(&file).unwrap().metadata(), None);
    let file = raw_file(r#"{"__metadata__":{}}"#, 0);
    assert_eq!(
        parse(&file)
            .unwrap()
            .metadata()
            .map(ironsafe::Metadata::len),
        Some(0)
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    let json = format!(
        r#"{{"t":{{{F32_2},"data_offsets":[0,8]}},"t":{{{F32_2},"data_offsets":[8,16]}}}}"#
    );
    let err = rejected(&raw_file(&json, 16));
    assert!(
        matches!(err, Error::DuplicateKey(ref name) if name == "t"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "key `t` appears more than once in the header"
    );

    let json = r#"{"__metadata__":{},"__metadata__":{}}"#;
    let err = rejected(&raw_file(json, 0));
    assert!(
        matches!(err, Error::DuplicateKey(ref name) if name == "__metadata__"),
        "{err}"
    );

    let json = r#"{"__metadata__":{"k":"1","k":"2"}}"#;
    let err = rejected(&raw_file(json, 0));
    assert_eq!(err.to_string(), "metadata key `k` appears more than once");

    // Spelled differently, the same key once decoded.
    let json = format!(
        r#"{{"t":{{{F32_2},"data_offsets":[0,8]}},"\u0074":{{{F32_2},"data_offsets":[8,16]}}}}"#
    );
    assert!(matches!(
        rejected(&raw_file(&json, 16)),
        Error::DuplicateKey(_)
    ));
}

#[test]
fn entries_hold_exactly_dtype_shape_and_offsets() {
    let cases = [
        (
            r#"{"dtype":"F32","shape":[2]}"#,
            "missing field `data_offsets`",
        ),
        (
            r#"{"shape":[2],"data_offsets":[0,8]}"#,
            "missing field `dtype`",
        ),
        (
            r#"{"dtype":"F32","data_offsets":[0,8]}"#,
            "missing field `shape`",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}"#,
            "unknown field `x`",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}"#,
            "duplicate field `shape`",
        ),
        (
            r#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#,
            "invalid value: integer `-2`",
        ),
        (
            r#"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#,
            "invalid type: floating point",
        ),
        (
            r#"{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}"#,
            "invalid type: floating point",
        ),
        (
            r#"{"dtype":"F32","shape":null,"data_offsets":[0,8]}"#,
            "invalid type: null",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}"#,
            "invalid length 3, expected [begin, end]",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"data_offsets":[0]}"#,
            "invalid length 1, expected [begin, end]",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}"#,
            "invalid value: integer `-1`",
        ),
        (
            r#"{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}"#,
            "invalid type: string",
        ),
        (
            r#"{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#,
            "invalid type: integer `32`",
        ),
        ("5", "invalid type: integer `5`"),
        // serde's derived structs take a list of the fields too; the
        // format's entries are objects.
        (r#"["F32",[2],[0,8]]"#, "invalid type: sequence"),
        (r#" [ "F32", [2], [0, 8] ]"#, "invalid type: sequence"),
    ];
    for (entry, message) in cases {
        let err = rejected(&raw_file(&format!(r#"{{"w":{entry}}}"#), 8));
        assert!(
            matches!(err, Error::InvalidEntry { ref tensor, .. } if tensor == "w"),
            "{entry}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("the header entry of tensor `w` is invalid: "),
            "{text}"
        );
        assert!(
            text.contains(message),
            "{entry}: `{text}` lacks `{message}`"
        );
    }
}

#[test]
fn unknown_dtypes_name_the_tensor() {
    for dtype in ["F128", "f32", "float32", "", "Q4"] {
        let json = format!(r#"{{"w":{{"dtype":"{dtype}","shape":[],"data_offsets":[0,0]}}}}"#);
        let err = rejected(&raw_file(&json, 0));
        assert_eq!(
            err.to_string(),
            format!("tensor `w` has unknown dtype `{dtype}`")
        );
    }
}

#[test]
fn escaped_dtype_names_decode() {
    let json = r#"{"w":{"dtype":"F\u0033\u0032","shape":[],"data_offsets":[0,4]}}"#;
    assert_eq!(
        parse(&raw_file(json, 4))
            .unwrap()
            .tensor("w")
            .unwrap()
            .dtype(),
        Dtype::F32
    );
}

#[test]
fn overflowing_sizes_are_errors_not_wraps() {
    for shape in [
        "[4294967296,4294967296,2]",
        "[4611686018427387904]",
        "[18446744073709551615,2]",
    ] {
        let json = format!(r#"{{"big":{{"dtype":"F32","shape":{shape},"data_offsets":[0,0]}}}}"#);
        let err = rejected(&raw_file(&json, 0));
        assert!(
            matches!(err, Error::SizeOverflow { ref tensor, .. } if tensor == "big"),
            "{shape}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with("the size of tensor `big` with shape ["),
            "{err}"
        );
    }
    // A zero anywhere makes the product zero, however big the rest.
    let json = r#"{"e":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}"#;
    assert_eq!(
        parse(&raw_file(json, 0))
            .unwrap()
            .tensor("e")
            .unwrap()
            .data(),
        b""
    );
}

#[test]
fn sub_byte_tensors_must_fill_whole_bytes() {
    for (dtype, shape) in [
        ("F4", "[3]"),
        ("F4", "[]"),
        ("F6_E2M3", "[3]"),
        ("F6_E3M2", "[2,3]"),
    ] {
        let json = format!(r#"{{"q":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,2]}}}}"#);
        let err = rejected(&raw_file(&json, 2));
        assert!(
            matches!(err, Error::MisalignedTensor { ref tensor, .. } if tensor == "q"),
            "{err}"
        );
        assert!(
            err.to_string().contains("not a whole number of bytes"),
            "{err}"
        );
    }
    let json = r#"{"q":{"dtype":"F6_E2M3","shape":[2,2],"data_offsets":[0,3]}}"#;
    assert_eq!(
        parse(&raw_file(json, 3))
            .unwrap()
            .tensor("q")
            .unwrap()
            .data()
            .len(),
        3
    );
}

fn two_f32(a: (usize, usize), b: (usize, usize)) -> String {
    format!(
        r#"{{"a":{{{F32_2},"data_offsets":[{},{}]}},"b":{{{F32_2},"data_offsets":[{},{}]}}}}"#,
        a.0, a.1, b.0, b.1
    )
}

#[test]
fn offsets_must_tile_the_data_from_zero() {
    let cases = [
        ((8, 16), (16, 24), "a", 8, 0), // the first tensor does not start at 0
        ((0, 8), (12, 20), "b", 12, 8), // a hole
        ((0, 8), (4, 12), "b", 4, 8),   // an overlap
        ((0, 8), (8, 8), "b", 8, 8),    // b ends where it starts (size checked below)
        ((0, 8), (0, 8), "b", 0, 8),    // the same range twice
        ((0, 8), (16, 8), "b", 16, 8),  // reversed and with a hole
    ];
    for (a, b, tensor, begin, expected_begin) in cases {
        let err = rejected(&raw_file(&two_f32(a, b), 24));
        match err {
            Error::InvalidOffsets {
                tensor: ref t,
                begin: got,
                expected_begin: e,
                ..
            } => {
                assert_eq!(
                    (t.as_str(), got, e),
                    (tensor, begin, expected_begin),
                    "{a:?} {b:?}"
                );
            }
            Error::TensorSizeMismatch { ref tensor, .. } => {
                assert_eq!((tensor.as_str(), b), ("b", (8, 8)));
            }
            other => panic!("{a:?} {b:?}: unexpected {other}"),
        }
    }
    let err = rejected(&raw_file(&two_f32((0, 8), (8, 4)), 8));
    assert_eq!(
        err.to_string(),
        "tensor `b` has data_offsets [8, 4] but must start at 8 and end at or after its start"
    );
}

#[test]
fn ranges_must_match_dtype_and_shape() {
    let err = rejected(&raw_file(&two_f32((0, 8), (8, 12)), 12));
    assert_eq!(
        err.to_string(),
        "tensor `b` (F32, shape [2]) needs 8 bytes but has 4"
    );
}

#[test]
fn the_data_section_must_be_covered_exactly() {
    let json = two_f32((0, 8), (8, 16));
    assert!(parse(&raw_file(&json, 16)).is_ok());
    let err = rejected(&raw_file(&json, 17));
    assert_eq!(
        err.to_string(),
        "the tensors cover 16 bytes of data but the data section is 17 bytes"
    );
    let err = rejected(&raw_file(&json, 15));
    assert!(
        matches!(
            err,
            Error::DataLengthMismatch {
                expected: 16,
                actual: 15
            }
        ),
        "{err}"
    );
    // Trailing bytes after an empty header, too.
    assert!(matches!(
        rejected(&raw_file("{}", 1)),
        Error::DataLengthMismatch { .. }
    ));
}

#[test]
fn zero_sized_tensors_and_scalars_are_valid() {
    let json = r#"{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},
                   "z1":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},
                   "z2":{"dtype":"U8","shape":[2,0],"data_offsets":[8,8]}}"#;
    let file = raw_file(json, 8);
    let file = parse(&file).unwrap();
    assert_eq!(file.tensor("s").unwrap().shape(), &[] as &[usize]);
    assert_eq!(file.tensor("z2").unwrap().data(), b"");
    let order: Vec<&str> = file.tensors().map(|(name, _)| name).collect();
    assert_eq!(order, ["s", "z1", "z2"]);
}

#[test]
fn claimed_sizes_never_size_an_allocation() {
    // Billions of elements claimed, none present: an error, at once.
    let json = r#"{"x":{"dtype":"U8","shape":[4000000000],"data_offsets":[0,4000000000]}}"#;
    let err = rejected(&raw_file(json, 0));
    assert!(
        matches!(
            err,
            Error::DataLengthMismatch {
                expected: 4_000_000_000,
                actual: 0
            }
        ),
        "{err}"
    );
    // A header length near the limit with nothing behind it.
    let mut file = 99_999_999u64.to_le_bytes().to_vec();
    file.push(b'{');
    assert!(matches!(rejected(&file), Error::InvalidHeaderLength { .. }));
}

#[test]
fn deep_json_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        r#"{{"__metadata__":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(
        rejected(&raw_file(&deep, 0)),
        Error::InvalidMetadata(_)
    ));
    let deep = "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000);
    assert!(matches!(
        rejected(&raw_file(&deep, 0)),
        Error::InvalidEntry { .. }
    ));
    let deep = format!(r#"{{"w":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        rejected(&raw_file(&deep, 0)),
        Error::InvalidEntry { .. }
    ));
}

#[test]
fn a_source_that_fails_reports_io() {
    struct Broken;
    impl ByteSource for Broken {
        fn size(&self) -> std::io::Result<u64> {
            Ok(64)
        }
        fn read_exact_at(&self, _: u64, _: &mut [u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let err = Header::read_from(&Broken, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Stream(_)));
    assert_eq!(err.to_string(), "disk on fire");
}

/// The problems `validate_from` finds, as messages.
fn all_problems(file: &[u8]) -> Vec<String> {
    Header::validate_from(file, &ReadOptions::default())
        .expect_err("the file must be rejected")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn validation_reports_every_problem_it_can_read_past() {
    let json = format!(
        r#"{{"__metadata__":{{"k":"1","k":"2"}},"a":{{{F32_2},"data_offsets":[0,8]}},"a":{{{F32_2},"data_offsets":[0,8]}},"b":{{"dtype":"Q4","shape":[1],"data_offsets":[8,9]}},"c":{{{F32_2},"data_offsets":[12,20]}},"d":{{"dtype":"F32","shape":[3],"data_offsets":[20,24]}}}}"#
    );
    assert_eq!(
        all_problems(&raw_file(&json, 30)),
        [
            "metadata key `k` appears more than once",
            "key `a` appears more than once in the header",
            "tensor `b` has unknown dtype `Q4`",
            "tensor `c` has data_offsets [12, 20] but must start at 8 and end at or after its start",
            "tensor `d` (F32, shape [3]) needs 12 bytes but has 4",
        ]
    );
    // With every entry readable, the data length is judged too.
    let json = format!(r#"{{"c":{{{F32_2},"data_offsets":[4,12]}}}}"#);
    assert_eq!(
        all_problems(&raw_file(&json, 14)),
        [
            "tensor `c` has data_offsets [4, 12] but must start at 0 and end at or after its start",
            "the tensors cover 12 bytes of data but the data section is 14 bytes",
        ]
    );
}

#[test]
fn validation_of_an_unreadable_header_gives_one_problem() {
    assert_eq!(
        all_problems(&raw_file("{not json", 0)),
        ["the header is not a valid JSON object: key must be a string at line 1 column 2"]
    );
    assert_eq!(
        all_problems(b"\x01\0"),
        ["the file is 2 bytes long, too short for the 8-byte header length"]
    );
}

#[test]
fn validation_accepts_a_valid_file() {
    let json = format!(r#"{{"a":{{{F32_2},"data_offsets":[0,8]}}}}"#);
    let file = raw_file(&json, 8);
    let header = Header::validate_from(&file[..], &ReadOptions::default()).unwrap();
    assert_eq!(
        header,
        Header::parse(&file, &ReadOptions::default()).unwrap()
    );
}
