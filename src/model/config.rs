//! Architecture inferred from tensor shapes, and preprocessing settings from timm's
//! `config.json`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ModelError;
use super::weights::Weights;

/// Architecture of a timm ViT or DeiT image classifier with a class token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Input side in pixels (square input).
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Embedding width `D`.
    pub embed_dim: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads; `embed_dim` is a multiple of it.
    pub num_heads: usize,
    /// Hidden width of each MLP.
    pub mlp_dim: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Tokens per image: the class token plus one per patch.
    pub num_tokens: usize,
}

impl VitConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Length of one patch vector: 3 channels x patch x patch.
    pub fn patch_dim(&self) -> usize {
        3 * self.patch_size * self.patch_size
    }

    /// Infers the architecture from tensor shapes. `num_heads` comes from `config_json`
    /// when it states it, else from a known timm model name there, else `embed_dim / 64`
    /// (true for ViT-Ti/S/B and DeiT-T/S/B).
    pub fn infer(weights: &Weights, config_json: Option<&Value>) -> Result<VitConfig, ModelError> {
        reject_unsupported_tokens(weights)?;

        let proj = weights.shape("patch_embed.proj.weight")?;
        if proj.len() != 4 || proj[1] != 3 || proj[2] != proj[3] {
            return Err(ModelError::UnsupportedLayout {
                name: "patch_embed.proj.weight".into(),
                reason: format!("shape {proj:?} is not [embed_dim, 3, patch, patch]"),
            });
        }
        let (embed_dim, patch_size) = (proj[0], proj[2]);

        let pos = weights.shape("pos_embed")?;
        if pos.len() != 3 || pos[0] != 1 || pos[2] != embed_dim {
            return Err(ModelError::wrong_shape("pos_embed", pos, &[1, pos.get(1).copied().unwrap_or(0), embed_dim]));
        }
        let num_tokens = pos[1];
        let grid = integer_sqrt(num_tokens.saturating_sub(1));
        if grid * grid + 1 != num_tokens {
            return Err(ModelError::UnsupportedLayout {
                name: "pos_embed".into(),
                reason: format!("{num_tokens} tokens is not a class token plus a square grid of patches"),
            });
        }

        let depth = count_blocks(weights);
        if depth == 0 {
            return Err(ModelError::MissingTensor { name: "blocks.0.norm1.weight".into() });
        }

        let fc1 = weights.shape("blocks.0.mlp.fc1.weight")?;
        let head = weights.shape("head.weight")?;
        let num_heads = num_heads_from(config_json, embed_dim)?;

        let config = VitConfig {
            image_size: grid * patch_size,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            mlp_dim: fc1[0],
            num_classes: head[0],
            num_tokens,
        };
        check_all_tensors_expected(weights, &config)?;
        Ok(config)
    }

    /// Lists every tensor name and shape that a checkpoint of this architecture contains.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (d, m) = (self.embed_dim, self.mlp_dim);
        let mut tensors = vec![
            ("cls_token".to_string(), vec![1, 1, d]),
            ("pos_embed".to_string(), vec![1, self.num_tokens, d]),
            ("patch_embed.proj.weight".to_string(), vec![d, 3, self.patch_size, self.patch_size]),
            ("patch_embed.proj.bias".to_string(), vec![d]),
        ];
        for i in 0..self.depth {
            let p = format!("blocks.{i}");
            tensors.extend([
                (format!("{p}.norm1.weight"), vec![d]),
                (format!("{p}.norm1.bias"), vec![d]),
                (format!("{p}.attn.qkv.weight"), vec![3 * d, d]),
                (format!("{p}.attn.qkv.bias"), vec![3 * d]),
                (format!("{p}.attn.proj.weight"), vec![d, d]),
                (format!("{p}.attn.proj.bias"), vec![d]),
                (format!("{p}.norm2.weight"), vec![d]),
                (format!("{p}.norm2.bias"), vec![d]),
                (format!("{p}.mlp.fc1.weight"), vec![m, d]),
                (format!("{p}.mlp.fc1.bias"), vec![m]),
                (format!("{p}.mlp.fc2.weight"), vec![d, m]),
                (format!("{p}.mlp.fc2.bias"), vec![d]),
            ]);
        }
        tensors.extend([
            ("norm.weight".to_string(), vec![d]),
            ("norm.bias".to_string(), vec![d]),
            ("head.weight".to_string(), vec![self.num_classes, d]),
            ("head.bias".to_string(), vec![self.num_classes]),
        ]);
        tensors
    }
}

fn reject_unsupported_tokens(weights: &Weights) -> Result<(), ModelError> {
    let unsupported = [
        ("dist_token", "a distilled DeiT (distillation token) is not supported; use a DeiT without distillation"),
        ("reg_token", "register tokens are not supported"),
        ("fc_norm.weight", "average pooling (fc_norm) is not supported; the model must classify from the class token"),
    ];
    for (name, reason) in unsupported {
        if weights.contains(name) {
            return Err(ModelError::UnsupportedLayout { name: name.into(), reason: reason.into() });
        }
    }
    if !weights.contains("cls_token") {
        return Err(ModelError::MissingTensor { name: "cls_token".into() });
    }
    Ok(())
}

