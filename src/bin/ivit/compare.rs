//! `ivit compare`: per-layer timings of both paths and the error of each integer
//! activation against the float one, on one image.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Args;
use ivit::compare::{compare_paths, dequantize_logits};
use ivit::labels::{imagenet_classes, top_k};
use ivit::model::diagnostic::{ExactChoice, ExactOps};
use ivit::profile::StdClock;
use ivit::PathKind;

use crate::{dataset, models};

#[derive(Args)]
pub struct CompareArgs {
    /// Float model (timm ViT/DeiT safetensors).
    #[arg(long, default_value_os_t = crate::cli::default_model_path())]
    model: PathBuf,
    /// Integer model (.ivit) made by `ivit quantize`.
    #[arg(long, default_value_os_t = crate::cli::default_int_model_path())]
    int: PathBuf,
    /// Diagnostic: integer approximations to replace by exact float operations
    /// (comma-separated: softmax, gelu, layernorm).
    #[arg(long, default_value = "none")]
    exact: ExactChoice,
    /// Image file.
    image: PathBuf,
}

pub fn run(args: CompareArgs) -> Result<ExitCode> {
    let (float, preprocess) = models::load_float(&args.model)?;
    let int = models::load_int(&args.int)?;
    let prepared = dataset::preprocess_file(&args.image, &preprocess).map_err(|reason| anyhow!("{}: {reason}", args.image.display()))?;

    let ops = ExactOps::new(&float, &int, args.exact);
    let clock = StdClock::default();
    let comparison = compare_paths(&float, &int, &ops, &prepared.tensor, &prepared.crop.data, &clock)?;

    let float_us: HashMap<&str, f64> = comparison
        .records
        .iter()
        .filter(|r| r.path == PathKind::Float)
        .map(|r| (r.layer.as_str(), r.micros))
        .collect();

    println!("{:<24} {:>10} {:>10} {:>8} {:>9} {:>9}", "layer", "float us", "int us", "speed-up", "SQNR dB", "cosine");
    let (mut float_total, mut int_total) = (0.0, 0.0);
    for record in comparison.records.iter().filter(|r| r.path == PathKind::Int) {
        let float_time = float_us.get(record.layer.as_str()).copied().unwrap_or(f64::NAN);
        float_total += float_time;
        int_total += record.micros;
        let (sqnr, cosine) = record.error.map_or((f64::NAN, f64::NAN), |e| (e.sqnr_db, e.cosine));
        println!(
            "{:<24} {:>10.1} {:>10.1} {:>7.2}x {:>9.2} {:>9.5}",
            record.layer,
            float_time,
            record.micros,
            float_time / record.micros,
            sqnr,
            cosine
        );
    }
    println!("{:<24} {:>10.1} {:>10.1} {:>7.2}x", "total", float_total, int_total, float_total / int_total);

    let classes = imagenet_classes();
    let name = |class: usize| classes.get(class).map_or("?", |c| c.name.as_str()).to_string();
    let float_top = top_k(&comparison.float_logits, 1)[0];
    let int_top = top_k(&dequantize_logits(&int, &comparison.int_logits), 1)[0];
    println!("float top-1: {float_top} {}", name(float_top));
    println!("int   top-1: {int_top} {}", name(int_top));
    Ok(ExitCode::SUCCESS)
}
