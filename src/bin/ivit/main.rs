//! `ivit`: classify images, quantize a model, evaluate a folder of labelled images and
//! compare the integer path with the float path, from the command line.

mod classify;
mod compare;
mod dataset;
mod eval;
mod models;
mod quantize;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ivit", version, about = "Integer-only ViT (I-ViT) inference next to the float path")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the top-K classes of each image with their probabilities.
    Classify(classify::ClassifyArgs),
    /// Measure top-1/top-5 accuracy and speed over a folder of labelled images.
    Eval(eval::EvalArgs),
    /// Print per-layer timings of both paths and the integer path's error against float.
    Compare(compare::CompareArgs),
    /// Calibrate on a few images and write an integer model (.ivit).
    Quantize(quantize::QuantizeArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();

    let result = match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Compare(args) => compare::run(args),
    };

    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The float model the set-up places in `assets/models/`.
fn default_model_path() -> PathBuf {
    PathBuf::from("assets/models/vit_tiny_patch16_224.safetensors")
}

/// The integer model the set-up makes with `ivit quantize`.
fn default_int_model_path() -> PathBuf {
    PathBuf::from("assets/models/vit_tiny_patch16_224.ivit")
}
