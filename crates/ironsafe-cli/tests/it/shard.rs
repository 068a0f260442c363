//! `ironsafe shard`.

use insta::assert_snapshot;
use ironsafe::{Dtype, SafeTensors};

use crate::common::{Context, bytes_of, metadata, model};

fn listing(context: &Context, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(context.path(dir))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn shards_and_the_index_follow_transformers() {
    let context = Context::with_model();
    assert_snapshot!(
        "run",
        context.run(&["shard", "model.safetensors", "out", "--max-size", "150B"])
    );
    assert_eq!(
        listing(&context, "out"),
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json"
        ]
    );
    assert_snapshot!(
        "index",
        String::from_utf8(context.read("out/model.safetensors.index.json")).unwrap()
    );
    // Every shard carries the source's metadata.
    for shard in 1..=3 {
        let file =
            SafeTensors::open(context.path(&format!("out/model-0000{shard}-of-00003.safetensors")))
                .unwrap();
        assert_eq!(file.metadata(), Some(&metadata(&[("format", "pt")])));
    }
}

#[test]
fn a_tensor_over_the_limit_gets_its_own_shard() {
    let context = Context::new();
    let tensors = [
        ("a", bytes_of(Dtype::U8, &[10], vec![1; 10])),
        ("b", bytes_of(Dtype::U8, &[5000], vec![2; 5000])),
        ("c", bytes_of(Dtype::U8, &[10], vec![3; 10])),
        ("d", bytes_of(Dtype::U8, &[10], vec![4; 10])),
    ];
    context.write("big.safetensors", &tensors, None);
    context
        .command(&[
            "shard",
            "big.safetensors",
            "out",
            "--max-size",
            "1KiB",
            "--quiet",
        ])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    assert_snapshot!(String::from_utf8(context.read("out/model.safetensors.index.json")).unwrap());
}

#[test]
fn everything_fits_by_default() {
    let context = Context::new();
    context.write("model.safetensors", &model(), None);
    context
        .command(&["shard", "model.safetensors", "."])
        .assert()
        .success();
    assert!(context.path("model-00001-of-00001.safetensors").is_file());
}

#[test]
fn bad_sizes_and_inputs_are_errors() {
    let context = Context::new();
    context.write("model.safetensors", &model(), None);
    assert_snapshot!(
        "unit",
        context.run(&["shard", "model.safetensors", "out", "--max-size", "5XB"])
    );
    assert_snapshot!(
        "zero",
        context.run(&["shard", "model.safetensors", "out", "--max-size", "0"])
    );
    assert_snapshot!(
        "missing",
        context.run(&["shard", "missing.safetensors", "out"])
    );
    context.write_raw("out-file", b"");
    assert_snapshot!(
        "outdir_is_a_file",
        context.run(&["shard", "model.safetensors", "out-file"])
    );
}
