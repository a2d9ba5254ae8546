//! What the fuzz targets and the tests that replay their inputs share: the
//! decoding limits the targets run with, and the stored inputs (seeds and
//! every input that once crashed) of a target. Included by path, since the
//! fuzz crate and the workspace's tests are built separately.

#![allow(dead_code)]

use std::path::Path;

use mnist::preprocess::DecodeLimits;

/// Small limits keep each run fast; the checks are the same as the server's.
pub const LIMITS: DecodeLimits = DecodeLimits { max_encoded_bytes: 1 << 20, max_side: 2048, max_pixels: 1 << 20 };

/// Every file of `<fuzz_dir>/seeds/<target>` and `<fuzz_dir>/regressions/<target>`,
/// with its path.
pub fn stored_inputs(fuzz_dir: &Path, target: &str) -> Vec<(String, Vec<u8>)> {
    ["seeds", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz_dir.join(kind).join(target)).ok())
        .flatten()
        .map(|entry| {
            let path = entry.expect("readable fuzz input directory").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect()
}

/// The check of the `oip_request` target, shared with its replay test. The
/// first byte picks the front: even, the rest is a protobuf
/// `ModelInferRequest` (gRPC); odd, an HTTP body, whose JSON part is the
/// whole rest (`& 2 == 0`) or as long as the next two bytes say (little
/// endian, as `Inference-Header-Content-Length`), binary tensor data after
/// it. Whatever the bytes, parsing and then preparing every image must end
/// in images of 784 values or in INVALID_ARGUMENT, never a panic. Returns
/// how many images were prepared.
pub fn check_oip_request(data: &[u8]) -> usize {
    use mnist_server::{
        api::{http::parse_infer_body, inference::parse_tensors},
        core::prepare_image,
        error::ServerError,
    };
    use prost::Message;

    let invalid = |error: ServerError| assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
    let Some((&selector, rest)) = data.split_first() else { return 0 };
    let parsed = if selector % 2 == 0 {
        let Ok(request) = mnist::proto::inference::ModelInferRequest::decode(rest) else { return 0 };
        parse_tensors(request).map(|parsed| parsed.request)
    } else if selector & 2 == 0 {
        parse_infer_body(None, rest.to_vec().into()).map(|parsed| parsed.request)
    } else {
        let Some((length, body)) = rest.split_first_chunk::<2>() else { return 0 };
        let length = u16::from_le_bytes(*length).to_string();
        parse_infer_body(Some(length.as_bytes()), body.to_vec().into()).map(|parsed| parsed.request)
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
        match prepare_image(image, &LIMITS) {
            Ok(image) => {
                assert_eq!(image.len(), mnist::IMAGE_PIXELS);
                prepared += 1;
            }
            Err(error) => invalid(error),
        }
    }
    prepared
}
