//! `.ivit` parsing, validation and the forward pass of small accepted models.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ivit_fuzz::ivit_file(data);
});
