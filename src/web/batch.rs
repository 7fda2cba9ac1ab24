//! Batch accuracy over many labelled images: labels as `ivit eval` finds them, and the
//! running top-1/top-5 counts of each path and their agreement.

use std::collections::{HashMap, HashSet};

use crate::labels::{label_from_relative_path, ImageNetClass};

use super::io::{is_image_path, PickedFile};

/// Name of the optional label file of a data set: a JSON object of file name (or path
/// relative to the folder of the file) to ImageNet-1k class index.
pub const LABELS_FILE: &str = "labels.json";

/// One image of a batch.
#[derive(Clone, PartialEq)]
pub struct BatchItem {
    pub file: PickedFile,
    /// ImageNet-1k class index, when the set gives one.
    pub label: Option<usize>,
}

/// Whether a batch still runs, and why it stopped otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    Running,
    Done,
    Cancelled,
    /// The engine was restarted during the batch.
    Interrupted,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Running => "running",
            BatchState::Done => "done",
            BatchState::Cancelled => "cancelled",
            BatchState::Interrupted => "interrupted",
        }
    }
}

/// Top-1 and top-5 hits of one path over the labelled images.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hits {
    pub top1: u32,
    pub top5: u32,
    /// Labelled images this path classified.
    pub labelled: u32,
}

impl Hits {
    fn add(&mut self, top5: &[usize], label: Option<usize>) {
        let Some(label) = label else { return };
        self.labelled += 1;
        if top5.first() == Some(&label) {
            self.top1 += 1;
        }
        if top5.contains(&label) {
            self.top5 += 1;
        }
    }

    /// Top-1 accuracy in [0, 1]; `None` before any labelled image.
    pub fn top1_rate(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.top1 as f64 / self.labelled as f64)
    }

    /// Top-5 accuracy in [0, 1]; `None` before any labelled image.
    pub fn top5_rate(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.top5 as f64 / self.labelled as f64)
    }
}

/// A batch run and its running figures.
#[derive(Clone, PartialEq)]
pub struct Batch {
    pub items: Vec<BatchItem>,
    /// Index of the next item to send.
    pub next: usize,
    /// Items with a response, failures included.
    pub done: usize,
    pub state: BatchState,
    pub float: Hits,
    pub int: Hits,
    /// Images that both paths classified, and how many of them got the same top-1 class.
    pub compared: u32,
    pub agreed: u32,
    /// Images that could not be decoded or classified.
    pub failed: u32,
    pub last_failure: Option<String>,
    /// Images left out because the integer model was calibrated on them.
    pub excluded_calibration: usize,
    /// Files of the set that are not images (besides `labels.json`).
    pub ignored_files: usize,
    /// Whether the labels came from a `labels.json` of the set.
    pub labels_from_json: bool,
}

impl Batch {
    /// Builds a batch from the picked files: images only, labelled from `labels_json` when
    /// the set had one, else from WordNet ids in the path, and without the images the
    /// integer model was calibrated on.
    pub fn new(
        files: Vec<PickedFile>,
        labels_json: Option<(String, HashMap<String, usize>)>,
        classes: &[ImageNetClass],
        calibration_images: &HashSet<String>,
    ) -> Batch {
        let (images, others): (Vec<PickedFile>, Vec<PickedFile>) = files
            .into_iter()
            .partition(|file| is_image_path(&file.path));
        let ignored_files = others
            .iter()
            .filter(|file| file.file_name() != LABELS_FILE)
            .count();

        let before = images.len();
        let images: Vec<PickedFile> = images
            .into_iter()
            .filter(|file| !calibration_images.contains(file.file_name()))
            .collect();
        let excluded_calibration = before - images.len();

        let labels_from_json = labels_json.is_some();
        let items = images
            .into_iter()
            .map(|file| {
                let label = match &labels_json {
                    Some((folder, map)) => label_from_json(map, folder, &file),
                    None => label_from_relative_path(classes, &file.path),
                };
                BatchItem { file, label }
            })
            .collect();

        Batch {
            items,
            next: 0,
            done: 0,
            state: BatchState::Running,
            float: Hits::default(),
            int: Hits::default(),
            compared: 0,
            agreed: 0,
            failed: 0,
            last_failure: None,
            excluded_calibration,
            ignored_files,
            labels_from_json,
        }
    }

    pub fn total(&self) -> usize {
        self.items.len()
    }

    /// Records the predictions for item `index`.
    pub fn record(
        &mut self,
        index: usize,
        float_top5: Option<&[usize]>,
        int_top5: Option<&[usize]>,
    ) {
        let label = self.items.get(index).and_then(|item| item.label);
        if let Some(top5) = float_top5 {
            self.float.add(top5, label);
        }
        if let Some(top5) = int_top5 {
            self.int.add(top5, label);
        }
        if let (Some(float), Some(int)) = (float_top5, int_top5) {
            self.compared += 1;
            if float.first() == int.first() {
                self.agreed += 1;
            }
        }
        self.finish_item();
    }

    /// Records a failed item.
    pub fn record_failure(&mut self, index: usize, message: String) {
        let path = self
            .items
            .get(index)
            .map_or("?", |item| item.file.path.as_str());
        self.failed += 1;
        self.last_failure = Some(format!("{path}: {message}"));
        self.finish_item();
    }

    fn finish_item(&mut self) {
        self.done += 1;
        if self.done >= self.total() && self.state == BatchState::Running {
            self.state = BatchState::Done;
        }
    }

    /// Share of compared images whose top-1 classes agree; `None` before any.
    pub fn agreement(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.agreed as f64 / self.compared as f64)
    }

    /// Images with a label.
    pub fn labelled(&self) -> usize {
        self.items
            .iter()
            .filter(|item| item.label.is_some())
            .count()
    }
}

/// Looks an image up in a `labels.json` map: by its path relative to the folder that holds
/// the label file, then by its file name.
fn label_from_json(map: &HashMap<String, usize>, folder: &str, file: &PickedFile) -> Option<usize> {
    let relative = file.path.strip_prefix(folder).unwrap_or(&file.path);
    map.get(relative)
        .or_else(|| map.get(file.file_name()))
        .copied()
}

/// Finds the `labels.json` of a set: the one closest to the root. Returns it with the
/// folder prefix (ending in `/`, or empty) its paths are relative to.
pub fn find_labels_file(files: &[PickedFile]) -> Option<(String, PickedFile)> {
    files
        .iter()
        .filter(|file| file.file_name() == LABELS_FILE)
        .min_by_key(|file| file.path.matches('/').count())
        .map(|file| {
            let folder = file.path[..file.path.len() - LABELS_FILE.len()].to_string();
            (folder, file.clone())
        })
}

/// Parses a `labels.json`.
pub fn parse_labels(bytes: &[u8]) -> Result<HashMap<String, usize>, String> {
    serde_json::from_slice(bytes).map_err(|err| {
        format!("{LABELS_FILE} is not a JSON object of file name to class index: {err}")
    })
}
