//! Safetensors parsing into named f32 tensors (bytes in, no I/O).
//!
//! The `safetensors` crate does the parsing; a pre-check of the header before it gives
//! errors that name the tensor and the fault (truncation, out-of-range or overlapping
//! offsets), which the crate reports only in general terms.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use super::error::ModelError;

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All tensors of a checkpoint, converted to f32, by name.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: BTreeMap<String, TensorF32>,
}

impl Weights {
    /// Parses a safetensors file. F32, F16 and BF16 tensors are converted to f32; any other
    /// dtype, a non-finite value or a malformed header is an error.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Weights, ModelError> {
        check_header(bytes)?;

        let parsed = SafeTensors::deserialize(bytes)
            .map_err(|err| ModelError::InvalidHeader { reason: err.to_string() })?;

        let mut tensors = BTreeMap::new();
        for (name, view) in parsed.tensors() {
            let data = convert_to_f32(&name, view.dtype(), view.data())?;
            let shape = view.shape().to_vec();
            check_element_count(&name, &shape, view.dtype(), data.len(), view.data().len())?;
            check_finite(&name, &data)?;
            tensors.insert(name, TensorF32 { shape, data });
        }
        Ok(Weights { tensors })
    }

    /// Builds weights from tensors already in memory (tests and tools).
    pub fn from_tensors(tensors: BTreeMap<String, TensorF32>) -> Weights {
        Weights { tensors }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Returns the shape of a tensor, or `MissingTensor`.
    pub fn shape(&self, name: &str) -> Result<&[usize], ModelError> {
        self.tensors
            .get(name)
            .map(|tensor| tensor.shape.as_slice())
            .ok_or_else(|| ModelError::MissingTensor { name: name.to_string() })
    }

    /// Returns the data of a tensor after checking that its shape is `expected`.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<&[f32], ModelError> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor { name: name.to_string() })?;
        if tensor.shape != expected {
            return Err(ModelError::wrong_shape(name, &tensor.shape, expected));
        }
        Ok(&tensor.data)
    }
}

/// Validates the header length, the JSON and every tensor's data offsets.
fn check_header(bytes: &[u8]) -> Result<(), ModelError> {
    if bytes.len() < 8 {
        return Err(ModelError::TooShort { len: bytes.len() });
    }

    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let available = bytes.len() - 8;
    if header_len > available as u64 {
        return Err(ModelError::HeaderPastEnd { header_len, available });
    }

    let header_end = 8 + header_len as usize;
    let header: Value = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|err| ModelError::InvalidHeader { reason: format!("header JSON: {err}") })?;
    let entries = header
        .as_object()
        .ok_or_else(|| ModelError::InvalidHeader { reason: "header JSON is not an object".to_string() })?;

    let data_len = bytes.len() - header_end;
    let mut ranges = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        if name == "__metadata__" {
            continue;
        }
        let (start, end) = data_offsets(name, entry)?;
        if end > data_len {
            return Err(ModelError::TensorOutOfRange { name: name.clone(), start, end, data_len });
        }
        ranges.push((start, end, name.clone()));
    }

    check_no_overlap(&mut ranges)
}

fn data_offsets(name: &str, entry: &Value) -> Result<(usize, usize), ModelError> {
    let invalid = || ModelError::InvalidHeader {
        reason: format!("tensor {name} has no valid data_offsets [start, end]"),
    };
    let offsets = entry.get("data_offsets").and_then(Value::as_array).ok_or_else(invalid)?;
    if offsets.len() != 2 {
        return Err(invalid());
    }
    let start = offsets[0].as_u64().ok_or_else(invalid)? as usize;
    let end = offsets[1].as_u64().ok_or_else(invalid)? as usize;
    if start > end {
        return Err(ModelError::InvalidHeader {
            reason: format!("tensor {name} has data_offsets [{start}, {end}] with start after end"),
        });
    }
    Ok((start, end))
}

fn check_no_overlap(ranges: &mut [(usize, usize, String)]) -> Result<(), ModelError> {
    ranges.sort();
    for pair in ranges.windows(2) {
        let (first, second) = (&pair[0], &pair[1]);
        let empty = first.0 == first.1 || second.0 == second.1;
        if !empty && second.0 < first.1 {
            return Err(ModelError::TensorsOverlap {
                first: first.2.clone(),
                second: second.2.clone(),
                start: second.0,
                end: first.1.min(second.1),
            });
        }
    }
    Ok(())
}

fn convert_to_f32(name: &str, dtype: Dtype, raw: &[u8]) -> Result<Vec<f32>, ModelError> {
    let values = match dtype {
        Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(ModelError::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") });
        }
    };
    Ok(values)
}

fn check_element_count(name: &str, shape: &[usize], dtype: Dtype, count: usize, bytes: usize) -> Result<(), ModelError> {
    let expected_count: usize = shape.iter().product();
    if expected_count != count || bytes != count * dtype.size() {
        return Err(ModelError::TensorSizeMismatch {
            name: name.to_string(),
            bytes,
            shape: shape.to_vec(),
            dtype: format!("{dtype:?}"),
            expected: expected_count * dtype.size(),
        });
    }
    Ok(())
}

fn check_finite(name: &str, data: &[f32]) -> Result<(), ModelError> {
    match data.iter().position(|value| !value.is_finite()) {
        Some(index) => Err(ModelError::NonFinite { name: name.to_string(), value: data[index], index }),
        None => Ok(()),
    }
}
