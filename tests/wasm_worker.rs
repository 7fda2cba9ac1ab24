//! The worker's request handler and the message protocol, in the browser.
#![cfg(target_arch = "wasm32")]

use ivit::web::protocol::{
    from_js, to_js, Mode, Request, RequestMessage, Response, ResponseMessage,
};
use ivit::web::{bench, memory, WorkerEngine};
use ivit::PathKind;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn get(value: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(value, &JsValue::from_str(key)).unwrap()
}

#[wasm_bindgen_test]
fn init_reports_pool_size_and_simd() {
    let mut engine = WorkerEngine::new(false);
    let response = engine.respond(Request::Init);
    // The wasm unit tests run the build without threads, where rayon runs on the caller.
    assert_eq!(
        response,
        Response::Initialized {
            threads: 1,
            simd: cfg!(target_feature = "simd128"),
            test_hooks: false,
        }
    );
}

#[wasm_bindgen_test]
fn request_bytes_cross_as_uint8_array() {
    let message = RequestMessage {
        id: 42,
        request: Request::LoadModel {
            bytes: vec![1, 2, 255],
        },
    };
    let value = to_js(&message).unwrap();

    assert_eq!(get(&value, "id").as_f64(), Some(42.0));
    let bytes = get(&get(&get(&value, "request"), "LoadModel"), "bytes");
    let array = bytes
        .dyn_into::<js_sys::Uint8Array>()
        .expect("bytes arrive as a Uint8Array");
    assert_eq!(array.to_vec(), vec![1, 2, 255]);

    assert_eq!(from_js::<RequestMessage>(value).unwrap(), message);
}

#[wasm_bindgen_test]
fn handle_answers_init_with_the_request_id() {
    let mut engine = WorkerEngine::new(false);
    let request = to_js(&RequestMessage {
        id: 7,
        request: Request::Init,
    })
    .unwrap();
    let reply: ResponseMessage = from_js(engine.handle(request)).unwrap();

    assert_eq!(reply.id, Some(7));
    assert!(
        matches!(reply.response, Response::Initialized { .. }),
        "{reply:?}"
    );
}

