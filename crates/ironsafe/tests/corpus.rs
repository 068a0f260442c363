//! The adversarial corpus (`tests/corpus` at the repository root, made by
//! `make_corpus.py` there): every file read every way the crate reads a file
//! must give the error variant and message `expected.json` names, or read
//! whole when it names "valid", and never panic or hang.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ironsafe::{Error, Header, ReadOptions, SafeTensors};

/// Long enough for the slowest machine to parse ~120 tiny files; only a
/// hang (a parser looping on some input) comes near it.
const TIMEOUT: Duration = Duration::from_secs(120);

struct Case {
    file: String,
    variant: String,
    message: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn manifest() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.json"))
        .expect("tests/corpus/expected.json is there");
    let manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("expected.json is a JSON object");
    let field = |case: &serde_json::Value, key: &str| {
        case[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} of {case} is a string"))
            .to_owned()
    };
    manifest
        .iter()
        .map(|(file, case)| Case {
            file: file.clone(),
            variant: field(case, "variant"),
            message: field(case, "message"),
        })
        .collect()
}

/// The variant's name, as `Debug` starts with it: `HeaderTooSmall { .. }`.
fn variant(err: &Error) -> String {
    format!("{:?}", err.problem())
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// Whether one way of reading the file did what the case expects; a
/// description of what it did instead if not.
fn judge(case: &Case, way: &str, outcome: &Result<(), Error>) -> Option<String> {
    let wrong = match (outcome, case.variant.as_str()) {
        (Ok(()), "valid") => false,
        (Err(err), expected) => {
            variant(err) != expected || !err.problem().to_string().contains(&case.message)
        }
        (Ok(()), _) => true,
    };
    let got = match outcome {
        Ok(()) => "valid".to_owned(),
        Err(err) => format!("{} `{}`", variant(err), err.problem()),
    };
    wrong.then(|| {
        format!(
            "{} via {way}: expected {} `{}`, got {got}",
            case.file, case.variant, case.message
        )
    })
}

/// Reads every tensor of a parsed file, whole, so that a valid case is
/// checked past its header.
fn read_all<B: AsRef<[u8]>>(file: &SafeTensors<B>) -> Result<(), Error> {
    let mut total = 0;
    for (name, view) in file.tensors() {
        assert_eq!(file.tensor(name)?.data(), view.data());
        total += view.data().len();
    }
    assert_eq!(total, file.header().data_len());
    Ok(())
}

/// Every way of reading one file, each judged.
fn failures(case: &Case) -> Vec<String> {
    let path = corpus_dir().join(&case.file);
    let bytes = std::fs::read(&path).expect("the corpus file is there");
    let options = ReadOptions::default();
    let file = File::open(&path).expect("the corpus file opens");
    let ways: [(&str, Result<(), Error>); 5] = [
        (
            "SafeTensors::deserialize",
            SafeTensors::deserialize(&bytes[..]).and_then(|file| read_all(&file)),
        ),
        (
            "SafeTensors::open",
            SafeTensors::open(&path).and_then(|file| read_all(&file)),
        ),
        (
            "Header::read_from(File)",
            Header::read_from(&file, &options).map(drop),
        ),
        (
            "Header::read_from(bytes)",
            Header::read_from(&bytes[..], &options).map(drop),
        ),
        // Collecting every problem must find the expected one among them.
        (
            "Header::validate_from",
            Header::validate_from(&file, &options)
                .map(drop)
                .map_err(|problems| {
                    let found = problems.iter().position(|problem| {
                        variant(problem) == case.variant
                            && problem.to_string().contains(&case.message)
                    });
                    let mut problems = problems;
                    problems.swap_remove(found.unwrap_or(0))
                }),
        ),
    ];
    ways.into_iter()
        .filter_map(|(way, outcome)| judge(case, way, &outcome))
        .collect()
}

#[test]
fn every_corpus_file_gives_its_expected_outcome_every_way() {
    let cases = manifest();
    assert!(cases.len() >= 60, "the corpus holds {} cases", cases.len());
    let valid = cases.iter().filter(|case| case.variant == "valid").count();
    assert!(
        valid >= 5 && valid < cases.len(),
        "{valid} valid of {}",
        cases.len()
    );
    // On a thread of its own, so that a hang fails the test instead of
    // stalling the run.
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let failed: Vec<String> = cases.iter().flat_map(failures).collect();
        done.send(failed).expect("the test waits for the result");
    });
    match finished.recv_timeout(TIMEOUT) {
        Ok(failed) => assert!(failed.is_empty(), "{}", failed.join("\n")),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The worker panicked: re-raise its panic here.
            std::panic::resume_unwind(worker.join().expect_err("the worker panicked"));
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the corpus took over {TIMEOUT:?}"),
    }
}

/// Each file in the directory is in the manifest, so none goes untested.
#[test]
fn the_manifest_names_every_corpus_file() {
    let listed: Vec<String> = manifest().into_iter().map(|case| case.file).collect();
    for entry in std::fs::read_dir(corpus_dir()).expect("the corpus directory is there") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".safetensors") {
            assert!(listed.contains(&name), "{name} is not in expected.json");
        }
    }
}
