// Browser I/O for the Yew page (src/web/app.rs imports these functions through
// wasm-bindgen): downloads with byte progress, files from inputs, drops and the clipboard,
// and drawing the model's crop. Nothing here runs at import time, because the worker and
// the rayon pool's workers import the package too.

const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp'];

/** Downloads `url`, calling `onProgress(loadedBytes, totalBytes)` per chunk (total 0 when
 * the server sends no Content-Length); resolves to the body as a Uint8Array. */
export async function fetchWithProgress(url, onProgress) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`${url} could not be downloaded: HTTP ${response.status} ${response.statusText}`);
  }
  const total = Number(response.headers.get('Content-Length') ?? 0);
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  onProgress(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(loaded, total);
  }

  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** Lists a FileList as `{ path, file }`, the path relative to a picked folder when there is one. */
export function filesFromList(fileList) {
  return Array.from(fileList ?? [], (file) => ({ path: file.webkitRelativePath || file.name, file }));
}

/** Lists the files of a drop, walking dropped folders; must be called inside the drop
 * handler, because the DataTransfer empties once the handler returns. */
export function filesFromDrop(dataTransfer) {
  const entries = Array.from(dataTransfer?.items ?? [])
    .filter((item) => item.kind === 'file')
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.length === 0 || entries.some((entry) => entry === null)) {
    return Promise.resolve(filesFromList(dataTransfer?.files));
  }
  return Promise.all(entries.map((entry) => walkEntry(entry, ''))).then((lists) => lists.flat());
}

async function walkEntry(entry, prefix) {
  const path = prefix + entry.name;
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ path, file }];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    children.push(...batch);
  }
  const lists = await Promise.all(children.map((child) => walkEntry(child, `${path}/`)));
  return lists.flat();
}

/** Lists the files of a paste event. */
export function filesFromClipboard(event) {
  return filesFromList(event.clipboardData?.files);
}

/** Whether a file name has an image extension the engine decodes. */
export function isImagePath(path) {
  const extension = path.split('.').pop().toLowerCase();
  return IMAGE_EXTENSIONS.includes(extension);
}

/** Reads a File or Blob into a Uint8Array. */
export async function readBytes(file) {
  return new Uint8Array(await file.arrayBuffer());
}

/** Draws RGB bytes `[size, size, 3]` onto `canvas`. */
export function drawCrop(canvas, rgb, size) {
  if (!canvas || rgb.length !== size * size * 3) return;
  canvas.width = size;
  canvas.height = size;
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let pixel = 0; pixel < size * size; pixel += 1) {
    rgba[pixel * 4] = rgb[pixel * 3];
    rgba[pixel * 4 + 1] = rgb[pixel * 3 + 1];
    rgba[pixel * 4 + 2] = rgb[pixel * 3 + 2];
    rgba[pixel * 4 + 3] = 255;
  }
  canvas.getContext('2d').putImageData(new ImageData(rgba, size, size), 0, 0);
}

/** Whether the page URL has `test-hooks=1`. */
export function testHooksEnabled() {
  return new URLSearchParams(self.location.search).get('test-hooks') === '1';
}
