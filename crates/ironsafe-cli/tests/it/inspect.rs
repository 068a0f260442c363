//! `ironsafe inspect`.

use std::io::Read;
use std::process::Stdio;

use insta::assert_snapshot;
use ironsafe::Dtype;

use crate::common::{Context, bytes_of, raw_file};

#[test]
fn table_totals_and_metadata() {
    let context = Context::with_model();
    assert_snapshot!(context.run(&["inspect", "model.safetensors"]));
}

#[test]
fn tree_groups_by_name_prefix() {
    let context = Context::with_model();
    assert_snapshot!(context.run(&["inspect", "--tree", "model.safetensors"]));
}

#[test]
fn tree_sorted_by_size() {
    let context = Context::with_model();
    assert_snapshot!(context.run(&["inspect", "--tree", "--sort", "size", "model.safetensors"]));
}

#[test]
fn json_report() {
    let context = Context::with_model();
    assert_snapshot!(context.run(&["inspect", "--json", "--sort", "offset", "model.safetensors"]));
}

#[test]
fn sorted_by_offset_and_by_size() {
    let context = Context::with_model();
    assert_snapshot!(
        "offset",
        context.run(&["inspect", "--sort", "offset", "model.safetensors"])
    );
    assert_snapshot!(
        "size",
        context.run(&["inspect", "--sort", "size", "model.safetensors"])
    );
}

#[test]
fn filters_select_tensors() {
    let context = Context::with_model();
    assert_snapshot!(context.run(&[
        "inspect",
        "--filter",
        "model.layers.?.*",
        "--filter",
        "lm_head.*",
        "model.safetensors"
    ]));
    let none = context.run(&["inspect", "--filter", "nothing*", "model.safetensors"]);
    assert!(none.contains("0 of 7 tensors"), "{none}");
}

#[test]
fn bad_filter_is_a_usage_error() {
    let context = Context::with_model();
    assert_snapshot!(context.run(&["inspect", "--filter", "layers.[0-2", "model.safetensors"]));
}

#[test]
fn several_files_and_no_metadata() {
    let context = Context::with_model();
    context.write(
        "small.safetensors",
        &[("x", bytes_of(Dtype::U8, &[3], vec![1, 2, 3]))],
        None,
    );
    assert_snapshot!(context.run(&[
        "inspect",
        "small.safetensors",
        "model.safetensors",
        "--filter",
        "x"
    ]));
}

#[test]
fn an_index_is_inspected_as_the_whole_model() {
    let context = Context::with_model();
    let sharded = context.run(&[
        "shard",
        "model.safetensors",
        "sharded",
        "--max-size",
        "100B",
    ]);
    assert!(sharded.starts_with("exit_code: 0"), "{sharded}");
    assert_snapshot!(
        "table",
        context.run(&["inspect", "sharded/model.safetensors.index.json"])
    );
    assert_snapshot!(
        "tree",
        context.run(&[
            "inspect",
            "--tree",
            "--sort",
            "offset",
            "sharded/model.safetensors.index.json"
        ])
    );
    assert_snapshot!(
        "json",
        context.run(&[
            "inspect",
            "--json",
            "--filter",
            "lm_head.*",
            "sharded/model.safetensors.index.json"
        ])
    );
}

#[test]
fn unreadable_inputs_are_errors_that_name_the_file() {
    let context = Context::new();
    context.write_raw("broken.safetensors", &raw_file("{\"a\":1}", 0));
    assert_snapshot!("missing", context.run(&["inspect", "missing.safetensors"]));
    assert_snapshot!("broken", context.run(&["inspect", "broken.safetensors"]));
    assert_snapshot!("missing_shard", {
        context.write_raw(
            "model.safetensors.index.json",
            br#"{"metadata": {"total_size": 4}, "weight_map": {"a": "gone.safetensors"}}"#,
        );
        context.run(&["inspect", "model.safetensors.index.json"])
    });
}

#[test]
fn the_header_is_all_that_is_read() {
    // Data that is not there cannot be read: a file that claims data beyond
    // its end is rejected by its length, not by reading.
    let context = Context::with_model();
    let listing = context.run(&["inspect", "model.safetensors"]);
    let mut truncated = context.read("model.safetensors");
    truncated.truncate(truncated.len() - 1);
    context.write_raw("truncated.safetensors", &truncated);
    let rejected = context.run(&["inspect", "truncated.safetensors"]);
    assert!(listing.starts_with("exit_code: 0"), "{listing}");
    assert!(rejected.contains("data section is 333 bytes"), "{rejected}");
}

#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    let context = Context::new();
    // Far more output than a pipe buffers, so that writing must fail.
    let names: Vec<String> = (0..4000)
        .map(|i| format!("layer.{i}.a_rather_long_tensor_name"))
        .collect();
    let tensors: Vec<_> = names
        .iter()
        .map(|name| (name.as_str(), bytes_of(Dtype::U8, &[1], vec![0])))
        .collect();
    context.write("big.safetensors", &tensors, None);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ironsafe"))
        .args(["inspect", "big.safetensors"])
        .current_dir(context.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, as `head -1` would, then go away.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(first.starts_with(b"big.safetensors: header"));
}
