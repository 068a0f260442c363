//! `ironsafe verify` over the adversarial corpus (`tests/corpus` at the
//! repository root, see `make_corpus.py` there): exit 1 with a line naming
//! the file and the expected problem, or 0 and `ok` for a valid file. Each
//! run is capped in address space and time, so that a file that makes the
//! command allocate what its header claims, or loop, fails the test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

/// Far more than checking any corpus file needs, far less than the sizes
/// the headers claim (up to exabytes).
const ADDRESS_SPACE: u64 = 1 << 30;

/// Only a hang comes near this.
const TIMEOUT: Duration = Duration::from_secs(60);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

/// `(file, variant, message)` of every case in `expected.json`.
fn cases() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.json"))
        .expect("tests/corpus/expected.json is there");
    let manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("expected.json is a JSON object");
    manifest
        .into_iter()
        .map(|(file, case)| {
            let field = |key: &str| case[key].as_str().expect("a string field").to_owned();
            (file, field("variant"), field("message"))
        })
        .collect()
}

/// The command, run under an address-space cap by `prlimit` (util-linux)
/// where it is installed.
fn capped_command() -> Command {
    let binary = env!("CARGO_BIN_EXE_ironsafe");
    let has_prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_prlimit {
        eprintln!("note: no prlimit here; the corpus runs without an address-space cap");
        return Command::new(binary);
    }
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg("--")
        .arg(binary);
    command
}

/// What `verify` did with one file, if not what the case expects.
fn failure(file: &str, variant: &str, message: &str) -> Option<String> {
    let output = capped_command()
        .args(["verify", file])
        .current_dir(corpus_dir())
        .timeout(TIMEOUT)
        .output()
        .expect("the command runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let prefix = format!("{file}: ");
    let lines: Vec<&str> = stdout.lines().collect();
    let as_expected = if variant == "valid" {
        output.status.code() == Some(0)
            && lines.len() == 1
            && lines[0].starts_with(&format!("{prefix}ok, "))
    } else {
        output.status.code() == Some(1)
            && lines.iter().all(|line| line.starts_with(&prefix))
            && lines.iter().any(|line| line.contains(message))
    };
    (!as_expected || !stderr.is_empty()).then(|| {
        format!(
            "{file}: expected {variant} `{message}`, got {:?}\n{stdout}{stderr}",
            output.status
        )
    })
}

#[test]
fn verify_reports_each_corpus_file_as_expected() {
    let cases = cases();
    assert!(cases.len() >= 60, "the corpus holds {} cases", cases.len());
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(file, variant, message)| failure(file, variant, message))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
