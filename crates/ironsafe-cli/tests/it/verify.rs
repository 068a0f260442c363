//! `ironsafe verify`.

use insta::assert_snapshot;
use ironsafe::Dtype;

use crate::common::{Context, bits16, f32s, metadata, model, raw_file};

const F32_2: &str = r#""dtype":"F32","shape":[2]"#;

#[test]
fn a_valid_file_is_ok() {
    let context = Context::new();
    context.write("model.safetensors", &model(), None);
    assert_snapshot!(context.run(&["verify", "model.safetensors"]));
}

/// Every check of the format, broken once, each in a file of its own.
#[test]
fn each_problem_is_named_with_its_file() {
    let context = Context::new();
    let mut too_large = 100_000_001u64.to_le_bytes().to_vec();
    too_large.extend_from_slice(b"{}");
    let mut past_the_end = 64u64.to_le_bytes().to_vec();
    past_the_end.extend_from_slice(b"{}");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("short.safetensors", b"\x01\x02".to_vec()),
        ("huge-header.safetensors", too_large),
        ("past-the-end.safetensors", past_the_end),
        (
            "not-utf8.safetensors",
            raw_file("{\"\u{00e9}\":1}", 0)
                .into_iter()
                .map(|b| if b == 0xc3 { 0xff } else { b })
                .collect(),
        ),
        ("not-json.safetensors", raw_file("{nope", 0)),
        (
            "bad-entry.safetensors",
            raw_file(
                &format!(r#"{{"a":{{{F32_2},"data_offsets":[0,8],"extra":1}}}}"#),
                8,
            ),
        ),
        (
            "bad-metadata.safetensors",
            raw_file(r#"{"__metadata__":{"k":1}}"#, 0),
        ),
        (
            "duplicate.safetensors",
            raw_file(
                &format!(
                    r#"{{"a":{{{F32_2},"data_offsets":[0,8]}},"a":{{{F32_2},"data_offsets":[0,8]}}}}"#
                ),
                8,
            ),
        ),
        (
            "duplicate-metadata.safetensors",
            raw_file(r#"{"__metadata__":{"k":"1","k":"2"}}"#, 0),
        ),
        (
            "unknown-dtype.safetensors",
            raw_file(
                r#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#,
                1,
            ),
        ),
        (
            "misaligned.safetensors",
            raw_file(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                2,
            ),
        ),
        (
            "overflow.safetensors",
            raw_file(
                r#"{"a":{"dtype":"U64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#,
                0,
            ),
        ),
        (
            "hole.safetensors",
            raw_file(&format!(r#"{{"a":{{{F32_2},"data_offsets":[4,12]}}}}"#), 12),
        ),
        (
            "wrong-size.safetensors",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                8,
            ),
        ),
        (
            "trailing.safetensors",
            raw_file(&format!(r#"{{"a":{{{F32_2},"data_offsets":[0,8]}}}}"#), 9),
        ),
        (
            "truncated.safetensors",
            raw_file(&format!(r#"{{"a":{{{F32_2},"data_offsets":[0,8]}}}}"#), 7),
        ),
    ];
    let mut args = vec!["verify"];
    for (name, bytes) in &files {
        context.write_raw(name, bytes);
        args.push(name);
    }
    assert_snapshot!(context.run(&args));
}

#[test]
fn every_problem_of_one_file_is_listed() {
    let context = Context::new();
    let json = format!(
        r#"{{"__metadata__":{{"k":"1","k":"2"}},"b":{{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}},"c":{{{F32_2},"data_offsets":[4,12]}},"d":{{"dtype":"F32","shape":[3],"data_offsets":[12,16]}}}}"#
    );
    context.write_raw("broken.safetensors", &raw_file(&json, 20));
    assert_snapshot!(context.run(&["verify", "broken.safetensors"]));
}

#[test]
fn values_are_scanned_for_nan_and_infinity() {
    let context = Context::new();
    context.write(
        "nan.safetensors",
        &[
            ("clean", f32s(&[2], &[1.0, 2.0])),
            (
                "f32",
                f32s(&[4], &[f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY]),
            ),
            ("f16", bits16(Dtype::F16, &[3], &[0x7e00, 0x7c00, 0x3c00])),
            ("bf16", bits16(Dtype::BF16, &[2], &[0x7fc0, 0x3f80])),
            (
                "e4m3",
                crate::common::bytes_of(Dtype::F8_E4M3, &[2], vec![0x7f, 0x7e]),
            ),
            ("ints", crate::common::i64s(&[1], &[-1])),
        ],
        None,
    );
    context.write(
        "model.safetensors",
        &model(),
        Some(&metadata(&[("format", "pt")])),
    );
    assert_snapshot!(context.run(&["verify", "--values", "nan.safetensors", "model.safetensors"]));
    // Without --values the data is not judged.
    let headers_only = context.run(&["verify", "nan.safetensors"]);
    assert!(headers_only.starts_with("exit_code: 0"), "{headers_only}");
}

#[test]
fn an_unreadable_file_is_an_error_and_the_others_are_still_checked() {
    let context = Context::new();
    context.write("model.safetensors", &model(), None);
    context.write_raw("broken.safetensors", b"\x01");
    assert_snapshot!(context.run(&[
        "verify",
        "missing.safetensors",
        "broken.safetensors",
        "model.safetensors"
    ]));
}

#[test]
fn an_index_is_checked_with_all_its_shards() {
    let context = Context::with_model();
    context
        .command(&[
            "shard",
            "model.safetensors",
            "sharded",
            "--max-size",
            "150B",
        ])
        .assert()
        .success();
    assert_snapshot!(
        "valid",
        context.run(&["verify", "--values", "sharded/model.safetensors.index.json"])
    );

    let index_path = context.path("sharded/model.safetensors.index.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    let wrong = index
        .replace("\"total_size\": 334", "\"total_size\": 300")
        .replace(
            "\"lm_head.weight\": \"model-00001-of-00003.safetensors\"",
            "\"lm_head.weight\": \"model-00002-of-00003.safetensors\"",
        )
        .replace(
            "    \"position_ids\": \"model-00003-of-00003.safetensors\"\n",
            "    \"zzz\": \"model-00003-of-00003.safetensors\"\n",
        );
    assert_ne!(wrong, index);
    std::fs::write(&index_path, wrong).unwrap();
    assert_snapshot!(
        "mismatched",
        context.run(&["verify", "sharded/model.safetensors.index.json"])
    );

    std::fs::write(&index_path, "{\"weight_map\": 3}").unwrap();
    assert_snapshot!(
        "not_an_index",
        context.run(&["verify", "sharded/model.safetensors.index.json"])
    );
}
