//! Measures what int8 weight rounding alone costs the float model, with and without the
//! per-channel activation scales that the integer model folds into the weight columns.
//!
//! Usage: `cargo run --release --example weight_rounding -- DIR [--channel-balance A]`,
//! where `DIR` contains labelled photos and a `labels.json` (file name to class index). The
//! model is `assets/models/vit_tiny_patch16_224.safetensors`. As `ivit quantize` does, the
//! example calibrates on 32 evenly spaced photos of the sorted folder and evaluates on the
//! others. It prints, for each variant, the top-1 agreement with the float model and the
//! mean logit SQNR. Activations stay in float throughout, so the figures isolate the
//! weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ivit::labels::top_k;
use ivit::model::balance::balance_query_key;
use ivit::model::calibrate::Calibration;
use ivit::model::float::Linear;
use ivit::model::integer::IntVit;
use ivit::model::quantize::{quantize, QuantizeOptions};
use ivit::profile::ErrorStats;
use ivit::{FloatVit, PathKind, PreprocessConfig, Profiler};
use rayon::prelude::*;

const MODEL: &str = "assets/models/vit_tiny_patch16_224.safetensors";
const CALIBRATION_IMAGES: usize = 32;

fn main() -> Result<()> {
    let (dir, balance) = parse_args()?;
    let bytes = std::fs::read(MODEL).with_context(|| format!("cannot read {MODEL}; run `cargo xtask setup`"))?;
    let (model, preprocess) = ivit::model::load_float(&bytes, None)?;

    let tensors = load_tensors(&dir, &preprocess)?;
    let calibration_indices: Vec<usize> =
        (0..CALIBRATION_IMAGES).map(|i| i * tensors.len() / CALIBRATION_IMAGES).collect();
    let (calibration, evaluation): (Vec<_>, Vec<_>) =
        tensors.iter().enumerate().partition(|(i, _)| calibration_indices.contains(i));
    let calibration: Vec<&Vec<f32>> = calibration.into_iter().map(|(_, t)| t).collect();
    let evaluation: Vec<&Vec<f32>> = evaluation.into_iter().map(|(_, t)| t).collect();

    let reference = forward_all(&model, &evaluation);
    let (balanced, int) = quantize_like_cli(&model, &preprocess, &calibration, balance)?;

    let plain = round_weights(&balanced, &int, false);
    report("int8 weights, per output row", &reference, &forward_all(&plain, &evaluation));

    let folded = round_weights(&balanced, &int, true);
    report("int8 weights with folded activation scales", &reference, &forward_all(&folded, &evaluation));
    Ok(())
}

fn parse_args() -> Result<(PathBuf, f64)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        bail!("usage: weight_rounding DIR [--channel-balance A]");
    };

    let balance = match args.get(1).map(String::as_str) {
        None => QuantizeOptions::default().channel_balance,
        Some("--channel-balance") => {
            let text = args.get(2).context("--channel-balance needs a value in 0..=1")?;
            text.parse().with_context(|| format!("--channel-balance {text} is not a number"))?
        }
        Some(other) => bail!("unknown argument {other}; usage: weight_rounding DIR [--channel-balance A]"),
    };
    Ok((PathBuf::from(dir), balance))
}

/// Returns the normalized crops `[3, size, size]` of the photos in `labels.json`, in
/// sorted file name order.
fn load_tensors(dir: &Path, preprocess: &PreprocessConfig) -> Result<Vec<Vec<f32>>> {
    let labels_path = dir.join("labels.json");
    let labels: BTreeMap<String, usize> = serde_json::from_slice(
        &std::fs::read(&labels_path).with_context(|| format!("cannot read {}", labels_path.display()))?,
    )?;

    labels
        .keys()
        .collect::<Vec<_>>()
        .par_iter()
        .map(|name| {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let prepared = ivit::image::preprocess(&bytes, preprocess).with_context(|| format!("{}", path.display()))?;
            Ok(prepared.tensor)
        })
        .collect()
}

