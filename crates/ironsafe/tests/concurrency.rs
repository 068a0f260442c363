//! Threads at once writing one path (the last writer wins; readers always
//! map one complete version) and their own files, while others open, read
//! and slice them. Every value read is checked.

use std::collections::BTreeSet;
use std::path::Path;

use ironsafe::{
    Dtype, Header, Metadata, ReadOptions, SafeTensors, SliceIndex, TensorView, WriteOptions,
    serialize_to_file,
};

const WRITERS: u8 = 4;
const READERS: u8 = 4;
const ROUNDS: u8 = 30;

/// Version `k` of a file: every byte of every tensor is `k`, so a file that
/// mixed two versions, or was cut short, cannot pass for one.
fn write_version(path: &Path, k: u8) {
    let (a, b) = (vec![k; 64 * 40 * 4], vec![k; 3000]);
    let tensors = [
        ("a", TensorView::new(Dtype::F32, &[64, 40], &a).unwrap()),
        ("b", TensorView::new(Dtype::U8, &[3, 1000], &b).unwrap()),
    ];
    let metadata: Metadata = [("version".to_owned(), k.to_string())].into();
    serialize_to_file(tensors, Some(&metadata), path, &WriteOptions::default()).unwrap();
}

/// Maps the file, checks that it is one whole version (metadata, every
/// tensor, and slices agree), and returns which.
fn read_version(path: &Path) -> u8 {
    let file = SafeTensors::open(path).unwrap();
    let k: u8 = file.metadata().unwrap()["version"].parse().unwrap();
    assert_eq!(file.names().collect::<Vec<_>>(), ["a", "b"]);
    for (name, view) in file.tensors() {
        assert!(
            view.data().iter().all(|&byte| byte == k),
            "`{name}` mixes versions"
        );
    }
    let column = file
        .tensor("b")
        .unwrap()
        .slice(&[SliceIndex::All, SliceIndex::Select(999)])
        .unwrap();
    assert_eq!(column.to_vec(), [k; 3]);
    let rows = file
        .tensor("a")
        .unwrap()
        .slice(&[SliceIndex::Range {
            start: 1,
            stop: 64,
            step: 9,
        }])
        .unwrap();
    assert_eq!(rows.to_vec(), vec![k; 7 * 40 * 4]);
    // The header read on its own from the file agrees too.
    let header =
        Header::read_from(&std::fs::File::open(path).unwrap(), &ReadOptions::default()).unwrap();
    assert_eq!(header.len(), 2);
    k
}

#[test]
fn threads_write_one_path_and_their_own_while_others_read() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.safetensors");
    write_version(&shared, 0);
    let own = |thread: u8| dir.path().join(format!("own-{thread}.safetensors"));
    // Writer w writes versions 1 + w * ROUNDS + round: each once.
    let written: BTreeSet<u8> = (0..=WRITERS * ROUNDS).collect();

    let last_written = std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            write_version(&own(writer), 200 + writer);
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let own = own(writer);
                let shared = &shared;
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        write_version(shared, 1 + writer * ROUNDS + round);
                        write_version(&own, 200 + round % 50);
                        assert_eq!(read_version(&own), 200 + round % 50);
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|reader| {
                let (shared, written, other) = (&shared, &written, own(reader % WRITERS));
                scope.spawn(move || {
                    for _ in 0..ROUNDS {
                        assert!(written.contains(&read_version(shared)));
                        assert!(read_version(&other) >= 200);
                    }
                })
            })
            .collect();
        for thread in writers.into_iter().chain(readers) {
            thread.join().expect("no thread panicked");
        }
        read_version(&shared)
    });
    // The last writer won with a complete version that some writer wrote.
    assert!(last_written != 0 && written.contains(&last_written));
}
