//! `ironsafe convert` on what is not a checkpoint, or is a hostile one. Real
//! `torch.save` checkpoints are converted in the Python suite
//! (`tests/python/test_cli.py`), where torch can make them.

use insta::assert_snapshot;

use crate::common::Context;

#[test]
fn a_pickle_that_would_run_code_is_refused_and_nothing_is_written() {
    let context = Context::new();
    // A legacy checkpoint (magic number, protocol, system info, then the
    // object) whose object is `os.system("true")`: torch.load would run it.
    let evil: &[&[u8]] = &[
        b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.",
        b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_versionq\x01M\xe9\x03",
        b"X\r\x00\x00\x00little_endianq\x02\x88X\n\x00\x00\x00type_sizesq\x03",
        b"}q\x04(X\x05\x00\x00\x00shortq\x05K\x02X\x03\x00\x00\x00intq\x06K\x04",
        b"X\x04\x00\x00\x00longq\x07K\x04uu.",
        b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
    ];
    context.write_raw("evil.pt", &evil.concat());
    assert_snapshot!(context.run(&["convert", "evil.pt", "out.safetensors"]));
    assert!(!context.path("out.safetensors").exists());
}

#[test]
fn files_that_are_not_checkpoints_name_the_problem() {
    let context = Context::with_model();
    assert_snapshot!(
        "missing",
        context.run(&["convert", "missing.bin", "out.safetensors"])
    );
    assert_snapshot!(
        "safetensors_input",
        context.run(&["convert", "model.safetensors", "out.safetensors"])
    );
    assert!(!context.path("out.safetensors").exists());
}

#[test]
fn an_index_naming_a_missing_shard_fails_before_writing_an_index() {
    let context = Context::new();
    context.write_raw(
        "pytorch_model.bin.index.json",
        br#"{"metadata": {"total_size": 8}, "weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}"#,
    );
    assert_snapshot!(context.run(&["convert", "pytorch_model.bin.index.json", "out"]));
    assert!(!context.path("out/model.safetensors.index.json").exists());
}
