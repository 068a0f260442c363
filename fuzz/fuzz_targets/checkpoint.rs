//! Arbitrary bytes as a checkpoint file (zip or legacy): reading it and
//! producing every tensor's bytes must succeed or fail cleanly, never panic.

#![no_main]

use ironsafe::View;
use ironsafe_pickle::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(checkpoint) = Checkpoint::from_buffer(data, None) {
        for tensor in checkpoint.tensors() {
            let view = checkpoint.data(tensor);
            assert_eq!(view.data().len(), view.data_len());
        }
    }
});
