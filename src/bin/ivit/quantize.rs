//! `ivit quantize`: calibrate the float model on a few images and write an `.ivit` file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use ivit::model::balance::balance_query_key;
use ivit::model::calibrate::Calibration;
use ivit::FloatVit;
use ivit::model::quantize::{quantize, Approximations, QuantizeOptions};
use ivit::quant::observer::Observer;

use crate::dataset;
use crate::models;

/// Most calibration images allowed: calibration images are never evaluation images, and
/// a small set keeps them apart from the evaluation photos.
const MAX_CALIBRATION_IMAGES: usize = 32;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Float model (timm ViT/DeiT safetensors).
    #[arg(long, default_value_os_t = crate::cli::default_model_path())]
    model: PathBuf,
    /// Folder of calibration images (labels are not needed).
    #[arg(long)]
    calib: PathBuf,
    /// Number of calibration images, taken evenly spaced from the sorted folder (at most 32).
    #[arg(long, default_value_t = 32)]
    calib_count: usize,
    /// Integer approximations: refined (default) or ivit (Shiftmax and ShiftGELU as
    /// published in I-ViT).
    #[arg(long, default_value = "refined")]
    approx: Approximations,
    /// Observer of int8 activations: minmax, mse or percentile:P.
    #[arg(long, default_value = "mse")]
    observer: Observer,
    /// Observer of each channel of the activations with per-channel scales (LayerNorm
    /// outputs, v, attention context, GELU output): minmax, mse or percentile:P.
    #[arg(long, default_value = "mse")]
    channel_observer: Observer,
    /// Quantize the GELU output (the input of fc2) symmetrically instead of with a zero
    /// point per channel.
    #[arg(long)]
    symmetric_gelu: bool,
    /// Quantize q and k as they are, without first balancing the range of each channel
    /// between them.
    #[arg(long)]
    no_balance_qk: bool,
    /// Exponent a in 0..=1 of the per-channel activation ranges: each channel gets
    /// range^a * largest^(1 - a). Lower values coarsen the narrow channels and leave
    /// more int8 precision to the weights they fold into.
    #[arg(long, default_value_t = QuantizeOptions::default().channel_balance)]
    channel_balance: f64,
    /// Bits of the linear layers' weights, 2..=8. With 7 the relaxed-SIMD build of the
    /// web app runs its GEMMs at one relaxed dot instruction per 16 products.
    #[arg(long, default_value_t = QuantizeOptions::default().weight_bits)]
    weight_bits: u32,
    /// Observer of int16 activations (residual stream, GELU input): minmax, mse or percentile:P.
    #[arg(long, default_value = "minmax")]
    wide_observer: Observer,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: QuantizeArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.channel_balance) {
        bail!("--channel-balance {} is outside 0..=1; 1 keeps each channel's own range", args.channel_balance);
    }
    if args.calib_count == 0 || args.calib_count > MAX_CALIBRATION_IMAGES {
        bail!("--calib-count {} is outside 1..={MAX_CALIBRATION_IMAGES}", args.calib_count);
    }
    let (model, preprocess) = models::load_float(&args.model)?;

    let images = dataset::list_images(&args.calib)?;
    let chosen = dataset::evenly_spaced(&images, args.calib_count);
    if chosen.is_empty() {
        bail!("no images found in {}", args.calib.display());
    }

    let mut tensors = Vec::new();
    let mut names = Vec::new();
    for path in &chosen {
        match dataset::preprocess_file(path, &preprocess) {
            Ok(prepared) => {
                tensors.push(prepared.tensor);
                names.push(dataset::file_name(path).to_string());
            }
            Err(reason) => log::warn!("skipping calibration image {}: {reason}", path.display()),
        }
    }
    if tensors.is_empty() {
        bail!("none of the {} calibration images could be read", chosen.len());
    }

    let mut calibration = calibrate(&model, &tensors, "calibrating");
    let balanced;
    let model = if args.no_balance_qk {
        &model
    } else {
        // The balanced model has other q and k ranges, so calibration runs again on it.
        let factors;
        (balanced, factors) = balance_query_key(&model, &calibration);
        calibration = calibrate(&balanced, &tensors, "calibrating the balanced model");
        calibration.set_query_key_factors(factors);
        &balanced
    };

    let options = QuantizeOptions {
        approximations: args.approx,
        observer: args.observer,
        wide_observer: args.wide_observer,
        channel_observer: args.channel_observer,
        affine_gelu: !args.symmetric_gelu,
        channel_balance: args.channel_balance,
        weight_bits: args.weight_bits,
    };
    let mut int_model = quantize(model, &preprocess, &calibration, options).context("quantization failed")?;
    int_model.calibration_images = names;

    let bytes = ivit::model::format::encode(&int_model);
    std::fs::write(&args.out, &bytes).with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("wrote {} ({:.1} MB; {})", args.out.display(), bytes.len() as f64 / 1e6, int_model.calibration);
    Ok(ExitCode::SUCCESS)
}

/// Collects the activation statistics of `model` on normalized images `[3, size, size]`.
fn calibrate(model: &FloatVit, tensors: &[Vec<f32>], action: &str) -> Calibration {
    let progress = dataset::progress_bar(tensors.len() as u64, action);
    let mut calibration = Calibration::default();
    for tensor in tensors {
        progress.inc(1);
        calibration.observe(model, tensor);
    }
    progress.finish_and_clear();
    calibration
}
