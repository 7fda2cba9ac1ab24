//! Inspection of built wasm modules: where their linear memory comes from and whether it
//! is shared between threads.

use anyhow::{bail, Context, Result};
use wasmparser::{Parser, Payload, TypeRef};

/// The first linear memory of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Whether the module imports the memory (rather than defining it).
    pub imported: bool,
    /// Whether the memory is declared `shared`, which threads need.
    pub shared: bool,
}

/// Finds the module's first memory, imported or defined; `None` when it has none.
pub fn first_memory(wasm: &[u8]) -> Result<Option<MemoryInfo>> {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.context("module is not valid WebAssembly")? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let TypeRef::Memory(memory) = import.context("import section is malformed")?.ty {
                        return Ok(Some(MemoryInfo {
                            imported: true,
                            shared: memory.shared,
                        }));
                    }
                }
            }
            Payload::MemorySection(reader) => {
                if let Some(memory) = reader.into_iter().next() {
                    let memory = memory.context("memory section is malformed")?;
                    return Ok(Some(MemoryInfo {
                        imported: false,
                        shared: memory.shared,
                    }));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Fails unless the module imports a shared memory, as wasm-bindgen-rayon's workers need.
pub fn require_imported_shared_memory(wasm: &[u8]) -> Result<()> {
    match first_memory(wasm)? {
        Some(MemoryInfo {
            imported: true,
            shared: true,
        }) => Ok(()),
        Some(memory) => bail!(
            "the threaded module's memory is {:?}, but it must be an imported shared memory; \
             check the -C link-arg=--shared-memory and --import-memory flags of the threaded build",
            memory
        ),
        None => bail!("the threaded module has no memory at all; the build did not link a wasm-bindgen module"),
    }
}

/// Fails if the module's memory is shared, which would stop it from loading on a page that
/// is not cross-origin isolated.
pub fn require_unshared_memory(wasm: &[u8]) -> Result<()> {
    match first_memory(wasm)? {
        Some(MemoryInfo { shared: true, .. }) => {
            bail!("the plain module has a shared memory; it would need cross-origin isolation, so build it without +atomics")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

    /// Builds a module whose only section imports `env.memory` with the given limits flags
    /// (bit 0: has maximum, bit 1: shared), minimum 1 page and maximum 2 pages.
    fn module_importing_memory(flags: u8) -> Vec<u8> {
        let mut body = vec![0x01]; // one import
        body.extend([0x03, b'e', b'n', b'v']);
        body.extend([0x06, b'm', b'e', b'm', b'o', b'r', b'y']);
        body.extend([0x02, flags, 0x01, 0x02]); // kind memory, limits
        section(0x02, body)
    }

    /// Builds a module that defines one memory with the given limits flags.
    fn module_defining_memory(flags: u8) -> Vec<u8> {
        section(0x05, vec![0x01, flags, 0x01, 0x02])
    }

    fn section(id: u8, body: Vec<u8>) -> Vec<u8> {
        let mut wasm = HEADER.to_vec();
        wasm.push(id);
        wasm.push(u8::try_from(body.len()).expect("test section is short"));
        wasm.extend(body);
        wasm
    }

    #[test]
    fn imported_shared_memory_is_found() {
        let wasm = module_importing_memory(0x03);
        assert_eq!(
            first_memory(&wasm).unwrap(),
            Some(MemoryInfo {
                imported: true,
                shared: true
            })
        );
        assert!(require_imported_shared_memory(&wasm).is_ok());
        assert!(require_unshared_memory(&wasm).is_err());
    }

    #[test]
    fn imported_unshared_memory_is_rejected() {
        let wasm = module_importing_memory(0x01);
        assert_eq!(
            first_memory(&wasm).unwrap(),
            Some(MemoryInfo {
                imported: true,
                shared: false
            })
        );
        let error = require_imported_shared_memory(&wasm).unwrap_err().to_string();
        assert!(error.contains("--shared-memory"), "unexpected message: {error}");
        assert!(require_unshared_memory(&wasm).is_ok());
    }

    #[test]
    fn defined_memory_is_not_imported() {
        let wasm = module_defining_memory(0x00);
        assert_eq!(
            first_memory(&wasm).unwrap(),
            Some(MemoryInfo {
                imported: false,
                shared: false
            })
        );
        assert!(require_imported_shared_memory(&wasm).is_err());
        assert!(require_unshared_memory(&wasm).is_ok());
    }

    #[test]
    fn module_without_memory() {
        assert_eq!(first_memory(&HEADER).unwrap(), None);
        assert!(require_imported_shared_memory(&HEADER).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(first_memory(b"not wasm at all").is_err());
    }
}
