//! The module's WebAssembly linear memory: its size, an allocator that records the
//! allocation it could not satisfy, and the test hook that exhausts the memory.
//!
//! The page and every worker instantiate the module separately, so each has its own
//! memory, except that the rayon workers of the threaded build share their parent
//! worker's memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use wasm_bindgen::prelude::*;

/// Bytes in one WebAssembly page.
const WASM_PAGE_BYTES: f64 = 65_536.0;

/// Size of the blocks [`exhaust_memory`] allocates. A smaller last allocation may still fit
/// when this one fails, so the memory ends within one block of its maximum.
const EXHAUST_BLOCK_BYTES: usize = 64 << 20;

/// Size in bytes of the last allocation that failed; 0 while none has failed.
static FAILED_ALLOCATION_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator (dlmalloc on wasm32), plus a record of the size of any allocation
/// it cannot satisfy. The standard library aborts on such a failure, which is a trap in
/// WebAssembly, and `web/worker.js` reads the record to tell the user that the engine ran
/// out of memory rather than that it trapped.
struct RecordingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`.
unsafe impl GlobalAlloc for RecordingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_failure(System.alloc(layout), layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record_failure(System.alloc_zeroed(layout), layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_failure(System.realloc(ptr, layout, new_size), new_size)
    }
}

#[global_allocator]
static ALLOCATOR: RecordingAllocator = RecordingAllocator;

fn record_failure(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        FAILED_ALLOCATION_BYTES.store(size, Ordering::Relaxed);
    }
    ptr
}

/// Size of this module's linear memory in bytes (`memory.buffer.byteLength`). Linear
/// memory only grows, so this is the high-water mark of the module's heap.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    core::arch::wasm32::memory_size(0) as f64 * WASM_PAGE_BYTES
}

/// Size in bytes of the last allocation that failed, 0 when none failed. Reads one atomic
/// and nothing else, so JavaScript may call it after the module trapped.
#[wasm_bindgen(js_name = failedAllocationBytes)]
pub fn failed_allocation_bytes() -> f64 {
    FAILED_ALLOCATION_BYTES.load(Ordering::Relaxed) as f64
}

/// Allocates blocks of [`EXHAUST_BLOCK_BYTES`] and keeps them until an allocation fails,
/// which aborts the module (a trap). The blocks are never written, so the browser commits
/// little physical memory for them.
pub fn exhaust_memory() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = Vec::<u8>::with_capacity(EXHAUST_BLOCK_BYTES);
        blocks.push(std::hint::black_box(block));
    }
}
