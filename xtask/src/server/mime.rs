//! Content types by file extension.

use std::path::Path;

/// Returns the `Content-Type` of a file, from its extension; `application/octet-stream` for
/// unknown ones. Model files (`.safetensors`, `.ivit`) are binary.
pub fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "tsv" => "text/tab-separated-values; charset=utf-8",
        "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("web/main.js", "text/javascript; charset=utf-8"),
            ("web/pkg/ivit_bg.wasm", "application/wasm"),
            ("web/style.css", "text/css; charset=utf-8"),
            ("labels.json", "application/json"),
            ("assets/demo/chelsea.png", "image/png"),
            ("assets/demo/rocket.jpg", "image/jpeg"),
            ("assets/demo/ROCKET.JPG", "image/jpeg"),
            ("logo.svg", "image/svg+xml"),
            ("assets/models/vit.safetensors", "application/octet-stream"),
            ("assets/models/vit.ivit", "application/octet-stream"),
            ("README", "application/octet-stream"),
        ];
        for (path, expected) in cases {
            assert_eq!(content_type(Path::new(path)), expected, "{path}");
        }
    }
}
