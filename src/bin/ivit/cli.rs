//! Argument parsing and dispatch of the `ivit` subcommands.


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
    Classify(crate::classify::ClassifyArgs),
    /// Measure top-1/top-5 accuracy and speed over a folder of labelled images.
    Eval(crate::eval::EvalArgs),
    /// Print per-layer timings of both paths and the integer path's error against float.
    Compare(crate::compare::CompareArgs),
    /// Calibrate on a few images and write an integer model (.ivit).
    Quantize(crate::quantize::QuantizeArgs),
}

pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();

    let result = match cli.command {
        Command::Classify(args) => crate::classify::run(args),
        Command::Eval(args) => crate::eval::run(args),
        Command::Quantize(args) => crate::quantize::run(args),
        Command::Compare(args) => crate::compare::run(args),
    };

    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the path where the set-up places the float model.
pub fn default_model_path() -> PathBuf {
    PathBuf::from("assets/models/vit_tiny_patch16_224.safetensors")
}

/// Returns the path where the set-up writes the integer model made by `ivit quantize`.
pub fn default_int_model_path() -> PathBuf {
    PathBuf::from("assets/models/vit_tiny_patch16_224.ivit")
}
