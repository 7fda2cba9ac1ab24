//! Safetensors parsing and float model loading.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ivit_fuzz::safetensors_file(data);
});
