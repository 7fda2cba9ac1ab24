//! Integer-only Vision Transformer inference (I-ViT) next to the float path of the same
//! weights.
//!
//! The crate loads timm ViT/DeiT checkpoints (safetensors), preprocesses images as timm's
//! evaluation transform does, runs a float32 forward pass, and runs the integer-only
//! forward pass of a quantized model (`.ivit`). Every pass can record per-layer timings
//! through an injected clock ([`profile::Clock`]). The same code runs natively and as
//! WebAssembly.

#[cfg(feature = "float-audit")]
pub mod audit;
pub mod compare;
pub mod image;
pub mod kernels;
pub mod labels;
pub mod model;
pub mod profile;
pub mod quant;
#[cfg(all(target_arch = "wasm32", not(feature = "float-audit")))]
pub mod web;

pub use model::config::{PreprocessConfig, VitConfig};
pub use model::error::ModelError;
pub use model::float::FloatVit;
pub use profile::{ActivationTrace, Clock, LayerRecord, OpKind, PathKind, Profiler};