/// Checks that the checkpoint contains exactly the expected tensors with the expected shapes.
fn check_all_tensors_expected(weights: &Weights, config: &VitConfig) -> Result<(), ModelError> {
    if config.embed_dim % config.num_heads != 0 {
        return Err(ModelError::InvalidArchitecture {
            reason: format!("embedding width {} is not a multiple of {} heads", config.embed_dim, config.num_heads),
        });
    }

    let expected = config.expected_tensors();
    for (name, shape) in &expected {
        weights.get(name, shape)?;
    }

    let known: std::collections::HashSet<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    if let Some(extra) = weights.names().find(|name| !known.contains(name)) {
        return Err(ModelError::UnsupportedLayout {
            name: extra.to_string(),
            reason: "not part of a timm ViT/DeiT classifier with a class token".into(),
        });
    }
    Ok(())
}

fn count_blocks(weights: &Weights) -> usize {
    (0..).take_while(|i| weights.contains(&format!("blocks.{i}.norm1.weight"))).count()
}

fn integer_sqrt(n: usize) -> usize {
    let mut root = (n as f64).sqrt() as usize;
    while root * root > n {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= n {
        root += 1;
    }
    root
}

fn num_heads_from(config_json: Option<&Value>, embed_dim: usize) -> Result<usize, ModelError> {
    let stated = config_json.and_then(|json| {
        json.get("num_heads")
            .or_else(|| json.get("model_args").and_then(|args| args.get("num_heads")))
            .and_then(Value::as_u64)
    });
    if let Some(heads) = stated {
        if heads == 0 {
            return Err(ModelError::InvalidConfig { reason: "num_heads is 0".into() });
        }
        return Ok(heads as usize);
    }

    let architecture = config_json.and_then(|json| json.get("architecture")).and_then(Value::as_str);
    if let Some(heads) = architecture.and_then(heads_of_timm_name) {
        return Ok(heads);
    }
    Ok((embed_dim / 64).max(1))
}

/// Heads of timm's ViT and DeiT presets by model name.
fn heads_of_timm_name(architecture: &str) -> Option<usize> {
    let presets = [("_tiny_", 3), ("_small_", 6), ("_base_", 12), ("_large_", 16), ("_huge_", 16)];
    presets.iter().find(|(size, _)| architecture.contains(size)).map(|&(_, heads)| heads)
}

/// Resampling filter of the resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Bicubic,
    Bilinear,
}

/// timm's evaluation transform: resize the shorter side to floor(input_size / crop_pct),
/// centre-crop `input_size`, scale to [0, 1], normalize with `mean` and `std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Side of the square crop the model sees.
    pub input_size: usize,
    pub interpolation: Interpolation,
    pub crop_pct: f32,
    /// Per-channel mean, RGB order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, RGB order.
    pub std: [f32; 3],
}

impl Default for PreprocessConfig {
    /// The settings of timm's `vit_tiny_patch16_224.augreg_in21k_ft_in1k`.
    fn default() -> Self {
        PreprocessConfig {
            input_size: 224,
            interpolation: Interpolation::Bicubic,
            crop_pct: 0.9,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }
}

impl PreprocessConfig {
    /// Side the shorter image side is resized to: floor(input_size / crop_pct).
    pub fn resize_size(&self) -> usize {
        (self.input_size as f64 / self.crop_pct as f64).floor() as usize
    }

    /// Reads `pretrained_cfg` from a timm `config.json`; absent fields keep the defaults.
    pub fn from_config_json(json: Option<&Value>) -> Result<PreprocessConfig, ModelError> {
        let mut config = PreprocessConfig::default();
        let Some(cfg) = json.and_then(|json| json.get("pretrained_cfg")) else {
            return Ok(config);
        };

        if let Some(size) = cfg.get("input_size") {
            config.input_size = parse_input_size(size)?;
        }
        if let Some(interpolation) = cfg.get("interpolation").and_then(Value::as_str) {
            config.interpolation = match interpolation {
                "bicubic" => Interpolation::Bicubic,
                "bilinear" => Interpolation::Bilinear,
                other => {
                    return Err(ModelError::InvalidConfig {
                        reason: format!("interpolation {other:?} is not supported; use bicubic or bilinear"),
                    })
                }
            };
        }
        if let Some(crop_pct) = cfg.get("crop_pct").and_then(Value::as_f64) {
            if !(crop_pct > 0.0 && crop_pct <= 1.0) {
                return Err(ModelError::InvalidConfig { reason: format!("crop_pct {crop_pct} is not in (0, 1]") });
            }
            config.crop_pct = crop_pct as f32;
        }
        if let Some(mean) = cfg.get("mean") {
            config.mean = parse_triple("mean", mean)?;
        }
        if let Some(std) = cfg.get("std") {
            config.std = parse_triple("std", std)?;
            if config.std.iter().any(|&s| s <= 0.0) {
                return Err(ModelError::InvalidConfig { reason: format!("std {:?} has a value <= 0", config.std) });
            }
        }
        Ok(config)
    }
}

fn parse_input_size(value: &Value) -> Result<usize, ModelError> {
    let dims: Option<Vec<u64>> = value.as_array().map(|items| items.iter().filter_map(Value::as_u64).collect());
    match dims.as_deref() {
        Some([3, h, w]) if h == w && *h > 0 => Ok(*h as usize),
        _ => Err(ModelError::InvalidConfig {
            reason: format!("input_size {value} is not [3, size, size]"),
        }),
    }
}

fn parse_triple(field: &str, value: &Value) -> Result<[f32; 3], ModelError> {
    let numbers: Option<Vec<f64>> = value.as_array().map(|items| items.iter().filter_map(Value::as_f64).collect());
    match numbers.as_deref() {
        Some([a, b, c]) => Ok([*a as f32, *b as f32, *c as f32]),
        _ => Err(ModelError::InvalidConfig { reason: format!("{field} {value} is not a list of 3 numbers") }),
    }
}
