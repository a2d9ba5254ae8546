//! A Predict request as it arrives: the protobuf message bytes, through the
//! server's own validation and preprocessing, and the same bytes as a
//! `grpc-timeout` header. Whatever the bytes, the answer is pixels or an
//! error the client is to blame for (INVALID_ARGUMENT), never a panic or
//! INTERNAL.

#![no_main]

#[path = "../common.rs"]
mod common;

use common::LIMITS;
use libfuzzer_sys::fuzz_target;
use mnist::{IMAGE_PIXELS, proto::v1::PredictRequest};
use mnist_server::api::{classifier::prepare_input, parse_grpc_timeout};
use prost::Message;

fuzz_target!(|message: &[u8]| {
    if let Ok(header) = std::str::from_utf8(&message[..message.len().min(12)]) {
        let _ = parse_grpc_timeout(header);
    }
    let Ok(request) = PredictRequest::decode(message) else { return };
    match prepare_input(request.input, &LIMITS) {
        Ok(pixels) => assert_eq!(pixels.len(), IMAGE_PIXELS),
        Err(error) => assert_eq!(tonic::Status::from(error).code(), tonic::Code::InvalidArgument),
    }
});
