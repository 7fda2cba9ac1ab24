//! `ivit eval`: accuracy and speed of the float and the integer path over a folder of
//! labelled images.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use ivit::labels::{imagenet_classes, top_k};
use ivit::model::diagnostic::{ExactChoice, ExactOps};
use ivit::model::integer::{IntVit, IntegerOps, NoTrace};
use ivit::compare::dequantize_logits;
use ivit::profile::ErrorStats;
use ivit::{FloatVit, PathKind, Profiler};
use serde::Serialize;

use crate::{dataset, models};

#[derive(Args)]
pub struct EvalArgs {
    /// Float model (timm ViT/DeiT safetensors).
    #[arg(long, default_value_os_t = crate::cli::default_model_path())]
    model: PathBuf,
    /// Integer model (.ivit) made by `ivit quantize`; its calibration images are left out.
    #[arg(long)]
    int: Option<PathBuf>,
    /// Paths to run: float, int or both (default: both with --int, else float).
    #[arg(long, value_enum)]
    path: Option<PathChoice>,
    /// Diagnostic: integer approximations to replace by exact float operations in the
    /// integer path (comma-separated: softmax, gelu, layernorm).
    #[arg(long, default_value = "none")]
    exact: ExactChoice,
    /// Evaluate only the first N images in sorted path order (after leaving out the
    /// calibration images).
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Folder of images. Labels come from DIR/labels.json (file name to class index), else
    /// from a parent folder named by WordNet id, else from a WordNet id at the start of the
    /// file name.
    dir: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PathChoice {
    Float,
    Int,
    Both,
}

/// Accuracy and speed of one path.
#[derive(Debug, Default, Serialize)]
struct PathReport {
    top1: f64,
    top5: f64,
    /// Mean wall time of the forward pass per image, from the preprocessed input to the logits.
    ms_per_image: f64,
}

#[derive(Serialize)]
struct EvalReport {
    model: String,
    images: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    excluded_calibration_images: Option<usize>,
    paths: BTreeMap<&'static str, PathReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement_top1: Option<f64>,
    /// Mean over the images of the SQNR of the dequantized integer logits against the
    /// float logits, `10 log10(sum f^2 / sum (f - i)^2)`, in dB. Images whose two sets of
    /// logits are equal (an infinite SQNR) are left out of the mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    logit_sqnr_db: Option<f64>,
}

/// Running sums for one path.
#[derive(Default)]
struct Tally {
    top1: usize,
    top5: usize,
    millis: f64,
}

impl Tally {
    fn add(&mut self, top5: &[usize], label: usize, millis: f64) {
        self.top1 += usize::from(top5.first() == Some(&label));
        self.top5 += usize::from(top5.contains(&label));
        self.millis += millis;
    }

