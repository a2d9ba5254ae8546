//! The status of a request message over `--max-message-bytes`, or one
//! that is not valid protobuf.
//!
//! A message that does not decode (a string field that is not UTF-8,
//! truncated fields) is the client's error, but tonic answers it INTERNAL,
//! which tells a client the server broke and invites a retry: it becomes
//! INVALID_ARGUMENT with the decoder's reason.
//!
//! tonic refuses such a message before buffering it (good) with
//! OUT_OF_RANGE and a message that does not name the setting. gRPC's other
//! implementations (C core, Go, Java) answer RESOURCE_EXHAUSTED, which is
//! what clients and ghz reports expect, so the status is rewritten here:
//! for `Predict` streams by the service, which sees the decoding error, and
//! for unary calls by [`MessageLimit`], which sees tonic's answer (the
//! status is in the headers of a trailers-only answer, else in the
//! trailers).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use tonic::{
    Status,
    codegen::{BoxFuture, Service, http},
    server::NamedService,
};

/// The status for a message of `found` bytes, over `limit`.
pub fn too_large(found: Option<usize>, limit: usize) -> Status {
    let size = found.map_or_else(|| "larger than".to_string(), |n| format!("{n} bytes;"));
    Status::resource_exhausted(format!(
        "request message is {size} the limit is {limit} bytes (--max-message-bytes); send a smaller image"
    ))
}

/// Rewrites a status from tonic's decoder; other statuses pass unchanged.
pub fn rewrite(status: Status, limit: usize) -> Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("message length too large") {
        too_large(found_bytes(status.message()), limit)
    } else if status.code() == tonic::Code::Internal && status.message().starts_with(PROST_DECODE_ERROR) {
        Status::invalid_argument(format!("request message is not valid: {}", status.message()))
    } else {
        status
    }
}

/// How prost's decode errors begin (tonic passes them on as INTERNAL).
const PROST_DECODE_ERROR: &str = "failed to decode Protobuf message";

/// The `N` in tonic's "found N bytes".
fn found_bytes(message: &str) -> Option<usize> {
    let rest = &message[message.find("found ")? + "found ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Wraps a gRPC service so that its OUT_OF_RANGE "message too large"
/// answers become [`too_large`].
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> MessageLimit<S> {
    /// Wraps `inner`, whose decoding limit is `limit` bytes.
    pub fn new(inner: S, limit: usize) -> Self {
        Self { inner, limit }
    }
}

impl<S: NamedService> NamedService for MessageLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, Request, ResponseBody> Service<Request> for MessageLimit<S>
where
    S: Service<Request, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RewriteTrailers<ResponseBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (future, limit) = (self.inner.call(request), self.limit);
        Box::pin(async move {
            let mut response = future.await?;
            rewrite_headers(response.headers_mut(), limit);
            Ok(response.map(|inner| RewriteTrailers { inner, limit }))
        })
    }
}

/// A response body whose trailers get the same rewrite (`rewrite_headers`).
#[derive(Debug)]
pub struct RewriteTrailers<B> {
    inner: B,
    limit: usize,
}

impl<B: Body + Unpin> Body for RewriteTrailers<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let limit = self.limit;
        Pin::new(&mut self.inner).poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        rewrite_headers(&mut trailers, limit);
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Rewrites an OUT_OF_RANGE "message too large" status in headers or
/// trailers; anything else is left alone.
fn rewrite_headers(headers: &mut http::HeaderMap, limit: usize) {
    let Some(status) = Status::from_header_map(headers) else { return };
    let code = status.code();
    if code != tonic::Code::OutOfRange && code != tonic::Code::Internal {
        return;
    }
    let rewritten = rewrite(status, limit);
    if rewritten.code() != code {
        // Replaces grpc-status and grpc-message (percent-encoded as gRPC wants).
        let _ = rewritten.add_header(headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_limit_errors_become_resource_exhausted_with_the_flag() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 5000001 bytes, the limit is: 4194304 bytes",
        );
        let status = rewrite(tonic, 4194304);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("5000001 bytes") && status.message().contains("--max-message-bytes"));

        let other = rewrite(Status::out_of_range("something else"), 1);
        assert_eq!(other.code(), tonic::Code::OutOfRange);

        let mut headers = http::HeaderMap::new();
        Status::out_of_range("Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes")
            .add_header(&mut headers)
            .unwrap();
        rewrite_headers(&mut headers, 8);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("9 bytes; the limit is 8 bytes"), "{status:?}");
    }

    #[test]
    fn undecodable_messages_are_invalid_argument_and_other_internal_errors_stay() {
        let tonic = Status::internal(
            "failed to decode Protobuf message: PredictRequest.id: invalid string value: data is not UTF-8 encoded",
        );
        let status = rewrite(tonic, 8);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("not UTF-8"), "{status:?}");
        let mut headers = http::HeaderMap::new();
        Status::internal("failed to decode Protobuf message: buffer underflow").add_header(&mut headers).unwrap();
        rewrite_headers(&mut headers, 8);
        assert_eq!(Status::from_header_map(&headers).unwrap().code(), tonic::Code::InvalidArgument);
        assert_eq!(rewrite(Status::internal("inference failed"), 8).code(), tonic::Code::Internal);
    }
}
