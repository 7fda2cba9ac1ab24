//! An export that makes the untimed integer forward pass the only root of a wasm
//! module, so a test can prove that no float instruction is reachable from it.
//! Built only with the `float-audit` feature; never part of the served app.

use crate::model::integer::IntVit;

/// Runs [`IntVit::forward_untimed`] on `len` pixels at `crop` and writes the logits to
/// `logits`. Returns 0 on success, 1 on a kernel error.
///
/// # Safety
/// `model` must point to a valid [`IntVit`], `crop` to `len` readable bytes and
/// `logits` to `num_classes` writable i32 values.
#[cfg(not(feature = "float-audit-control"))]
#[no_mangle]
pub unsafe extern "C" fn ivit_audit_int_forward(model: *const IntVit, crop: *const u8, len: usize, logits: *mut i32) -> i32 {
    let model = &*model;
    let crop = std::slice::from_raw_parts(crop, len);
    match model.forward_untimed(crop) {
        Ok(values) => {
            std::ptr::copy_nonoverlapping(values.as_ptr(), logits, values.len());
            0
        }
        Err(_) => 1,
    }
}

/// The float forward pass behind the same kind of export, in a separate build (feature
/// `float-audit-control`): the control that shows the
/// scan finds float code when there is some.
///
/// # Safety
/// `model` must point to a valid [`crate::FloatVit`], `image` to `len` readable f32
/// values and `logits` to `num_classes` writable f32 values.
#[cfg(feature = "float-audit-control")]
#[no_mangle]
pub unsafe extern "C" fn ivit_audit_float_forward(model: *const crate::FloatVit, image: *const f32, len: usize, logits: *mut f32) {
    let model = &*model;
    let image = std::slice::from_raw_parts(image, len);
    let mut profiler = crate::Profiler::disabled(crate::PathKind::Float);
    let values = model.forward(image, &mut profiler);
    std::ptr::copy_nonoverlapping(values.as_ptr(), logits, values.len());
}