/// Calibrates, balances q and k, calibrates again and quantizes, as `ivit quantize`
/// does; returns the balanced float model and the integer model made from it.
fn quantize_like_cli(
    model: &FloatVit,
    preprocess: &PreprocessConfig,
    tensors: &[&Vec<f32>],
    balance: f64,
) -> Result<(FloatVit, IntVit)> {
    let observe = |model: &FloatVit| {
        let mut calibration = Calibration::default();
        for tensor in tensors {
            calibration.observe(model, tensor);
        }
        calibration
    };

    let (balanced, factors) = balance_query_key(model, &observe(model));
    let mut calibration = observe(&balanced);
    calibration.set_query_key_factors(factors);

    let options = QuantizeOptions { channel_balance: balance, ..QuantizeOptions::default() };
    let int = quantize(&balanced, preprocess, &calibration, options)?;
    Ok((balanced, int))
}

/// Returns `model` with the weights of every block's linear layers and of the head
/// rounded to int8 per output row. With `folded`, each input column is first multiplied
/// by the activation scale that the integer model folds into it, and divided by it
/// after rounding.
fn round_weights(model: &FloatVit, int: &IntVit, folded: bool) -> FloatVit {
    let scales = |layer: String| if folded { int.scales_of(&layer) } else { None };
    let mut rounded = model.clone();
    for (i, block) in rounded.blocks.iter_mut().enumerate() {
        block.attn.qkv = round_linear(&block.attn.qkv, scales(format!("blocks.{i}.norm1")));
        block.attn.proj = round_linear(&block.attn.proj, scales(format!("blocks.{i}.attn.context")));
        block.mlp.fc1 = round_linear(&block.mlp.fc1, scales(format!("blocks.{i}.norm2")));
        block.mlp.fc2 = round_linear(&block.mlp.fc2, scales(format!("blocks.{i}.mlp.act")));
    }
    rounded.head = round_linear(&rounded.head, scales("norm".to_string()));
    rounded
}

/// Rounds each row of `w * column_scales` to int8 levels of `max |row| / 127`, then
/// divides the columns by their scales again.
fn round_linear(linear: &Linear, column_scales: Option<&[f32]>) -> Linear {
    let in_features = linear.weight.len() / linear.out_features;
    let column_scale = |i: usize| column_scales.map_or(1.0, |s| f64::from(s[i]));
    let mut weight = linear.weight.clone();

    for row in weight.chunks_exact_mut(in_features) {
        let scaled: Vec<f64> = row.iter().enumerate().map(|(i, &w)| f64::from(w) * column_scale(i)).collect();
        let largest = scaled.iter().fold(0f64, |m, &w| m.max(w.abs()));
        let step = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        for (i, (slot, &w)) in row.iter_mut().zip(&scaled).enumerate() {
            *slot = ((w / step).round() * step / column_scale(i)) as f32;
        }
    }
    Linear::new(weight, linear.bias.clone(), linear.out_features)
}

fn forward_all(model: &FloatVit, tensors: &[&Vec<f32>]) -> Vec<Vec<f32>> {
    tensors.par_iter().map(|tensor| model.forward(tensor, &mut Profiler::disabled(PathKind::Float))).collect()
}

fn report(variant: &str, reference: &[Vec<f32>], logits: &[Vec<f32>]) {
    let agreeing = reference.iter().zip(logits).filter(|(r, l)| top_k(r, 1) == top_k(l, 1)).count();
    let sqnr: f64 = reference.iter().zip(logits).map(|(r, l)| ErrorStats::between(r, l).sqnr_db).sum();
    println!(
        "{variant}: top-1 agreement {:.4} ({agreeing}/{}), mean logit SQNR {:.2} dB",
        agreeing as f64 / reference.len() as f64,
        reference.len(),
        sqnr / reference.len() as f64
    );
}
