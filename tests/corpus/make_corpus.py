#!/usr/bin/env python3
"""The adversarial corpus: small crafted safetensors files, each breaking (or
stretching) one rule of the format, and `expected.json`, what every reader must
make of each.

Usage:
    python make_corpus.py OUTDIR          write every file and expected.json into OUTDIR
    python make_corpus.py --check DIR     regenerate into a temporary directory and exit 1
                                          if anything differs from DIR's copy

Needs Python 3.9+, and the reference `safetensors` that make_fixtures.py (whose
--check this script shares) imports. The committed copies live beside this script; the tests
under crates/ironsafe/tests/corpus.rs, crates/ironsafe-cli/tests/it/corpus.rs and
tests/python/test_corpus.py read them through expected.json.

expected.json maps each file name to:
    variant    the `ironsafe::Error` variant the core parser returns, or "valid";
    message    a substring of that error's message ("" when valid);
    reference  "rejects" or "accepts": what the reference `safetensors` 0.8.0 does
               with the file (ironsafe rejects more on purpose: see README.md);
    about      what the file is.

Every file is tiny. A "huge" case is a header that claims huge sizes, never one that
has them. The largest files are the deep-nesting ones (100,000 `[` must not
overflow a parser's stack).
"""

import json
import os
import struct
import sys

# The --check of the golden fixtures' script serves this one too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../crates/ironsafe/tests/fixtures"))
import make_fixtures  # noqa: E402

U64_MAX = 2**64 - 1
MAX_HEADER = 100_000_000  # the reference's limit, ironsafe's default
ACCEPTS, REJECTS = "accepts", "rejects"

# Dtype code -> bits per element.
BITS = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I16": 16, "F16": 16, "F32": 32, "F64": 64}


def entry(dtype, shape, offsets):
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


def u8(begin, end):
    """A U8 tensor exactly as long as its offsets."""
    return entry("U8", [end - begin], [begin, end])


def dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def file_bytes(header, data=b"", length=None):
    """Length prefix (the header's own length unless given), header, data. A header
    given as bytes is written as it is; anything else as compact JSON."""
    text = header if isinstance(header, bytes) else dumps(header)
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def error(variant, message, reference=REJECTS):
    return {"variant": variant, "message": message, "reference": reference}


def valid():
    return {"variant": "valid", "message": "", "reference": ACCEPTS}


def json_error(detail):
    return error("HeaderJson", "the header is not a valid JSON object: " + detail)


def entry_error(tensor, detail, reference=REJECTS):
    return error("InvalidEntry", "the header entry of tensor `%s` is invalid: %s" % (tensor, detail), reference)


def metadata_error(detail):
    return error("InvalidMetadata", "`__metadata__` must map strings to strings: " + detail)


def overflow(tensor, shape):
    return error("SizeOverflow", "the size of tensor `%s` with shape %s overflows" % (tensor, shape_text(shape)))


