//! The quantized model file (`.ivit`): a fixed header, then the model as a bincode
//! payload, protected by a CRC-32.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0      | 8    | magic `IVIT\0\r\n\x1a` (the line-ending bytes reveal text-mode corruption) |
//! | 8      | 4    | format version, [`FORMAT_VERSION`] |
//! | 12     | 4    | flags, 0 |
//! | 16     | 8    | payload length in bytes |
//! | 24     | 4    | CRC-32 (IEEE) of the payload |
//! | 28     | 4    | reserved, 0 |
//! | 32     | n    | payload: bincode 1 (fixed-width integers, little-endian) |

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// First bytes of every `.ivit` file.
pub const MAGIC: [u8; 8] = *b"IVIT\0\r\n\x1a";

/// Version written by this build; readers accept exactly this version.
pub const FORMAT_VERSION: u32 = 3;

const HEADER_LEN: usize = 32;

/// Why an `.ivit` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(".ivit file is {len} bytes, shorter than its {HEADER_LEN}-byte header; the file is truncated")]
    TooShort { len: usize },

    #[error("not an .ivit file (the first 8 bytes are {found:02x?}); a float model (.safetensors) goes to --model, and `ivit quantize` makes .ivit files")]
    BadMagic { found: Vec<u8> },

    #[error(".ivit format version {found} is not supported by this build, which reads version {FORMAT_VERSION}; quantize the model again with this version of ivit")]
    UnsupportedVersion { found: u32 },

    #[error(".ivit payload should be {expected} bytes but the file holds {actual}; the file is truncated or has extra bytes")]
    LengthMismatch { expected: u64, actual: usize },

    #[error(".ivit checksum mismatch (stored {stored:08x}, computed {computed:08x}); the file is corrupt, quantize the model again")]
    ChecksumMismatch { stored: u32, computed: u32 },

    #[error(".ivit payload is invalid: {reason}")]
    InvalidPayload { reason: String },
}

fn payload_options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian()
}

/// Serializes `model` into `.ivit` bytes.
pub fn encode<T: Serialize>(model: &T) -> Vec<u8> {
    let payload = payload_options().serialize(model).expect("in-memory serialization of plain data cannot fail");

    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// Checks the header and checksum of `.ivit` bytes and deserializes the model. Lengths
/// inside the payload cannot make the reader allocate more than the payload's size.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FormatError> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(FormatError::BadMagic { found: bytes[..magic_len].to_vec() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::TooShort { len: bytes.len() });
    }

    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { found: version });
    }

    let expected = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != expected {
        return Err(FormatError::LengthMismatch { expected, actual: payload.len() });
    }

    let stored = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch { stored, computed });
    }

    payload_options()
        .with_limit(payload.len() as u64)
        .reject_trailing_bytes()
        .deserialize(payload)
        .map_err(|err| FormatError::InvalidPayload { reason: err.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        weights: Vec<i8>,
        bias: Vec<i32>,
    }

    fn sample() -> Sample {
        Sample { name: "blocks.0.attn.qkv".into(), weights: vec![-128, 0, 127, 5], bias: vec![i32::MIN, 7] }
    }

    #[test]
    fn round_trip_preserves_value() {
        let bytes = encode(&sample());
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            let err = decode::<Sample>(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, FormatError::TooShort { .. } | FormatError::LengthMismatch { .. }),
                "length {len}: {err}"
            );
        }
    }

    #[test]
    fn flipped_payload_bit_fails_checksum() {
        let mut bytes = encode(&sample());
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        assert!(matches!(decode::<Sample>(&bytes), Err(FormatError::ChecksumMismatch { .. })));
    }

    #[test]
    fn future_version_is_rejected() {
        let mut bytes = encode(&sample());
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let err = decode::<Sample>(&bytes).unwrap_err();
        assert!(matches!(err, FormatError::UnsupportedVersion { found } if found == FORMAT_VERSION + 1));
        assert!(err.to_string().contains("quantize the model again"));
    }

    #[test]
    fn safetensors_bytes_are_not_ivit() {
        let err = decode::<Sample>(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}").unwrap_err();
        assert!(matches!(err, FormatError::BadMagic { .. }), "{err}");
    }

    #[test]
    fn valid_checksum_over_garbage_payload_is_invalid() {
        let garbage = vec![0xffu8; 40];
        let mut bytes = encode(&sample())[..HEADER_LEN].to_vec();
        bytes[16..24].copy_from_slice(&(garbage.len() as u64).to_le_bytes());
        bytes[24..28].copy_from_slice(&crc32fast::hash(&garbage).to_le_bytes());
        bytes.extend_from_slice(&garbage);
        assert!(matches!(decode::<Sample>(&bytes), Err(FormatError::InvalidPayload { .. })));
    }
}
