//! Helpers shared by the integration tests.

/// A file made of a length prefix, `json` as the header (unpadded) and
/// `data_len` zero bytes of data.
pub(crate) fn raw_file(json: &str, data_len: usize) -> Vec<u8> {
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(json.as_bytes());
    file.resize(file.len() + data_len, 0);
    file
}
