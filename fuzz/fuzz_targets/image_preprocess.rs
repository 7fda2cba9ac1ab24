//! Image decoding and preprocessing into a 224 x 224 crop.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ivit_fuzz::image_file(data);
});
