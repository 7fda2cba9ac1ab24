//! Errors of model loading: safetensors parsing, architecture inference and `config.json`.

/// Why a model file could not be loaded. Every message names the tensor or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file is {len} bytes, shorter than the 8-byte safetensors header length; the file is truncated or not a safetensors file")]
    TooShort { len: usize },

    #[error("safetensors header length is {header_len} bytes but only {available} bytes follow it; the file is truncated or not a safetensors file")]
    HeaderPastEnd { header_len: u64, available: usize },

    #[error("safetensors header is not valid: {reason}")]
    InvalidHeader { reason: String },

    #[error("tensor {name} occupies data bytes {start}..{end} but the data section has {data_len} bytes; the file is truncated")]
    TensorOutOfRange { name: String, start: usize, end: usize, data_len: usize },

    #[error("tensors {first} and {second} overlap in the data section (bytes {start}..{end}); the file is corrupt")]
    TensorsOverlap { first: String, second: String, start: usize, end: usize },

    #[error("tensor {name} holds {bytes} bytes, but its shape {shape:?} of {dtype} needs {expected}")]
    TensorSizeMismatch { name: String, bytes: usize, shape: Vec<usize>, dtype: String, expected: usize },

    #[error("tensor {name} has dtype {dtype}; supported dtypes are F32, F16 and BF16")]
    UnsupportedDtype { name: String, dtype: String },

    #[error("tensor {name} holds a non-finite value ({value}) at element {index}; the weights are corrupt")]
    NonFinite { name: String, value: f32, index: usize },

    #[error("tensor {name} is missing; expected a timm ViT or DeiT image classifier checkpoint")]
    MissingTensor { name: String },

    #[error("tensor {name} has shape {actual:?}, expected {expected:?}")]
    WrongShape { name: String, actual: Vec<usize>, expected: Vec<usize> },

    #[error("unexpected tensor {name}: {reason}")]
    UnsupportedLayout { name: String, reason: String },

    #[error("invalid architecture: {reason}")]
    InvalidArchitecture { reason: String },

    #[error("invalid config.json: {reason}")]
    InvalidConfig { reason: String },
}

impl ModelError {
    pub(crate) fn wrong_shape(name: &str, actual: &[usize], expected: &[usize]) -> Self {
        ModelError::WrongShape { name: name.to_string(), actual: actual.to_vec(), expected: expected.to_vec() }
    }
}
