//! Project tasks behind `cargo xtask`: install the web toolchain (`setup`), build the two
//! wasm packages (`build-web`), serve the app locally (`serve`), run every test (`test`) and
//! benchmark the engine in the browser (`bench-web`).

pub mod bench_web;
pub mod build_web;
pub mod command;
pub mod e2e;
pub mod server;
pub mod setup;
pub mod test_all;
pub mod toolchain;
pub mod wasm_check;

use std::path::{Path, PathBuf};

/// Root of the repository: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
