//! Folders of images: listing, labels, calibration selection, reading and preprocessing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ivit::image::Preprocessed;
use ivit::labels::{label_from_relative_path, ImageNetClass};
use ivit::PreprocessConfig;

/// File extensions read as images (compared case-insensitively).
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// One image of a data set and its class index, when one was found.
pub struct LabelledImage {
    pub path: PathBuf,
    pub label: Option<usize>,
}

/// Lists the image files under `dir`, recursively, in sorted path order.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    collect_images(dir, &mut paths)?;
    paths.sort();
    Ok(paths)
}

/// Lists the images under `dir` with their labels: from `dir/labels.json` (file name or
/// relative path to class index) when present, else from a parent folder named by a
/// WordNet id, else from a WordNet id at the start of the file name.
pub fn labelled_images(dir: &Path, classes: &[ImageNetClass]) -> Result<Vec<LabelledImage>> {
    let labels_json = read_labels_json(dir)?;
    let images = list_images(dir)?
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let label = match &labels_json {
                Some(map) => map.get(&relative).or_else(|| map.get(file_name(&path))).copied(),
                None => label_from_relative_path(classes, &relative),
            };
            LabelledImage { path, label }
        })
        .collect();
    Ok(images)
}

/// Picks `count` items spread evenly over `items` (all of them when there are fewer).
pub fn evenly_spaced<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    if count >= items.len() {
        return items.to_vec();
    }
    (0..count).map(|i| items[i * items.len() / count].clone()).collect()
}

/// Reads and preprocesses one image file; the error names the reason.
pub fn preprocess_file(path: &Path, config: &PreprocessConfig) -> Result<Preprocessed, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read file: {err}"))?;
    ivit::image::preprocess(&bytes, config).map_err(|err| err.to_string())
}

pub fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|name| name.to_str()).unwrap_or("")
}

pub fn progress_bar(total: u64, action: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{action} {{bar:40}} {{pos}}/{{len}} images, {{elapsed}} elapsed, {{eta}} left");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid progress template"));
    bar
}

fn read_labels_json(dir: &Path) -> Result<Option<HashMap<String, usize>>> {
    let path = dir.join("labels.json");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let map = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a JSON object of file name to class index", path.display()))?;
    Ok(Some(map))
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(ext)))
}
