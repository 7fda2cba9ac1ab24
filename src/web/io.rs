//! Browser I/O of the page, implemented in `web/io.js`: downloads with byte progress, files
//! from inputs, drops and the clipboard, and drawing the crop.

use js_sys::{Array, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/web/io.js")]
extern "C" {
    #[wasm_bindgen(js_name = fetchWithProgress)]
    fn fetch_with_progress(url: &str, on_progress: &Closure<dyn FnMut(f64, f64)>) -> Promise;

    #[wasm_bindgen(js_name = filesFromList)]
    fn files_from_list(file_list: &JsValue) -> Array;

    #[wasm_bindgen(js_name = filesFromDrop)]
    fn files_from_drop(data_transfer: &JsValue) -> Promise;

    #[wasm_bindgen(js_name = filesFromClipboard)]
    fn files_from_clipboard(event: &JsValue) -> Array;

    /// Whether a file name has an extension of an image format the engine decodes.
    #[wasm_bindgen(js_name = isImagePath)]
    pub fn is_image_path(path: &str) -> bool;

    #[wasm_bindgen(js_name = readBytes)]
    fn read_bytes_promise(file: &JsValue) -> Promise;

    /// Draws RGB bytes `[size, size, 3]` onto a canvas element.
    #[wasm_bindgen(js_name = drawCrop)]
    pub fn draw_crop(canvas: &JsValue, rgb: &[u8], size: u32);

    /// Whether the page URL has `test-hooks=1`.
    #[wasm_bindgen(js_name = testHooksEnabled)]
    pub fn test_hooks_enabled() -> bool;
}

/// A file the user picked, dropped or pasted.
#[derive(Clone, PartialEq)]
pub struct PickedFile {
    /// Path relative to the picked or dropped folder, or the bare file name.
    pub path: String,
    /// The JavaScript `File`.
    pub file: JsValue,
}

impl PickedFile {
    /// The last component of [`PickedFile::path`].
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Reads the whole file.
    pub async fn read(&self) -> Result<Vec<u8>, String> {
        let value = JsFuture::from(read_bytes_promise(&self.file))
            .await
            .map_err(|err| {
                format!(
                    "{} could not be read: {}",
                    self.path,
                    describe_js_error(&err)
                )
            })?;
        Ok(Uint8Array::new(&value).to_vec())
    }
}

/// Downloads `url`, calling `on_progress(loaded_bytes, total_bytes)` as bytes arrive
/// (`total_bytes` is 0 when the server sends no Content-Length).
pub async fn fetch_bytes(
    url: &str,
    on_progress: impl FnMut(f64, f64) + 'static,
) -> Result<Vec<u8>, String> {
    let on_progress = Closure::<dyn FnMut(f64, f64)>::new(on_progress);
    let value = JsFuture::from(fetch_with_progress(url, &on_progress))
        .await
        .map_err(|err| describe_js_error(&err))?;
    Ok(Uint8Array::new(&value).to_vec())
}

/// The files of an `<input type=file>` change event's target.
pub fn files_of_input(target: &JsValue) -> Vec<PickedFile> {
    let list = Reflect::get(target, &JsValue::from_str("files")).unwrap_or(JsValue::NULL);
    let files = picked_files(&files_from_list(&list));
    // Clearing the value lets the same file be picked again.
    let _ = Reflect::set(target, &JsValue::from_str("value"), &JsValue::from_str(""));
    files
}

/// The files of a drop event, with the contents of dropped folders. The entries are taken
/// when this is called, because a drop's DataTransfer empties once its handler returns.
pub fn files_of_drop(
    event: &JsValue,
) -> impl std::future::Future<Output = Result<Vec<PickedFile>, String>> + 'static {
    let data_transfer =
        Reflect::get(event, &JsValue::from_str("dataTransfer")).unwrap_or(JsValue::NULL);
    let promise = files_from_drop(&data_transfer);
    async move {
        let value = JsFuture::from(promise).await.map_err(|err| {
            format!(
                "the dropped files could not be read: {}",
                describe_js_error(&err)
            )
        })?;
        Ok(picked_files(&Array::from(&value)))
    }
}

/// The files of a paste event.
pub fn files_of_paste(event: &JsValue) -> Vec<PickedFile> {
    picked_files(&files_from_clipboard(event))
}

fn picked_files(items: &Array) -> Vec<PickedFile> {
    items
        .iter()
        .map(|item| PickedFile {
            path: Reflect::get(&item, &JsValue::from_str("path"))
                .ok()
                .and_then(|path| path.as_string())
                .unwrap_or_default(),
            file: Reflect::get(&item, &JsValue::from_str("file")).unwrap_or(JsValue::NULL),
        })
        .collect()
}

/// The message of a JavaScript error, or its string form.
pub fn describe_js_error(error: &JsValue) -> String {
    Reflect::get(error, &JsValue::from_str("message"))
        .ok()
        .and_then(|message| message.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}
