//! Where a unary call's time goes inside the server, beyond what the
//! handler sees: from the request's arrival to the handler (`receive`:
//! the body, protobuf decoding, the token check) and from the handler's
//! answer to the response's last frame (`respond`: protobuf encoding and
//! handing the frames to HTTP/2). The handler's own stages (`preprocess`,
//! queue wait, inference) are recorded where they happen; together they
//! break a lone request's latency down (`scripts/bench-ghz.sh`).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use tonic::{
    codegen::{BoxFuture, Service, http},
    server::NamedService,
};

use crate::metrics;

/// When the request reached the service (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// When the handler had its answer (a response extension).
#[derive(Debug, Clone, Copy)]
pub struct Answered(pub Instant);

/// Records the `receive` stage of a request that carries [`Arrived`].
pub fn received<T>(request: &tonic::Request<T>) {
    if let Some(Arrived(at)) = request.extensions().get::<Arrived>() {
        metrics::stage("receive", at.elapsed());
    }
}

/// Marks a response as answered now, for the `respond` stage.
pub fn answered<T>(mut response: tonic::Response<T>) -> tonic::Response<T> {
    response.extensions_mut().insert(Answered(Instant::now()));
    response
}

/// Wraps a gRPC service: stamps each request with [`Arrived`] and records
/// `respond` when a response marked [`Answered`] sends its last frame.
#[derive(Debug, Clone)]
pub struct CallTiming<S> {
    inner: S,
}

impl<S> CallTiming<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for CallTiming<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for CallTiming<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TimedBody<ResponseBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<RequestBody>) -> Self::Future {
        request.extensions_mut().insert(Arrived(Instant::now()));
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let answered = response.extensions().get::<Answered>().map(|a| a.0);
            Ok(response.map(|inner| TimedBody { inner, answered }))
        })
    }
}

/// A response body that records `respond` when its last frame is out.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    answered: Option<Instant>,
}

impl<B: Body + Unpin> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let last = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers(),
            _ => false,
        };
        if last && let Some(answered) = self.answered.take() {
            metrics::stage("respond", answered.elapsed());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
