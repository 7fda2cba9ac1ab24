//! `ivit classify`: top-K classes of each image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use ivit::labels::{imagenet_classes, softmax, top_k};
use ivit::{PathKind, Profiler};

use crate::models;

#[derive(Args)]
pub struct ClassifyArgs {
    /// Float model (timm ViT/DeiT safetensors).
    #[arg(long, default_value_os_t = crate::cli::default_model_path())]
    model: PathBuf,
    /// Number of classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Image files (JPEG, PNG, WebP, GIF, BMP).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(args: ClassifyArgs) -> Result<ExitCode> {
    let (model, preprocess) = models::load_float(&args.model)?;
    let classes = imagenet_classes();
    let mut failed = 0;

    for path in &args.images {
        let prepared = std::fs::read(path)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| ivit::image::preprocess(&bytes, &preprocess).map_err(anyhow::Error::from));
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                eprintln!("error: {}: {err}", path.display());
                failed += 1;
                continue;
            }
        };

        let logits = model.forward(&prepared.tensor, &mut Profiler::disabled(PathKind::Float));
        let probabilities = softmax(&logits);

        println!("{}", path.display());
        for class in top_k(&logits, args.top) {
            let name = classes.get(class).map_or("?", |c| c.name.as_str());
            println!("  {:>6.2}%  {class:>4}  {name}", probabilities[class] * 100.0);
        }
    }

    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
