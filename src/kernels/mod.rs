//! GEMMs and element-wise ops. The portable kernels are the definition of correct;
//! `float_simd128` holds wasm32 SIMD128 twins of the float ones.

pub mod float;
pub mod int_gemm;
pub mod isqrt;
pub mod shiftmax;
pub mod shiftgelu;
pub mod int_layernorm;
pub mod int_elementwise;
pub mod int_rows;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod float_simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes;
