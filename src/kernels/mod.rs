//! GEMMs and element-wise ops. `scalar` holds the portable reference kernels, the
//! definition of correct.

pub mod float;
pub mod int_gemm;
pub mod isqrt;
pub mod shiftmax;
pub mod shiftgelu;
pub mod int_layernorm;
pub mod int_elementwise;
