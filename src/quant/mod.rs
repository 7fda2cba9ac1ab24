//! Integer arithmetic of the integer-only path: dyadic multipliers, rounding, calibration
//! observers.
pub mod observer;
pub mod dyadic;
