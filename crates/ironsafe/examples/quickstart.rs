//! Write a small model to a safetensors file, then read it back: open it
//! (memory-mapped, every rule checked), list the tensors, and load one slice.
//!
//! `cargo run -p ironsafe --example quickstart [PATH]` (default: model.safetensors)

use ironsafe::{
    Dtype, Metadata, SafeTensors, SliceIndex, TensorView, WriteOptions, serialize_to_file,
};

fn main() -> Result<(), ironsafe::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "model.safetensors".to_owned());

    // An embedding of 4 tokens x 3 dimensions, and a bias, as little-endian f32.
    let embedding: Vec<u8> = (0..12u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    let bias: Vec<u8> = [0.5f32, -0.5, 1.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let tensors = [
        (
            "embedding",
            TensorView::new(Dtype::F32, &[4, 3], &embedding)?,
        ),
        ("bias", TensorView::new(Dtype::F32, &[3], &bias)?),
    ];
    let metadata = Metadata::from([("format".to_owned(), "pt".to_owned())]);
    serialize_to_file(tensors, Some(&metadata), &path, &WriteOptions::default())?;
    println!(
        "wrote {path} ({} bytes)",
        std::fs::metadata(&path).map_or(0, |m| m.len())
    );

    let file = SafeTensors::open(&path)?;
    println!("metadata: {:?}", file.metadata());
    for (name, view) in file.tensors_by_name() {
        println!(
            "{name}: {} {:?} ({} bytes)",
            view.dtype(),
            view.shape(),
            view.data().len()
        );
    }

    // Rows 1 and 3 of the embedding, every dimension: copied straight from the map.
    let rows = file.tensor("embedding")?.slice(&[SliceIndex::Range {
        start: 1,
        stop: 4,
        step: 2,
    }])?;
    let shape = rows.shape().to_vec();
    let values: Vec<f32> = rows
        .to_vec()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    println!("embedding[1:4:2] {shape:?} = {values:?}");
    Ok(())
}
