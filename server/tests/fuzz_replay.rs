//! Replays the request fuzzer's seeds and every input it ever crashed on
//! (`fuzz/seeds/request`, `fuzz/regressions/request`) through the same
//! checks as `fuzz/fuzz_targets/request.rs`, so that a fixed crash stays
//! fixed without needing nightly Rust or libFuzzer.

use std::path::Path;

use mnist::{IMAGE_PIXELS, preprocess::DecodeLimits, proto::v1::PredictRequest};
use mnist_server::service::{parse_grpc_timeout, prepare_input};
use prost::Message;

const LIMITS: DecodeLimits = DecodeLimits { max_encoded_bytes: 1 << 20, max_side: 2048, max_pixels: 1 << 20 };

fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(kind).join("request");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect()
}

#[test]
fn request_seeds_and_past_crashes_are_handled() {
    let seeds = inputs("seeds");
    assert!(seeds.len() >= 4, "the request seeds are missing");
    for (name, message) in seeds.into_iter().chain(inputs("regressions")) {
        if let Ok(header) = std::str::from_utf8(&message[..message.len().min(12)]) {
            let _ = parse_grpc_timeout(header);
        }
        let Ok(request) = PredictRequest::decode(&message[..]) else { continue };
        match prepare_input(request.input, &LIMITS) {
            Ok(pixels) => assert_eq!(pixels.len(), IMAGE_PIXELS, "{name}"),
            Err(error) => assert_eq!(tonic::Status::from(error).code(), tonic::Code::InvalidArgument, "{name}"),
        }
    }
}
