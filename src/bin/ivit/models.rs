//! Reading model files from disk for the subcommands.

use std::path::Path;

use anyhow::{Context, Result};
use ivit::{FloatVit, PreprocessConfig};

/// Loads a float model, with the timm `config.json` beside it when there is one.
pub fn load_float(path: &Path) -> Result<(FloatVit, PreprocessConfig)> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read model file {}; pass --model PATH, or put the model.safetensors of the Hugging Face \
             repository timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k at that path",
            path.display()
        )
    })?;

    let config_path = path.with_file_name("config.json");
    let config_json = match std::fs::read(&config_path) {
        Ok(json) => {
            log::info!("using {}", config_path.display());
            Some(json)
        }
        Err(_) => None,
    };

    ivit::model::load_float(&bytes, config_json.as_deref())
        .with_context(|| format!("cannot load model {}", path.display()))
}

/// Returns the file name of a model path, for display.
pub fn display_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Loads an integer model (`.ivit`).
pub fn load_int(path: &Path) -> Result<ivit::model::integer::IntVit> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read integer model {}; make one with `ivit quantize`", path.display()))?;
    ivit::model::load_int(&bytes).with_context(|| format!("cannot load integer model {}", path.display()))
}
