//! Replays the request fuzzers' seeds and every input they ever crashed on
//! (`fuzz/seeds/{request,oip_request}`, `fuzz/regressions/...`) through the same
//! checks as `fuzz/fuzz_targets/{request,oip_request}.rs`, so that a fixed crash stays
//! fixed without needing nightly Rust or libFuzzer.

#[path = "../../fuzz/common.rs"]
mod fuzz;
#[path = "../../fuzz/oip.rs"]
mod oip;

use std::path::Path;

use fuzz::{LIMITS, stored_inputs};
use mnist::{IMAGE_PIXELS, proto::v1::PredictRequest};
use mnist_server::api::{classifier::prepare_input, parse_grpc_timeout};
use prost::Message;

#[test]
fn request_seeds_and_past_crashes_are_handled() {
    let inputs = stored_inputs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz"), "request");
    let seeds = inputs.iter().filter(|(name, _)| name.contains("/seeds/")).count();
    assert!(seeds >= 4, "the request seeds are missing");
    for (name, message) in inputs {
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

#[test]
fn oip_request_seeds_and_past_crashes_are_handled() {
    let inputs = stored_inputs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz"), "oip_request");
    let seeds = inputs.iter().filter(|(name, _)| name.contains("/seeds/")).count();
    assert!(seeds >= 5, "the oip_request seeds are missing");
    for (name, data) in inputs {
        let prepared = oip::check_oip_request(&data, &LIMITS);
        if name.contains("wrapped-shape") {
            // A shape of 2^60 + 1 images of 784 pixels, whose size wraps a
            // machine word to one image's: refused, not read as one image.
            assert_eq!(prepared, 0, "{name} was read");
            continue;
        }
        // The seeds are valid requests: a seed that stopped parsing would
        // leave the fuzzer starting from nothing.
        assert!(!name.contains("/seeds/") || prepared > 0, "{name} no longer parses");
    }
}
