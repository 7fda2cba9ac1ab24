//! Proof that the integer forward pass runs on integers only: the library is built for
//! wasm32 with the `float-audit` export (the untimed integer forward pass as the only
//! root), and every function reachable from that export is scanned for f32/f64
//! instructions, locals and signatures.
//!
//! Reachability follows direct calls, and for each indirect call every function in the
//! module's tables with the called signature, so the scan errs on the side of reporting.
//! Panics are built as immediate aborts, so panic-message formatting (which can format
//! floats) is not linked in. The check covers the graph from the u8 crop to the int32
//! logits; image decoding and resizing are outside it.
//!
//! Needs the pinned nightly toolchain with rust-src (installed by `cargo xtask setup`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use wasmparser::{CompositeInnerType, ElementItems, Operator, Parser, Payload, TypeRef, ValType};

const NIGHTLY: &str = "nightly-2026-05-20";
const EXPORT: &str = "ivit_audit_int_forward";
const CONTROL_EXPORT: &str = "ivit_audit_float_forward";

/// Immediate-abort panics, and SIMD128 as in the served packages, so that the scan covers
/// the SIMD128 kernels the browser runs.
const AUDIT_RUSTFLAGS: &str = "-Zunstable-options -Cpanic=immediate-abort -C target-feature=+simd128";

/// Builds the audit module with `features` (`float-audit`, or `float-audit-control` for
/// the control that exports the float forward pass instead).
fn build_audit_module(features: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target/float-audit");
    let status = Command::new("cargo")
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", AUDIT_RUSTFLAGS)
        .env_remove("RUSTFLAGS")
        .args([&format!("+{NIGHTLY}"), "rustc", "--lib", "--release", "--target", "wasm32-unknown-unknown"])
        .args(["--features", features, "--crate-type", "cdylib", "-Z", "build-std=std,panic_abort"])
        .status()
        .unwrap_or_else(|err| panic!("cannot run cargo +{NIGHTLY}: {err}; run `cargo xtask setup` first"));
    assert!(status.success(), "the float-audit wasm build failed; run `cargo xtask setup` to install {NIGHTLY} with rust-src");

    let wasm = target_dir.join("wasm32-unknown-unknown/release/ivit.wasm");
    std::fs::read(&wasm).unwrap_or_else(|err| panic!("read {}: {err}", wasm.display()))
}

/// What the scan needs from a module.
#[derive(Default)]
struct Module {
    /// Parameter and result types of each type index that is a function type.
    types: Vec<Vec<ValType>>,
    /// Type index of every function, imported ones first.
    function_types: Vec<u32>,
    imported_functions: u32,
    /// Functions placed in tables by element segments.
    table_functions: BTreeSet<u32>,
    exports: HashMap<String, u32>,
    /// For each defined function: callees, indirect-call type indices, and the first
    /// float use found, if any.
    bodies: Vec<(Vec<u32>, Vec<u32>, Option<String>)>,
    names: HashMap<u32, String>,
}

fn is_float(ty: &ValType) -> bool {
    matches!(ty, ValType::F32 | ValType::F64)
}