    fn report(&self, images: usize) -> PathReport {
        let n = images.max(1) as f64;
        PathReport { top1: self.top1 as f64 / n, top5: self.top5 as f64 / n, ms_per_image: self.millis / n }
    }
}

/// Running mean of the finite per-image logit SQNRs.
#[derive(Default)]
struct SqnrMean {
    sum: f64,
    count: usize,
}

impl SqnrMean {
    fn add(&mut self, sqnr_db: f64) {
        if sqnr_db.is_finite() {
            self.sum += sqnr_db;
            self.count += 1;
        }
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

struct Models {
    float: Option<FloatVit>,
    int: Option<IntVit>,
    preprocess: ivit::PreprocessConfig,
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let choice = args.path.unwrap_or(if args.int.is_some() { PathChoice::Both } else { PathChoice::Float });
    let models = load_models(&args, choice)?;
    let classes = imagenet_classes();

    let mut dataset = dataset::labelled_images(&args.dir, &classes)?;
    let excluded = models.int.as_ref().map(|int| {
        let calibration: HashSet<&str> = int.calibration_images.iter().map(String::as_str).collect();
        let before = dataset.len();
        dataset.retain(|item| !calibration.contains(dataset::file_name(&item.path)));
        before - dataset.len()
    });
    if let Some(limit) = args.limit {
        dataset.truncate(limit);
    }
    if dataset.is_empty() {
        bail!("no images (.jpg, .jpeg, .png, .webp, .gif, .bmp) to evaluate in {}", args.dir.display());
    }

    let progress = dataset::progress_bar(dataset.len() as u64, "evaluating");
    let (mut float, mut int) = (Tally::default(), Tally::default());
    let mut agreements = 0;
    let mut sqnr = SqnrMean::default();
    let mut evaluated = 0;
    let mut failures: Vec<(PathBuf, String)> = Vec::new();

    for item in &dataset {
        progress.inc(1);
        let Some(label) = item.label else {
            failures.push((item.path.clone(), "no label found (labels.json, WordNet id folder or file name prefix)".into()));
            continue;
        };
        let prepared = match dataset::preprocess_file(&item.path, &models.preprocess) {
            Ok(prepared) => prepared,
            Err(reason) => {
                failures.push((item.path.clone(), reason));
                continue;
            }
        };

        let float_logits = models.float.as_ref().map(|model| {
            let start = Instant::now();
            let logits = model.forward(&prepared.tensor, &mut Profiler::disabled(PathKind::Float));
            let millis = start.elapsed().as_secs_f64() * 1e3;
            float.add(&top_k(&logits, 5), label, millis);
            logits
        });

        let int_logits = match models.int.as_ref() {
            Some(model) => {
                let start = Instant::now();
                let mut profiler = Profiler::disabled(PathKind::Int);
                let logits = match (&models.float, args.exact == ExactChoice::default()) {
                    (Some(float), false) => {
                        let ops = ExactOps::new(float, model, args.exact);
                        model.forward_with(&prepared.crop.data, &ops, &mut profiler, &mut NoTrace)
                    }
                    _ => model.forward_with(&prepared.crop.data, &IntegerOps, &mut profiler, &mut NoTrace),
                };
                let millis = start.elapsed().as_secs_f64() * 1e3;
                match logits {
                    Ok(logits) => {
                        let top5 = top_k(&logits, 5);
                        int.add(&top5, label, millis);
                        Some((top5[0], dequantize_logits(model, &logits)))
                    }
                    Err(err) => bail!("integer forward pass failed on {}: {err}", item.path.display()),
                }
            }
            None => None,
        };

        if let (Some(f), Some((int_top1, i))) = (&float_logits, &int_logits) {
            agreements += usize::from(top_k(f, 1)[0] == *int_top1);
            sqnr.add(ErrorStats::between(f, i).sqnr_db);
        }
        evaluated += 1;
    }
    progress.finish_and_clear();

    for (path, reason) in &failures {
        eprintln!("failed: {}: {reason}", path.display());
    }

    let mut paths = BTreeMap::new();
    if models.float.is_some() {
        paths.insert("float", float.report(evaluated));
    }
    if models.int.is_some() {
        paths.insert("int", int.report(evaluated));
    }
    let report = EvalReport {
        model: models::display_name(args.int.as_ref().unwrap_or(&args.model)),
        images: evaluated,
        failed: failures.len(),
        excluded_calibration_images: excluded,
        paths,
        agreement_top1: (choice == PathChoice::Both).then(|| agreements as f64 / evaluated.max(1) as f64),
        logit_sqnr_db: (choice == PathChoice::Both).then(|| sqnr.mean()).flatten(),
    };
    print_report(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn load_models(args: &EvalArgs, choice: PathChoice) -> Result<Models> {
    let needs_int = choice != PathChoice::Float;
    let int = match (&args.int, needs_int) {
        (Some(path), true) => Some(models::load_int(path)?),
        (None, true) => bail!("--path int and --path both need --int FILE.ivit (made by `ivit quantize`)"),
        _ => None,
    };

    if args.exact != ExactChoice::default() && choice != PathChoice::Both {
        bail!("--exact needs --path both, because the exact operations read the float model");
    }
    let (float, preprocess) = if choice != PathChoice::Int {
        let (float, preprocess) = models::load_float(&args.model)?;
        (Some(float), preprocess)
    } else {
        (None, int.as_ref().expect("int model loaded for --path int").preprocess)
    };
    Ok(Models { float, int, preprocess })
}

fn print_report(report: &EvalReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }

    println!("model   {}", report.model);
    print!("images  {} evaluated, {} failed", report.images, report.failed);
    match report.excluded_calibration_images {
        Some(n) => println!(", {n} calibration images left out"),
        None => println!(),
    }
    println!("{:<6} {:>7} {:>7} {:>10}", "path", "top-1", "top-5", "ms/image");
    for (name, path) in &report.paths {
        println!("{name:<6} {:>7.4} {:>7.4} {:>10.2}", path.top1, path.top5, path.ms_per_image);
    }
    if let Some(agreement) = report.agreement_top1 {
        println!("top-1 agreement of int with float: {agreement:.4}");
    }
    if let Some(sqnr) = report.logit_sqnr_db {
        println!("mean logit SQNR of int against float: {sqnr:.2} dB");
    }
    Ok(())
}
