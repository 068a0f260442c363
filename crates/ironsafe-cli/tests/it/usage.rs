//! The command line itself: help, version, usage errors.

use insta::assert_snapshot;

use crate::common::Context;

#[test]
fn help_lists_the_commands() {
    assert_snapshot!(Context::new().run(&["--help"]));
}

#[test]
fn each_command_has_help() {
    let context = Context::new();
    for command in ["inspect", "verify", "diff", "shard", "merge", "convert"] {
        assert_snapshot!(command, context.run(&[command, "--help"]));
    }
}

#[test]
fn version() {
    let version = Context::new().run(&["--version"]);
    assert_eq!(
        version,
        format!(
            "exit_code: 0\n----- stdout -----\nironsafe {}\n----- stderr -----\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let context = Context::new();
    assert_snapshot!("no_command", context.run(&[]));
    assert_snapshot!("no_file", context.run(&["inspect"]));
    assert_snapshot!("unknown", context.run(&["inspekt", "x"]));
    assert_snapshot!(
        "json_and_tree",
        context.run(&["inspect", "--json", "--tree", "x"])
    );
}