fn parse(wasm: &[u8]) -> Module {
    let mut module = Module::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("valid wasm") {
            Payload::TypeSection(reader) => {
                for group in reader.into_iter() {
                    for sub in group.expect("type group").into_types() {
                        let signature = match &sub.composite_type.inner {
                            CompositeInnerType::Func(func) => func.params().iter().chain(func.results()).copied().collect(),
                            _ => Vec::new(),
                        };
                        module.types.push(signature);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let TypeRef::Func(ty) = import.expect("import").ty {
                        module.function_types.push(ty);
                        module.imported_functions += 1;
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    module.function_types.push(ty.expect("function type"));
                }
            }
            Payload::ElementSection(reader) => {
                for element in reader {
                    if let ElementItems::Functions(functions) = element.expect("element").items {
                        for f in functions {
                            module.table_functions.insert(f.expect("element function"));
                        }
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.expect("export");
                    module.exports.insert(export.name.to_string(), export.index);
                }
            }
            Payload::CodeSectionEntry(body) => module.bodies.push(scan_body(&body)),
            Payload::CustomSection(section) if section.name() == "name" => {
                read_names(section.data(), section.data_offset(), &mut module.names)
            }
            _ => {}
        }
    }
    module
}

fn scan_body(body: &wasmparser::FunctionBody) -> (Vec<u32>, Vec<u32>, Option<String>) {
    let mut calls = Vec::new();
    let mut indirect = Vec::new();
    let mut float_use = None;

    for local in body.get_locals_reader().expect("locals") {
        let (_, ty) = local.expect("local");
        if is_float(&ty) && float_use.is_none() {
            float_use = Some(format!("a local of type {ty:?}"));
        }
    }

    let mut reader = body.get_operators_reader().expect("operators");
    while !reader.eof() {
        let op = reader.read().expect("operator");
        match op {
            Operator::Call { function_index } | Operator::ReturnCall { function_index } => calls.push(function_index),
            Operator::CallIndirect { type_index, .. } | Operator::ReturnCallIndirect { type_index, .. } => indirect.push(type_index),
            _ => {
                let name = format!("{op:?}");
                if float_use.is_none() && (name.contains("F32") || name.contains("F64")) {
                    float_use = Some(format!("instruction {name}"));
                }
            }
        }
    }
    (calls, indirect, float_use)
}

fn read_names(data: &[u8], offset: usize, names: &mut HashMap<u32, String>) {
    let reader = wasmparser::NameSectionReader::new(wasmparser::BinaryReader::new(data, offset));
    for subsection in reader.into_iter().flatten() {
        if let wasmparser::Name::Function(map) = subsection {
            for naming in map.into_iter().flatten() {
                names.insert(naming.index, naming.name.to_string());
            }
        }
    }
}

/// Walks the functions reachable from `root` and lists every float use among them;
/// returns the number of reachable functions and the violations.
fn float_uses_reachable_from(module: &Module, root: u32) -> (usize, Vec<String>) {
    let name_of = |f: u32| module.names.get(&f).cloned().unwrap_or_else(|| format!("function {f}"));
    let mut seen = BTreeSet::from([root]);
    let mut stack = vec![root];
    let mut violations = Vec::new();

    while let Some(f) = stack.pop() {
        let signature = &module.types[module.function_types[f as usize] as usize];
        if signature.iter().any(is_float) {
            violations.push(format!("{} has a float parameter or result", name_of(f)));
        }
        let Some(body_index) = f.checked_sub(module.imported_functions) else {
            continue;
        };
        let (calls, indirect, float_use) = &module.bodies[body_index as usize];
        if let Some(float_use) = float_use {
            violations.push(format!("{} uses {float_use}", name_of(f)));
        }

        let indirect_targets = module
            .table_functions
            .iter()
            .copied()
            .filter(|&g| indirect.iter().any(|&ty| module.function_types[g as usize] == ty));
        for callee in calls.iter().copied().chain(indirect_targets) {
            if seen.insert(callee) {
                stack.push(callee);
            }
        }
    }
    (seen.len(), violations)
}

#[test]
fn integer_forward_pass_has_no_float_instruction() {
    let module = parse(&build_audit_module("float-audit"));
    let root = *module.exports.get(EXPORT).unwrap_or_else(|| panic!("the audit module does not export {EXPORT}"));

    let (reachable, violations) = float_uses_reachable_from(&module, root);
    eprintln!("{reachable} functions reachable from {EXPORT}");
    assert!(reachable > 10, "only {reachable} functions reachable; the audit export is not the integer forward pass");
    assert!(violations.is_empty(), "float code reachable from the integer forward pass:\n{}", violations.join("\n"));

    let control_module = parse(&build_audit_module("float-audit-control"));
    let control = *control_module
        .exports
        .get(CONTROL_EXPORT)
        .unwrap_or_else(|| panic!("the control module does not export {CONTROL_EXPORT}"));
    let (control_reachable, control_violations) = float_uses_reachable_from(&control_module, control);
    eprintln!("{control_reachable} functions reachable from {CONTROL_EXPORT}, {} with float code", control_violations.len());
    assert!(!control_violations.is_empty(), "the scan found no float code in the float forward pass, so it cannot detect any");
}