#[wasm_bindgen_test]
fn handle_rejects_unknown_request_and_keeps_id() {
    let mut engine = WorkerEngine::new(false);
    let message = js_sys::JSON::parse(r#"{"id": 9, "request": "Explode"}"#).unwrap();
    let reply: ResponseMessage = from_js(engine.handle(message)).unwrap();

    assert_eq!(reply.id, Some(9));
    let Response::Error { message } = reply.response else {
        panic!("expected an error, got {:?}", reply.response);
    };
    assert!(
        message.contains("not a valid protocol message"),
        "{message}"
    );
}

#[wasm_bindgen_test]
fn load_model_rejects_bytes_that_are_not_safetensors() {
    let mut engine = WorkerEngine::new(false);
    let response = engine.respond(Request::LoadModel { bytes: vec![0; 4] });
    let Response::Error { message } = response else {
        panic!("expected an error, got {response:?}");
    };
    assert!(
        message.starts_with("the float model could not be loaded"),
        "{message}"
    );
}

#[wasm_bindgen_test]
fn classify_without_model_asks_for_one() {
    let engine_response = WorkerEngine::new(false).respond(Request::Classify {
        image: vec![1, 2, 3],
        mode: Mode::Float,
    });
    let Response::Error { message } = engine_response else {
        panic!("expected an error, got {engine_response:?}");
    };
    assert!(
        message.contains("the float model is not loaded"),
        "{message}"
    );
}

#[wasm_bindgen_test]
fn load_model_reads_ivit_magic_as_integer_model() {
    let mut bytes = ivit::model::format::MAGIC.to_vec();
    bytes.extend_from_slice(&[7; 32]);
    let response = WorkerEngine::new(false).respond(Request::LoadModel { bytes });
    let Response::Error { message } = response else {
        panic!("expected an error, got {response:?}");
    };
    assert!(
        message.starts_with("the integer model could not be loaded"),
        "{message}"
    );
}

#[wasm_bindgen_test]
fn predict_without_model_asks_to_wait() {
    let response = WorkerEngine::new(false).respond(Request::Predict {
        image: vec![1, 2, 3],
    });
    let Response::Error { message } = response else {
        panic!("expected an error, got {response:?}");
    };
    assert!(message.contains("no model is loaded yet"), "{message}");
}

#[wasm_bindgen_test]
fn test_hooks_need_the_flag() {
    let mut engine = WorkerEngine::new(false);
    let hooks = [
        Request::Panic,
        Request::IntLogits { crop: vec![0; 12] },
        Request::FloatLogits { input: vec![0; 12] },
        Request::ExhaustMemory,
        Request::MemoryUsage,
        Request::TimeForward {
            image: vec![1, 2, 3],
            path: PathKind::Int,
        },
        Request::PeakMacs { rounds: 1 },
    ];
    for request in hooks {
        let response = engine.respond(request);
        let Response::Error { message } = response else {
            panic!("expected an error, got {response:?}");
        };
        assert!(message.contains("?test-hooks=1"), "{message}");
    }
}

#[wasm_bindgen_test]
fn int_logits_need_integer_model() {
    let response = WorkerEngine::new(true).respond(Request::IntLogits { crop: vec![0; 12] });
    let Response::Error { message } = response else {
        panic!("expected an error, got {response:?}");
    };
    assert!(message.contains("integer model is not loaded"), "{message}");
}

#[wasm_bindgen_test]
fn float_logits_need_float_model() {
    let response = WorkerEngine::new(true).respond(Request::FloatLogits { input: vec![0; 12] });
    let Response::Error { message } = response else {
        panic!("expected an error, got {response:?}");
    };
    assert!(message.contains("float model is not loaded"), "{message}");
}

#[wasm_bindgen_test]
fn response_without_fatal_field_is_not_fatal() {
    let value =
        js_sys::JSON::parse(r#"{"id": 3, "response": {"Error": {"message": "x"}}}"#).unwrap();
    let reply: ResponseMessage = from_js(value).unwrap();
    assert!(!reply.fatal);

    let value = js_sys::JSON::parse(
        r#"{"id": null, "response": {"Error": {"message": "x"}}, "fatal": true}"#,
    )
    .unwrap();
    let reply: ResponseMessage = from_js(value).unwrap();
    assert!(reply.fatal);
}

#[wasm_bindgen_test]
fn mode_crosses_as_lowercase_string() {
    let message = RequestMessage {
        id: 1,
        request: Request::Classify {
            image: vec![1],
            mode: Mode::Compare,
        },
    };
    let value = to_js(&message).unwrap();
    let mode = get(&get(&get(&value, "request"), "Classify"), "mode");
    assert_eq!(mode.as_string().as_deref(), Some("compare"));
}

#[wasm_bindgen_test]
fn memory_usage_follows_memory_growth() {
    let mut engine = WorkerEngine::new(true);
    let before = memory::wasm_memory_bytes();
    assert_eq!(
        engine.respond(Request::MemoryUsage),
        Response::MemoryUsage { wasm_bytes: before }
    );

    let previous_pages = core::arch::wasm32::memory_grow(0, 3);
    assert_ne!(previous_pages, usize::MAX, "the memory could not grow by 3 pages");
    assert_eq!(previous_pages as f64 * 65_536.0, before);
    assert_eq!(
        engine.respond(Request::MemoryUsage),
        Response::MemoryUsage {
            wasm_bytes: before + 3.0 * 65_536.0
        }
    );
}

#[wasm_bindgen_test]
fn failed_allocation_is_recorded() {
    // Blocks under isize::MAX (2 GiB on wasm32), so each one reaches the allocator; the
    // 4 GiB memory holds at most two.
    const BLOCK_BYTES: usize = 1_900_000_000;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut failed = false;
    for _ in 0..4 {
        let mut block = Vec::<u8>::new();
        if block.try_reserve_exact(BLOCK_BYTES).is_err() {
            failed = true;
            break;
        }
        blocks.push(block);
    }

    assert!(failed, "{} blocks of {BLOCK_BYTES} bytes fit", blocks.len());
    assert_eq!(memory::failed_allocation_bytes(), BLOCK_BYTES as f64);
}

#[wasm_bindgen_test]
fn time_forward_needs_its_model() {
    let response = WorkerEngine::new(true).respond(Request::TimeForward {
        image: vec![1, 2, 3],
        path: PathKind::Float,
    });
    let Response::Error { message } = response else {
        panic!("expected an error, got {response:?}");
    };
    assert!(message.contains("float model is not loaded"), "{message}");
}

/// Computes [`bench::dot_loop`] on scalars: each accumulator lane adds the dot product of
/// its own two i16 halves with two lanes of `b`, wrapping.
fn dot_loop_scalar(rounds: u32) -> [i32; 4] {
    let b: [i16; 8] = [3, -5, 7, -11, 13, -17, 19, -23];
    let mut chains = [[0i32; 4]; bench::CHAINS];
    for (index, chain) in chains.iter_mut().enumerate() {
        *chain = [index as i32 + 1; 4];
    }
    for _ in 0..rounds {
        for chain in chains.iter_mut() {
            let halves: Vec<i16> = chain
                .iter()
                .flat_map(|lane| [*lane as i16, (*lane >> 16) as i16])
                .collect();
            for lane in 0..4 {
                let dot = i32::from(halves[2 * lane]) * i32::from(b[2 * lane])
                    + i32::from(halves[2 * lane + 1]) * i32::from(b[2 * lane + 1]);
                chain[lane] = chain[lane].wrapping_add(dot);
            }
        }
    }
    chains
        .iter()
        .fold([0; 4], |acc, chain| std::array::from_fn(|lane| acc[lane] ^ chain[lane]))
}

#[cfg(target_feature = "simd128")]
#[wasm_bindgen_test]
fn dot_loop_matches_scalar_model() {
    use core::arch::wasm32::i32x4_extract_lane;

    for rounds in [0, 1, 2, 37, 1000] {
        let result = bench::dot_loop(rounds);
        let lanes = [
            i32x4_extract_lane::<0>(result),
            i32x4_extract_lane::<1>(result),
            i32x4_extract_lane::<2>(result),
            i32x4_extract_lane::<3>(result),
        ];
        assert_eq!(lanes, dot_loop_scalar(rounds), "{rounds} rounds");
    }
    assert_eq!(bench::dot_loop_macs(1000), 1000 * bench::CHAINS as u64 * 8);
}

/// A PNG of an 8-bit RGB image of `width` x `height` pixels with no image data.
fn header_only_png(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(&b"IHDR"[..], header), (&b"IEND"[..], Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let body = [kind, &data].concat();
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    }
    png
}

#[wasm_bindgen_test]
fn large_rgb_png_reports_its_size() {
    // Within the side limit and over the pixel limit. On wasm32 the PNG decoder rejects
    // its 2.7 GB of RGB while it reads the header, as a memory limit.
    let err = ivit::image::decode(&header_only_png(30_000, 30_000)).unwrap_err();
    assert!(
        matches!(
            err,
            ivit::image::ImageError::TooLarge {
                width: 30_000,
                height: 30_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("30000 x 30000"), "{err}");
}
