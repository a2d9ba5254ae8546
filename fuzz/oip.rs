//! The check of the `oip_request` target, shared with its replay test
//! (server/tests/fuzz_replay.rs). Apart from common.rs because it needs
//! `mnist-server`, which the root crate's replay test cannot use. Included by
//! path, like common.rs.

use mnist::preprocess::DecodeLimits;

/// The first byte picks the front: even, the rest is a protobuf
/// `ModelInferRequest` (gRPC); odd, an HTTP body, whose JSON part is the
/// whole rest (`& 2 == 0`) or as long as the next two bytes say (little
/// endian, as `Inference-Header-Content-Length`), binary tensor data after
/// it (its third bit: for the reading model). Whatever the bytes, parsing and then preparing every image must end
/// in images of 784 values or in INVALID_ARGUMENT, never a panic. Returns
/// how many images were prepared (decoded within `limits`).
pub fn check_oip_request(data: &[u8], limits: &DecodeLimits) -> usize {
    use mnist_server::{
        api::{http::parse_infer_body, inference::parse_tensors, oip::Task},
        core::prepare_image,
        error::ServerError,
    };
    use prost::Message;

    let invalid = |error: ServerError| assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
    let Some((&selector, rest)) = data.split_first() else { return 0 };
    // An HTTP body's model comes from its path: the selector's third bit.
    let task = if selector & 4 == 0 { Task::Classify } else { Task::Read };
    let parsed = if selector % 2 == 0 {
        let Ok(request) = mnist::proto::inference::ModelInferRequest::decode(rest) else { return 0 };
        parse_tensors(request).map(|parsed| parsed.request)
    } else if selector & 2 == 0 {
        parse_infer_body(None, rest.to_vec().into(), task).map(|parsed| parsed.request)
    } else {
        let Some((length, body)) = rest.split_first_chunk::<2>() else { return 0 };
        let length = u16::from_le_bytes(*length).to_string();
        parse_infer_body(Some(length.as_bytes()), body.to_vec().into(), task).map(|parsed| parsed.request)
    };
    let request = match parsed {
        Ok(request) => request,
        Err(error) => {
            invalid(error);
            return 0;
        }
    };
    let mut prepared = 0;
    for image in request.images {
        match prepare_image(image, limits) {
            Ok(image) => {
                for image in image.image.iter().chain(&image.other_polarity) {
                    assert_eq!(image.len(), mnist::IMAGE_PIXELS);
                }
                assert_eq!(image.image.is_none(), image.notes.no_digit);
                prepared += 1;
            }
            Err(error) => invalid(error),
        }
    }
    prepared
}
