//! A Predict request as it arrives: the protobuf message bytes, through the
//! server's own validation and preprocessing, and the same bytes as a
//! `grpc-timeout` header. Whatever the bytes, the answer is pixels or an
//! error the client is to blame for (INVALID_ARGUMENT), never a panic or
//! INTERNAL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mnist::{IMAGE_PIXELS, preprocess::DecodeLimits, proto::v1::PredictRequest};
use mnist_server::service::{parse_grpc_timeout, prepare_input};
use prost::Message;

const LIMITS: DecodeLimits = DecodeLimits { max_encoded_bytes: 1 << 20, max_side: 2048, max_pixels: 1 << 20 };

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
