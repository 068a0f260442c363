//! `ironsafe merge`.

use insta::assert_snapshot;
use ironsafe::{Dtype, TEMP_MARKER};

use crate::common::{Context, bytes_of, metadata, model};

#[test]
fn shard_then_merge_gives_back_the_same_bytes() {
    let context = Context::new();
    context.write(
        "model.safetensors",
        &model(),
        Some(&metadata(&[("format", "pt"), ("note", "x")])),
    );
    for max_size in ["1B", "150B", "5GB"] {
        context
            .command(&[
                "shard",
                "model.safetensors",
                max_size,
                "--max-size",
                max_size,
            ])
            .assert()
            .success();
        let index = format!("{max_size}/model.safetensors.index.json");
        let merged = format!("merged-{max_size}.safetensors");
        context
            .command(&["merge", &index, &merged])
            .assert()
            .success();
        assert_eq!(
            context.read(&merged),
            context.read("model.safetensors"),
            "{max_size}"
        );
    }
    assert_snapshot!(context.run(&[
        "merge",
        "150B/model.safetensors.index.json",
        "merged.safetensors"
    ]));
}

#[test]
fn an_index_that_disagrees_with_its_shards_is_refused() {
    let context = Context::new();
    context.write("model.safetensors", &model(), None);
    context
        .command(&["shard", "model.safetensors", "out", "--max-size", "150B"])
        .assert()
        .success();
    let index_path = context.path("out/model.safetensors.index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    std::fs::write(
        &index_path,
        index.replace(
            "\"lm_head.weight\": \"model-00001",
            "\"lm_head.weight\": \"model-00002",
        ),
    )
    .unwrap();
    assert_snapshot!(
        "mismatch",
        context.run(&[
            "merge",
            "out/model.safetensors.index.json",
            "merged.safetensors"
        ])
    );
    assert!(!context.path("merged.safetensors").exists());
    let leftovers = std::fs::read_dir(context.dir())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(TEMP_MARKER)
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn shards_that_disagree_on_metadata_are_refused() {
    let context = Context::new();
    context.write(
        "out/a.safetensors",
        &[("a", bytes_of(Dtype::U8, &[1], vec![1]))],
        Some(&metadata(&[("format", "pt")])),
    );
    context.write(
        "out/b.safetensors",
        &[("b", bytes_of(Dtype::U8, &[1], vec![2]))],
        Some(&metadata(&[("format", "np")])),
    );
    context.write_raw(
        "out/model.safetensors.index.json",
        br#"{"metadata": {"total_size": 2}, "weight_map": {"a": "a.safetensors", "b": "b.safetensors"}}"#,
    );
    assert_snapshot!(context.run(&[
        "merge",
        "out/model.safetensors.index.json",
        "merged.safetensors"
    ]));
}

#[test]
fn missing_index_and_shards_are_errors() {
    let context = Context::new();
    assert_snapshot!(
        "index",
        context.run(&["merge", "model.safetensors.index.json", "out.safetensors"])
    );
    context.write_raw(
        "model.safetensors.index.json",
        br#"{"metadata": {"total_size": 2}, "weight_map": {"a": "gone.safetensors"}}"#,
    );
    assert_snapshot!(
        "shard",
        context.run(&["merge", "model.safetensors.index.json", "out.safetensors"])
    );
}