def shape_text(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def offsets_error(tensor, begin, end, expected_begin):
    return error(
        "InvalidOffsets",
        "tensor `%s` has data_offsets [%d, %d] but must start at %d" % (tensor, begin, end, expected_begin),
    )


def data_length(expected, actual):
    return error(
        "DataLengthMismatch",
        "the tensors cover %d bytes of data but the data section is %d bytes" % (expected, actual),
    )


# ---------------------------------------------------------------------------------------
# The cases: name -> (bytes, expectation, about). Grouped by the part of the file
# they attack; the name's first word is the group.


def length_prefix_cases():
    def prefix(n, rest=b"{}"):
        return struct.pack("<Q", n) + rest

    return {
        "length-empty-file": (b"", error("HeaderTooSmall", "the file is 0 bytes long"), "no bytes at all"),
        "length-seven-bytes": (
            b"\x02\0\0\0\0\0\0",
            error("HeaderTooSmall", "the file is 7 bytes long, too short"),
            "one byte short of the length prefix",
        ),
        "length-zero": (prefix(0, b""), json_error("EOF while parsing"), "N = 0: an empty header"),
        "length-u64-max": (
            prefix(U64_MAX),
            error("HeaderTooLarge", "the header is %d bytes, over the limit of %d bytes" % (U64_MAX, MAX_HEADER)),
            "N = u64::MAX",
        ),
        "length-2-pow-63": (
            prefix(2**63),
            error("HeaderTooLarge", "the header is %d bytes" % 2**63),
            "N = 2^63: negative as an i64",
        ),
        "length-max-plus-one": (
            prefix(MAX_HEADER + 1),
            error("HeaderTooLarge", "the header is %d bytes, over the limit" % (MAX_HEADER + 1)),
            "N one over the header limit",
        ),
        "length-max-past-the-end": (
            prefix(MAX_HEADER),
            error("InvalidHeaderLength", "the header claims %d bytes but only 2 bytes follow" % MAX_HEADER),
            "N exactly at the limit, but the file is short",
        ),
        "length-one-past-the-end": (
            prefix(9, b"{}      "),
            error("InvalidHeaderLength", "the header claims 9 bytes but only 8 bytes follow"),
            "N one byte longer than what follows",
        ),
        "length-cuts-the-json": (
            file_bytes(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0", length=20),
            json_error("EOF while parsing"),
            "N shorter than the JSON: the rest reads as data",
        ),
    }


def encoding_cases():
    return {
        "utf8-invalid-byte": (
            file_bytes(b'{"a\xff":{}}'),
            error("HeaderNotUtf8", "invalid byte at header offset 3"),
            "0xFF in a key",
        ),
        "utf8-overlong": (
            file_bytes(b'{"\xc0\xaf":{}}'),
            error("HeaderNotUtf8", "invalid byte at header offset 2"),
            "an overlong encoding of '/'",
        ),
        "utf8-surrogate": (
            file_bytes(b'{"\xed\xa0\x80":{}}'),
            error("HeaderNotUtf8", "invalid byte at header offset 2"),
            "a UTF-16 surrogate encoded as UTF-8",
        ),
        "utf8-cut-at-the-end": (
            file_bytes(b"{}    \xe2\x82"),
            error("HeaderNotUtf8", "invalid byte at header offset 6"),
            "a multi-byte character cut by the header length",
        ),
        "utf8-bom": (
            file_bytes(b"\xef\xbb\xbf{}"),
            json_error("expected value at line 1 column 1"),
            "a byte-order mark before the JSON",
        ),
        "utf8-lone-surrogate-escape": (
            file_bytes(b'{"\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
            json_error("unexpected end of hex escape"),
            "an escaped lone surrogate in a name",
        ),
    }


def json_cases():
    tensor_a = b'"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    return {
        "json-truncated": (file_bytes(b'{"a":'), json_error("EOF while parsing a value"), "the JSON stops"),
        "json-unterminated-string": (file_bytes(b'{"a'), json_error("EOF while parsing a string"), ""),
        "json-trailing-garbage": (file_bytes(b"{}x"), json_error("trailing characters"), "a byte after the object"),
        "json-two-objects": (file_bytes(b"{}{}"), json_error("trailing characters"), ""),
        "json-nul-padding": (
            file_bytes(b"{}\0\0\0\0\0\0"),
            json_error("trailing characters"),
            "padded with NUL bytes instead of spaces",
        ),
        "json-formfeed-padding": (
            file_bytes(b"{}\x0c"),
            json_error("trailing characters"),
            "form feed is not JSON whitespace",
        ),
        "json-trailing-comma": (file_bytes(b"{" + tensor_a + b",}", b"\0"), json_error("trailing comma"), ""),
        "json-nan": (file_bytes(b'{"__metadata__":{"k":NaN}}'), json_error("expected value"), "NaN is not JSON"),
        "json-nan-dimension": (
            file_bytes(b'{"a":{"dtype":"U8","shape":[NaN],"data_offsets":[0,1]}}', b"\0"),
            json_error("expected value"),
            "",
        ),
        "json-infinity": (
            file_bytes(b'{"a":{"dtype":"U8","shape":[Infinity],"data_offsets":[0,1]}}', b"\0"),
            json_error("expected value"),
            "",
        ),
        "json-block-comment": (file_bytes(b"{/* x */}"), json_error("key must be a string"), ""),
        "json-line-comment": (file_bytes(b"// x\n{}"), json_error("expected value"), ""),
        "json-single-quotes": (file_bytes(b"{'a':1}"), json_error("key must be a string"), ""),
        "json-control-character": (
            file_bytes(b'{"a\nb":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
            json_error("control character"),
            "a raw newline in a name",
        ),
        "json-bad-escape": (file_bytes(b'{"\\x41":{}}'), json_error("invalid escape"), ""),
        "json-unquoted-key": (file_bytes(b"{a:1}"), json_error("key must be a string"), ""),
    }


def nesting_cases():
    # 100,000 levels: a recursive parser without a depth limit overflows its stack.
    deep = 100_000
    return {
        "nesting-unclosed-arrays": (
            file_bytes(b'{"a":' + b"[" * deep + b"}"),
            error("HeaderJson", "the header is not a valid JSON object"),
            "100,000 unclosed [ as a tensor entry",
        ),
        "nesting-closed-arrays": (
            file_bytes(b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
            entry_error("a", "invalid type: sequence"),
            "10,000 nested arrays, closed, as a tensor entry",
        ),
        "nesting-objects": (
            file_bytes(b'{"a":' + b'{"a":' * 2000 + b"0" + b"}" * 2000 + b"}"),
            entry_error("a", "unknown field `a`"),
            "2,000 nested objects as a tensor entry",
        ),
        "nesting-in-metadata": (
            file_bytes(b'{"__metadata__":{"k":' + b"[" * 5000 + b"]" * 5000 + b"}}"),
            metadata_error("invalid type: sequence, expected a string"),
            "5,000 nested arrays as a metadata value",
        ),
        "nesting-top-level": (
            file_bytes(b"[" * 5000 + b"]" * 5000),
            json_error("invalid type: sequence"),
            "5,000 nested arrays as the whole header",
        ),
    }


def not_an_object_cases():
    return {
        "toplevel-array": (file_bytes(b"[]"), json_error("invalid type: sequence"), ""),
        "toplevel-string": (file_bytes(b'"{}"'), json_error("invalid type: string"), ""),
        "toplevel-number": (file_bytes(b"5"), json_error("invalid type: integer `5`"), ""),
        "toplevel-null": (file_bytes(b"null"), json_error("invalid type: null"), ""),
        "toplevel-true": (file_bytes(b"true"), json_error("invalid type: boolean `true`"), ""),
        "toplevel-whitespace-only": (file_bytes(b"        "), json_error("EOF while parsing"), ""),
    }


def duplicate_cases():
    a = b'"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    return {
        "duplicate-tensor": (
            file_bytes(b"{" + a + b"," + a + b"}", b"\0"),
            error("DuplicateKey", "key `a` appears more than once in the header", ACCEPTS),
            "the same entry twice",
        ),
        "duplicate-tensor-different-entries": (
            file_bytes(b"{" + a + b',"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', b"\xff"),
            error("DuplicateKey", "key `a` appears more than once", ACCEPTS),
            "`a` as U8 and as I8: the reference keeps one (255 or -1) without a word",
        ),
        "duplicate-tensor-escaped": (
            file_bytes(b"{" + a + b',"\\u0061":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
            error("DuplicateKey", "key `a` appears more than once", ACCEPTS),
            "`a` and `\\u0061` are the same name",
        ),
        "duplicate-metadata": (
            file_bytes(b'{"__metadata__":{"k":"1"},"__metadata__":{"k":"2"}}'),
            error("DuplicateKey", "key `__metadata__` appears more than once"),
            "",
        ),
        "duplicate-metadata-escaped": (
            file_bytes(b'{"__metadata__":{"k":"1"},"\\u005f_metadata__":{"k":"2"}}'),
            error("DuplicateKey", "key `__metadata__` appears more than once"),
            "the second `__metadata__` spelled with an escape",
        ),
        "duplicate-metadata-key": (
            file_bytes(b'{"__metadata__":{"k":"1","k":"2"}}'),
            error("DuplicateMetadataKey", "metadata key `k` appears more than once", ACCEPTS),
            "",
        ),
        "duplicate-entry-field": (
            file_bytes(b'{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
            entry_error("a", "duplicate field `dtype`"),
            "`dtype` twice in one entry",
        ),
    }


def metadata_cases():
    def meta(value):
        return b'{"__metadata__":' + value + b"}"

    return {
        "metadata-number-value": (file_bytes(meta(b'{"k":1}')), metadata_error("invalid type: integer `1`"), ""),
        "metadata-object-value": (file_bytes(meta(b'{"k":{}}')), metadata_error("invalid type: map"), ""),
        "metadata-null-value": (file_bytes(meta(b'{"k":null}')), metadata_error("invalid type: null"), ""),
        "metadata-list-value": (file_bytes(meta(b'{"k":["v"]}')), metadata_error("invalid type: sequence"), ""),
        "metadata-bool-value": (file_bytes(meta(b'{"k":true}')), metadata_error("invalid type: boolean"), ""),
        "metadata-list": (file_bytes(meta(b'["k","v"]')), metadata_error("invalid type: sequence"), ""),
        "metadata-string": (file_bytes(meta(b'"k"')), metadata_error("invalid type: string"), ""),
        "metadata-number": (file_bytes(meta(b"0")), metadata_error("invalid type: integer `0`"), ""),
        "metadata-shaped-like-a-tensor": (
            file_bytes(b'{"__metadata__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
            metadata_error("invalid type: sequence, expected a string"),
            "`__metadata__` holding a tensor entry",
        ),
    }


def entry_cases():
    return {
        "entry-number": (file_bytes({"a": 5}), entry_error("a", "invalid type: integer `5`"), ""),
        "entry-string": (file_bytes({"a": "U8"}), entry_error("a", "invalid type: string"), ""),
        "entry-list": (
            file_bytes({"a": ["U8", [1], [0, 1]]}, b"\0"),
            entry_error("a", "invalid type: sequence, expected struct RawEntry", ACCEPTS),
            "the fields as a list: serde's derived structs take one, and the reference does",
        ),
        "entry-null": (file_bytes({"a": None}), entry_error("a", "invalid type: null"), ""),
        "entry-empty-object": (file_bytes({"a": {}}), entry_error("a", "missing field `dtype`"), ""),
        "entry-missing-dtype": (
            file_bytes({"a": {"shape": [1], "data_offsets": [0, 1]}}, b"\0"),
            entry_error("a", "missing field `dtype`"),
            "",
        ),
        "entry-missing-shape": (
            file_bytes({"a": {"dtype": "U8", "data_offsets": [0, 1]}}, b"\0"),
            entry_error("a", "missing field `shape`"),
            "",
        ),
        "entry-missing-offsets": (
            file_bytes({"a": {"dtype": "U8", "shape": [1]}}, b"\0"),
            entry_error("a", "missing field `data_offsets`"),
            "",
        ),
        "entry-extra-field": (
            file_bytes({"a": {**u8(0, 1), "extra": 1}}, b"\0"),
            entry_error("a", "unknown field `extra`", ACCEPTS),
            "the reference ignores unknown fields",
        ),
    }


def dtype_cases():
    return {
        "dtype-unknown": (
            file_bytes({"a": entry("F128", [1], [0, 16])}, b"\0" * 16),
            error("UnknownDtype", "tensor `a` has unknown dtype `F128`"),
            "",
        ),
        "dtype-lowercase": (
            file_bytes({"a": entry("f32", [1], [0, 4])}, b"\0" * 4),
            error("UnknownDtype", "has unknown dtype `f32`"),
            "",
        ),
        "dtype-empty": (file_bytes({"a": entry("", [0], [0, 0])}), error("UnknownDtype", "unknown dtype ``"), ""),
        "dtype-padded": (
            file_bytes({"a": entry(" U8", [1], [0, 1])}, b"\0"),
            error("UnknownDtype", "unknown dtype ` U8`"),
            "",
        ),
        "dtype-number": (
            file_bytes({"a": entry(8, [1], [0, 1])}, b"\0"),
            entry_error("a", "invalid type: integer `8`, expected a string"),
            "",
        ),
        "dtype-null": (file_bytes({"a": entry(None, [1], [0, 1])}, b"\0"), entry_error("a", "invalid type: null"), ""),
        "dtype-list": (file_bytes({"a": entry(["U8"], [1], [0, 1])}, b"\0"), entry_error("a", "invalid type: sequence"), ""),
    }


def shape_cases():
    cases = {
        "shape-negative": (
            file_bytes({"a": entry("U8", [-1], [0, 1])}, b"\0"),
            entry_error("a", "invalid value: integer `-1`, expected usize"),
            "",
        ),
        "shape-float": (
            file_bytes({"a": entry("U8", [1.0], [0, 1])}, b"\0"),
            entry_error("a", "invalid type: floating point `1.0`, expected usize"),
            "",
        ),
        "shape-exponent": (
            file_bytes(b'{"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', b"\0"),
            entry_error("a", "invalid type: floating point `1.0`, expected usize"),
            "1e0 is a float in JSON",
        ),
        "shape-string": (
            file_bytes({"a": entry("U8", ["1"], [0, 1])}, b"\0"),
            entry_error("a", 'invalid type: string "1", expected usize'),
            "",
        ),
        "shape-not-a-list": (file_bytes({"a": entry("U8", 1, [0, 1])}, b"\0"), entry_error("a", "invalid type: integer `1`"), ""),
        "shape-nested": (file_bytes({"a": entry("U8", [[1]], [0, 1])}, b"\0"), entry_error("a", "invalid type: sequence"), ""),
        "shape-past-u64": (
            file_bytes({"a": entry("U8", [2**64], [0, 1])}, b"\0"),
            entry_error("a", "invalid type: floating point"),
            "2^64 parses as a float",
        ),
        "shape-elements-overflow": (
            file_bytes({"a": entry("U8", [2**32, 2**32], [0, 4])}, b"\0" * 4),
            overflow("a", [2**32, 2**32]),
            "the element count overflows",
        ),
        "shape-overflow-before-zero": (
            file_bytes({"a": entry("F64", [U64_MAX, U64_MAX, 0], [0, 0])}),
            overflow("a", [U64_MAX, U64_MAX, 0]),
            "a zero-size shape whose running product overflows first (as the reference)",
        ),
    }
    # For each width, the fewest elements whose size in bits overflows 64 bits.
    for dtype in ("F4", "F6_E2M3", "U8", "I16", "F32", "F64"):
        n = U64_MAX // BITS[dtype] + 1
        cases["shape-bits-overflow-" + dtype.lower()] = (
            file_bytes({"a": entry(dtype, [n], [0, 8])}, b"\0" * 8),
            overflow("a", [n]),
            "%d elements of %d bits overflow" % (n, BITS[dtype]),
        )
    return cases


def offsets_cases():
    f32_2 = {"dtype": "F32", "shape": [2]}
    return {
        "offsets-reversed": (
            file_bytes({"a": entry("U8", [0], [4, 0])}, b"\0" * 4),
            offsets_error("a", 4, 0, 0),
            "",
        ),
        "offsets-overlap": (
            file_bytes({"a": u8(0, 4), "b": u8(2, 6)}, b"\0" * 6),
            offsets_error("b", 2, 6, 4),
            "",
        ),
        "offsets-hole": (file_bytes({"a": u8(0, 4), "b": u8(8, 12)}, b"\0" * 12), offsets_error("b", 8, 12, 4), ""),
        "offsets-not-from-zero": (file_bytes({"a": u8(4, 8)}, b"\0" * 8), offsets_error("a", 4, 8, 0), ""),
        "offsets-same-range-twice": (
            file_bytes({"a": u8(0, 4), "b": u8(0, 4)}, b"\0" * 4),
            offsets_error("b", 0, 4, 4),
            "two tensors on the same bytes",
        ),
        "offsets-empty-tensor-in-a-hole": (
            file_bytes({"a": u8(0, 4), "e": entry("U8", [0], [8, 8])}, b"\0" * 8),
            offsets_error("e", 8, 8, 4),
            "a zero-size tensor past the end of the others",
        ),
        "offsets-wrong-length": (
            file_bytes({"a": {**f32_2, "data_offsets": [0, 4]}}, b"\0" * 4),
            error("TensorSizeMismatch", "tensor `a` (F32, shape [2]) needs 8 bytes but has 4"),
            "",
        ),
        "offsets-past-the-end": (
            file_bytes({"a": u8(0, 1000)}, b"\0" * 4),
            data_length(1000, 4),
            "",
        ),
        "offsets-claim-a-terabyte": (
            file_bytes({"a": u8(0, 2**40)}, b"\0" * 8),
            data_length(2**40, 8),
            "a 1 TiB tensor in a file of a few bytes",
        ),
        "offsets-u64-max": (
            file_bytes({"a": entry("U8", [0], [U64_MAX, U64_MAX])}),
            offsets_error("a", U64_MAX, U64_MAX, 0),
            "",
        ),
        "offsets-trailing-bytes": (
            file_bytes({"a": {**f32_2, "data_offsets": [0, 8]}}, b"\0" * 9),
            data_length(8, 9),
            "one byte after the last tensor",
        ),
        "offsets-trailing-bytes-no-tensors": (file_bytes({}, b"\0"), data_length(0, 1), ""),
        "offsets-truncated-data": (
            file_bytes({"a": {**f32_2, "data_offsets": [0, 8]}}, b"\0" * 7),
            data_length(8, 7),
            "the last byte of the data is missing",
        ),
        "offsets-floats": (
            file_bytes({"a": {**f32_2, "data_offsets": [0.0, 8.0]}}, b"\0" * 8),
            entry_error("a", "invalid type: floating point `0.0`"),
            "",
        ),
        "offsets-strings": (
            file_bytes({"a": {**f32_2, "data_offsets": ["0", "8"]}}, b"\0" * 8),
            entry_error("a", 'invalid type: string "0"'),
            "",
        ),
        "offsets-negative": (
            file_bytes({"a": {**f32_2, "data_offsets": [-8, 0]}}, b"\0" * 8),
            entry_error("a", "invalid value: integer `-8`"),
            "",
        ),
        "offsets-three": (
            file_bytes({"a": {**f32_2, "data_offsets": [0, 8, 8]}}, b"\0" * 8),
            entry_error("a", "invalid length 3"),
            "",
        ),
        "offsets-one": (file_bytes({"a": {**f32_2, "data_offsets": [8]}}, b"\0" * 8), entry_error("a", "invalid length 1"), ""),
        "offsets-object": (
            file_bytes({"a": {**f32_2, "data_offsets": {"begin": 0, "end": 8}}}, b"\0" * 8),
            entry_error("a", "invalid type: map"),
            "",
        ),
    }


def sub_byte_cases():
    return {
        "subbyte-f4-half-byte": (
            file_bytes({"a": entry("F4", [3], [0, 2])}, b"\0" * 2),
            error("MisalignedTensor", "tensor `a` (F4, shape [3]) is 12 bits, not a whole number of bytes"),
            "",
        ),
        "subbyte-f6-e2m3-partial": (
            file_bytes({"a": entry("F6_E2M3", [3], [0, 3])}, b"\0" * 3),
            error("MisalignedTensor", "(F6_E2M3, shape [3]) is 18 bits"),
            "",
        ),
        "subbyte-f6-e3m2-partial": (
            file_bytes({"a": entry("F6_E3M2", [5, 1], [0, 4])}, b"\0" * 4),
            error("MisalignedTensor", "(F6_E3M2, shape [5, 1]) is 30 bits"),
            "",
        ),
        "subbyte-two-half-byte-tensors": (
            file_bytes({"a": entry("F4", [1], [0, 1]), "b": entry("F4", [1], [1, 1])}, b"\0"),
            error("MisalignedTensor", "(F4, shape [1]) is 4 bits"),
            "two nibbles that would share a byte",
        ),
        "subbyte-f4-offsets-too-long": (
            file_bytes({"a": entry("F4", [4], [0, 4])}, b"\0" * 4),
            error("TensorSizeMismatch", "(F4, shape [4]) needs 2 bytes but has 4"),
            "offsets counted in elements, not bytes",
        ),
    }


def valid_cases():
    return {
        "valid-empty-object": (file_bytes(b"{}"), valid(), "the smallest file: N = 2, no padding"),
        "valid-space-padding": (file_bytes(b"{}      "), valid(), "padded with spaces, as writers do"),
        "valid-whitespace-around": (
            file_bytes(b'\t\n {"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}\r\n ', b"ab"),
            valid(),
            "JSON whitespace before and after the object",
        ),
        "valid-zero-size-tensors": (
            file_bytes(
                {
                    "e": entry("F32", [0, 3], [0, 0]),
                    "s": entry("I16", [], [0, 2]),
                    "z": entry("U8", [4, 0], [2, 2]),
                },
                b"\x01\x02",
            ),
            valid(),
            "zero-size tensors sharing offsets, one at the end, and a scalar",
        ),
        "valid-zero-dim-beside-huge": (
            file_bytes({"a": entry("F64", [0, U64_MAX], [0, 0])}),
            valid(),
            "a zero-size tensor with a u64::MAX dimension (the running product is 0 first)",
        ),
        "valid-sub-byte-whole-bytes": (
            file_bytes(
                {"f4": entry("F4", [2, 2], [0, 2]), "f6": entry("F6_E3M2", [4], [2, 5]), "e": entry("F4", [0], [5, 5])},
                b"\x11" * 5,
            ),
            valid(),
            "F4 and F6 tensors that come to whole bytes, and an empty F4 one",
        ),
        "valid-null-metadata": (file_bytes(b'{"__metadata__":null}'), valid(), "null reads as no metadata"),
        "valid-escaped-metadata-key": (
            file_bytes(b'{"\\u005f_metadata__":{"k":"v"}}'),
            valid(),
            "`__metadata__` spelled with an escape is still the metadata",
        ),
        "valid-empty-name": (file_bytes({"": u8(0, 1)}, b"\x07"), valid(), "a tensor named by the empty string"),
        "valid-long-name": (
            file_bytes({"n" * 16384: u8(0, 1)}, b"\x07"),
            valid(),
            "a 16 KiB tensor name",
        ),
        "valid-odd-names": (
            file_bytes({"\x00": u8(0, 1), "__metadata_": u8(1, 2), "é😀\u2028": u8(2, 3)}, b"\x01\x02\x03"),
            valid(),
            "a NUL, a near-miss of `__metadata__` and non-ASCII as names",
        ),
    }


def cases():
    every = {}
    for group in (
        length_prefix_cases,
        encoding_cases,
        json_cases,
        nesting_cases,
        not_an_object_cases,
        duplicate_cases,
        metadata_cases,
        entry_cases,
        dtype_cases,
        shape_cases,
        offsets_cases,
        sub_byte_cases,
        valid_cases,
    ):
        for name, case in group().items():
            assert name not in every, name
            every[name] = case
    return every


# ---------------------------------------------------------------------------------------

MANIFEST = "expected.json"


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    manifest = {}
    for name, (data, expected, about) in sorted(cases().items()):
        fname = name + ".safetensors"
        with open(os.path.join(outdir, fname), "wb") as f:
            f.write(data)
        manifest[fname] = dict(expected, about=about) if about else expected
    with open(os.path.join(outdir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    return sorted(manifest) + [MANIFEST]


def main(argv=None):
    return make_fixtures.main(
        argv,
        doc=__doc__,
        write=generate,
        compare=lambda refdir: make_fixtures.check(refdir, generate, what="files", strict=True),
    )


if __name__ == "__main__":
    sys.exit(main())
