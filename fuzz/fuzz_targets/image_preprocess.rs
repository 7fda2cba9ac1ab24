//! Image decoding and preprocessing into a 224 x 224 crop.
//!
//! `ivit::image::decode_with_limits` catches a panic of the JPEG decoder (zune-jpeg fails
//! assertions on some malformed files) and returns an error. libFuzzer's panic hook aborts
//! on every panic, caught or not, so this target installs a hook that lets a panic raised
//! inside zune-jpeg unwind to that `catch_unwind`. Every other panic still goes to
//! libFuzzer's hook and aborts. A zune-jpeg panic that escapes the library is still a crash,
//! because `fuzz_target!` aborts when the closure unwinds.
#![no_main]

use std::collections::HashSet;
use std::panic::{self, PanicHookInfo};
use std::sync::Mutex;

/// Path fragment of the zune-jpeg sources (`.../zune-jpeg-<version>/src/...`).
const DECODER_SOURCE: &str = "/zune-jpeg-";

/// Panic locations already printed, so that each one is printed once per run.
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Wraps libFuzzer's aborting panic hook. A panic located in zune-jpeg is printed once per
/// location and left to unwind, and every other panic goes to libFuzzer's hook.
fn tolerate_decoder_panics() {
    let fuzzer_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
        let Some(location) = info
            .location()
            .filter(|at| at.file().contains(DECODER_SOURCE))
        else {
            return fuzzer_hook(info);
        };
        let place = location.to_string();
        let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(place.clone()) {
            eprintln!(
                "zune-jpeg panicked at {place} (the library turns this into an error): {}",
                payload_text(info)
            );
        }
    }));
}

fn payload_text(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

libfuzzer_sys::fuzz_target!(init: tolerate_decoder_panics(), |data: &[u8]| {
    let _ = ivit_fuzz::image_file(data);
});
