//! `ironsafe diff`.

use insta::assert_snapshot;
use ironsafe::Dtype;

use crate::common::{Context, bits16, bytes_of, f32s, i64s, metadata, model};

#[test]
fn the_same_file_has_no_differences() {
    let context = Context::new();
    context.write(
        "a.safetensors",
        &model(),
        Some(&metadata(&[("format", "pt")])),
    );
    context.write(
        "b.safetensors",
        &model(),
        Some(&metadata(&[("format", "pt")])),
    );
    assert_snapshot!(context.run(&["diff", "a.safetensors", "b.safetensors"]));
}

#[test]
fn names_dtypes_shapes_values_and_metadata() {
    let context = Context::new();
    context.write(
        "a.safetensors",
        &[
            ("gone", f32s(&[1], &[1.0])),
            ("retyped", f32s(&[2], &[1.0, 2.0])),
            ("reshaped", f32s(&[2, 2], &[1.0; 4])),
            ("values", f32s(&[4], &[1.0, 2.0, 3.0, 4.0])),
            ("half", bits16(Dtype::F16, &[2], &[0x3c00, 0x4000])),
            ("bfloat", bits16(Dtype::BF16, &[2], &[0x3f80, 0x4000])),
            ("ints", i64s(&[3], &[1, 2, 3])),
            ("packed", bytes_of(Dtype::F4, &[4], vec![0x12, 0x34])),
            ("same", f32s(&[1], &[5.0])),
        ],
        Some(&metadata(&[
            ("format", "pt"),
            ("removed", "x"),
            ("changed", "1"),
        ])),
    );
    context.write(
        "b.safetensors",
        &[
            ("new", f32s(&[1], &[1.0])),
            ("retyped", bits16(Dtype::F16, &[2], &[0x3c00, 0x4000])),
            ("reshaped", f32s(&[4], &[1.0; 4])),
            ("values", f32s(&[4], &[1.0, 2.5, 3.0, f32::NAN])),
            ("half", bits16(Dtype::F16, &[2], &[0x3c01, 0x4000])),
            ("bfloat", bits16(Dtype::BF16, &[2], &[0x3f80, 0x4080])),
            ("ints", i64s(&[3], &[1, 2, 30])),
            ("packed", bytes_of(Dtype::F4, &[4], vec![0x12, 0x35])),
            ("same", f32s(&[1], &[5.0])),
        ],
        Some(&metadata(&[
            ("format", "pt"),
            ("added", "y"),
            ("changed", "2"),
        ])),
    );
    assert_snapshot!(
        "all_exact",
        context.run(&["diff", "a.safetensors", "b.safetensors"])
    );
    assert_snapshot!(
        "header_only",
        context.run(&["diff", "--header-only", "a.safetensors", "b.safetensors"])
    );
}

#[test]
fn tolerances_accept_close_values() {
    let context = Context::new();
    context.write(
        "a.safetensors",
        &[
            ("w", f32s(&[3], &[1.0, 100.0, -2.0])),
            ("i", i64s(&[1], &[10])),
        ],
        None,
    );
    context.write(
        "b.safetensors",
        &[
            ("w", f32s(&[3], &[1.001, 100.5, -2.0])),
            ("i", i64s(&[1], &[11])),
        ],
        None,
    );
    assert_snapshot!(
        "close_exact",
        context.run(&["diff", "a.safetensors", "b.safetensors"])
    );
    assert_snapshot!(
        "atol",
        context.run(&["diff", "--atol", "0.01", "a.safetensors", "b.safetensors"])
    );
    let close = context.run(&["diff", "--atol", "1", "a.safetensors", "b.safetensors"]);
    assert!(close.starts_with("exit_code: 0"), "{close}");
    let relative = context.run(&["diff", "--rtol", "0.1", "a.safetensors", "b.safetensors"]);
    assert!(relative.starts_with("exit_code: 0"), "{relative}");
}

#[test]
fn errors_and_bad_arguments() {
    let context = Context::new();
    context.write("a.safetensors", &model(), None);
    assert_snapshot!(
        "missing",
        context.run(&["diff", "a.safetensors", "missing.safetensors"])
    );
    assert_snapshot!(
        "negative",
        context.run(&["diff", "--atol=-1", "a.safetensors", "a.safetensors"])
    );
    assert_snapshot!(
        "conflict",
        context.run(&[
            "diff",
            "--header-only",
            "--rtol",
            "1",
            "a.safetensors",
            "a.safetensors"
        ])
    );
}
