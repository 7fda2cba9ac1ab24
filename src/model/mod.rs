//! ViT models: checkpoint parsing, architecture inference, the float path, quantization
//! and the integer-only path.

pub mod balance;
pub mod calibrate;
pub mod config;
pub mod diagnostic;
pub mod error;
pub mod float;
pub mod format;
pub mod integer;
pub mod quantize;
mod row_blocks;
pub mod weights;

pub use config::{Interpolation, PreprocessConfig, VitConfig};
pub use error::ModelError;
pub use float::FloatVit;
pub use weights::{TensorF32, Weights};

/// Parses a timm `config.json` (its bytes), if one was given.
pub fn parse_config_json(config_json: Option<&[u8]>) -> Result<Option<serde_json::Value>, ModelError> {
    config_json
        .map(|bytes| {
            serde_json::from_slice(bytes).map_err(|err| ModelError::InvalidConfig { reason: err.to_string() })
        })
        .transpose()
}

/// Loads a float model and its preprocessing settings from safetensors bytes and an
/// optional timm `config.json`.
pub fn load_float(safetensors: &[u8], config_json: Option<&[u8]>) -> Result<(FloatVit, PreprocessConfig), ModelError> {
    let json = parse_config_json(config_json)?;
    let weights = Weights::from_safetensors(safetensors)?;
    let config = VitConfig::infer(&weights, json.as_ref())?;
    let preprocess = PreprocessConfig::from_config_json(json.as_ref())?;
    if preprocess.input_size != config.image_size {
        return Err(ModelError::InvalidConfig {
            reason: format!(
                "input_size {} differs from the {} pixels implied by pos_embed and the patch size",
                preprocess.input_size, config.image_size
            ),
        });
    }
    Ok((FloatVit::new(&weights, config)?, preprocess))
}

/// Loads an integer model from `.ivit` bytes, checks that its tensors fit its
/// architecture, so the forward pass cannot index out of bounds, and packs its weights
/// for the GEMM kernel of the build.
pub fn load_int(bytes: &[u8]) -> Result<integer::IntVit, format::FormatError> {
    let mut model: integer::IntVit = format::decode(bytes)?;
    model.validate().map_err(|reason| format::FormatError::InvalidPayload { reason })?;
    model.pack_weights();
    Ok(model)
}
