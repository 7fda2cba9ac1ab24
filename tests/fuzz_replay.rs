//! Replays the committed fuzz corpus (`tests/fuzz_inputs/corpus/<target>/`) and the inputs
//! that made a fuzz target fail (`tests/fuzz_inputs/regressions/<target>/`) through the
//! targets' own entry points, so that `cargo test` covers them without a nightly toolchain
//! or cargo-fuzz. The entry points assert what the parsers promise about accepted inputs.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

type EntryPoint = fn(&[u8]) -> Result<String, String>;

fn inputs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_inputs")
}

/// Reads every file of `dir`, sorted by name.
fn read_inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.expect("folder entry").path();
            let bytes = std::fs::read(&path).expect("read input");
            (path.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

/// Runs the corpus of `target` through `entry`; returns how many inputs were accepted.
fn replay_corpus(target: &str, entry: EntryPoint) -> usize {
    let inputs = read_inputs(&inputs_dir().join("corpus").join(target));
    assert!(!inputs.is_empty(), "the {target} corpus is empty");

    let mut accepted = 0;
    for (name, bytes) in &inputs {
        assert!(bytes.len() <= harness::MAX_INPUT_LEN, "{target}/{name} is longer than the fuzzer's -max_len");
        if entry(bytes).is_ok() {
            accepted += 1;
        }
    }
    eprintln!("{target}: {accepted} of {} corpus inputs accepted", inputs.len());
    accepted
}

/// Runs each regression input of `target` and checks its outcome against `expected`:
/// file name, then a fragment of the `Ok` description or of the error message.
fn replay_regressions(target: &str, entry: EntryPoint, expected: &[(&str, Result<&str, &str>)]) {
    let dir = inputs_dir().join("regressions").join(target);
    let inputs = if dir.is_dir() { read_inputs(&dir) } else { Vec::new() };
    let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
    let listed: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, listed, "regression inputs of {target} and the expected outcomes differ");

    for ((name, bytes), (_, outcome)) in inputs.iter().zip(expected) {
        match (entry(bytes), outcome) {
            (Ok(description), Ok(fragment)) | (Err(description), Err(fragment)) => {
                assert!(description.contains(fragment), "{target}/{name}: {description:?} lacks {fragment:?}");
            }
            (got, want) => panic!("{target}/{name}: got {got:?}, expected {want:?}"),
        }
    }
}

#[test]
fn safetensors_corpus_replays() {
    let accepted = replay_corpus("safetensors", harness::safetensors_file);
    assert!(accepted >= 1, "no corpus input loads as a float model");
}

#[test]
fn ivit_corpus_replays() {
    let accepted = replay_corpus("ivit_format", harness::ivit_file);
    assert!(accepted >= 1, "no corpus input loads as an integer model");
}

#[test]
fn image_corpus_replays() {
    let accepted = replay_corpus("image_preprocess", harness::image_file);
    assert!(accepted >= 10, "only {accepted} corpus inputs decode");
}

#[test]
fn safetensors_regressions_rejected() {
    replay_regressions("safetensors", harness::safetensors_file, SAFETENSORS_REGRESSIONS);
}

#[test]
fn ivit_regressions_rejected() {
    replay_regressions("ivit_format", harness::ivit_file, IVIT_REGRESSIONS);
}

#[test]
fn image_regressions_rejected() {
    replay_regressions("image_preprocess", harness::image_file, IMAGE_REGRESSIONS);
}

/// Inputs that made the safetensors target fail, sorted by file name.
const SAFETENSORS_REGRESSIONS: &[(&str, Result<&str, &str>)] = &[];

/// Inputs that made the `.ivit` target fail, sorted by file name.
const IVIT_REGRESSIONS: &[(&str, Result<&str, &str>)] = &[
    // A payload whose image_size and patch_size give a grid whose square overflows usize.
    ("grid_overflow.bin", Err("inconsistent architecture")),
];

/// Inputs that made the image target fail, sorted by file name.
const IMAGE_REGRESSIONS: &[(&str, Result<&str, &str>)] = &[
    // Malformed JPEGs on which zune-jpeg 0.5.15 unwraps a `None` in its AVX2 IDCT.
    ("jpeg_idct_unwrap_a.jpg", Err("JPEG image is truncated or corrupt: the decoder failed")),
    ("jpeg_idct_unwrap_b.jpg", Err("JPEG image is truncated or corrupt: the decoder failed")),
    // A malformed JPEG on which zune-jpeg 0.5.15 fails an assertion in its AVX2 upsampler.
    ("jpeg_upsampler_assert.jpg", Err("JPEG image is truncated or corrupt: the decoder failed")),
];
