//! The HTTP plumbing both HTTP fronts share (the Open Inference Protocol's
//! REST API, [`super::http`], and the web page's JSON API, [`super::web`]):
//! errors as `{"error": "..."}`, the bearer-token check, extractors whose
//! rejections answer the same way, and reading a request's body within
//! bounds.
//!
//! A body is read whole before its request can be admitted, so reading is
//! where one client could make the server hold memory for nothing. Three
//! bounds keep that work small, whatever the clients do:
//! - a `Content-Length` over `--max-message-bytes` is answered 413 before a
//!   byte of the body is read;
//! - the bytes of bodies being received past their first [`SMALL_BODY`]
//!   share one budget server-wide ([`BODY_BUDGET_MESSAGES`] largest
//!   messages), drawn as the bytes arrive: a body that would overdraw it is
//!   refused with 429, so a crowd of large uploads cannot hold more than
//!   the budget. A trickling client holds only what it has sent, and small
//!   bodies (JSON pixels, a phone photo's thumbnail) are never refused for
//!   the budget: they are bounded by `--max-http-connections` x
//!   [`SMALL_BODY`];
//! - a body must arrive whole within `--http-body-timeout` (20 s by
//!   default): a client trickling it is answered 408 and its memory freed.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{auth::BearerAuth, error::ServerError};

/// Bodies being received hold at most this many of the largest messages'
/// bytes between them (past the first [`SMALL_BODY`] of each).
pub const BODY_BUDGET_MESSAGES: usize = 8;

/// The bytes of each body that do not count against the budget.
pub const SMALL_BODY: usize = 64 * 1024;

/// An error as both HTTP fronts answer it: `{"error": "..."}` with the HTTP
/// code of its gRPC status.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A request the routing could not take apart (its path or query).
    fn rejected(what: &str, reason: impl std::fmt::Display) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: format!("invalid {what}: {reason}") }
    }

    /// A route that does not exist.
    pub fn not_found(message: &str) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.to_string() }
    }

    /// A route that exists, called with another method.
    pub async fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "this route does not take that method (the inference routes take POST, the others GET)".into(),
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(error: ServerError) -> Self {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, message: error.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Refuses a request without the bearer token (when the server has one).
pub async fn require_token(State(auth): State<BearerAuth>, request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    match auth.authorize(authorization) {
        Ok(()) => next.run(request).await,
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// axum's `Query`, refused as `{"error": ...}` (400) rather than plain text.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| Self(query.0))
            .map_err(|rejection| ApiError::rejected("query", rejection.body_text()))
    }
}

/// axum's `Path`, refused as `{"error": ...}` (400) rather than plain text.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| Self(path.0))
            .map_err(|rejection| ApiError::rejected("path", rejection.body_text()))
    }
}

/// Reads request bodies within the bounds of the module documentation.
/// Cheap to clone: the budget is shared.
#[derive(Clone)]
pub struct BodyReader {
    limit: usize,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    deadline: Duration,
}

impl BodyReader {
    /// Bodies of at most `limit` bytes, [`BODY_BUDGET_MESSAGES`] of them
    /// received at once at the most, each within `deadline`.
    pub fn new(limit: usize, deadline: Duration) -> Self {
        Self::with(limit, limit.saturating_mul(BODY_BUDGET_MESSAGES), deadline)
    }

    /// Any bounds (tests).
    pub fn with(limit: usize, budget_bytes: usize, deadline: Duration) -> Self {
        // One body of the largest size must fit.
        let budget_bytes = budget_bytes.max(limit.saturating_sub(SMALL_BODY)).clamp(1, Semaphore::MAX_PERMITS);
        Self { limit, budget: Arc::new(Semaphore::new(budget_bytes)), budget_bytes, deadline }
    }

    /// The largest body accepted.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A request's whole body: 413 past the limit (from `Content-Length`
    /// before reading when it says so), 429 when its bytes past
    /// [`SMALL_BODY`] would overdraw the budget the bodies being received
    /// share, 408 when it does not arrive in time, 400 when it is cut off
    /// or malformed.
    pub async fn read(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ServerError> {
        let limit = self.limit;
        let declared = match headers.get(header::CONTENT_LENGTH) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| ServerError::BadBody("Content-Length is not a byte count".into()))?,
            ),
        };
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(ServerError::BodyTooLarge { limit });
        }
        // Read into one buffer of the announced size: collecting the frames
        // and then joining them would hold the body twice.
        let capacity = declared.map_or(0, |length| length as usize);
        tokio::time::timeout(self.deadline, self.read_whole(body, capacity))
            .await
            .map_err(|_| ServerError::BodyDeadline { seconds: self.deadline.as_secs_f64() })?
    }

    /// The body's bytes, refused past the limit or the budget as they arrive.
    async fn read_whole(&self, mut body: Body, capacity: usize) -> Result<Bytes, ServerError> {
        let mut whole = Vec::with_capacity(capacity);
        // The budget this body draws on, for its bytes past SMALL_BODY.
        let mut drawn: Option<OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|error| ServerError::BadBody(format!("the request body could not be read: {error}")))?;
            let Ok(data) = frame.into_data() else { continue }; // trailers
            if data.len() > self.limit.saturating_sub(whole.len()) {
                return Err(ServerError::BodyTooLarge { limit: self.limit });
            }
            let counted = whole.len().saturating_add(data.len()).saturating_sub(SMALL_BODY);
            let more = counted.saturating_sub(drawn.as_ref().map_or(0, OwnedSemaphorePermit::num_permits));
            if more > 0 {
                let permits = Arc::clone(&self.budget)
                    .try_acquire_many_owned(u32::try_from(more).unwrap_or(u32::MAX))
                    .map_err(|_| ServerError::ReceivingTooMuch { budget: self.budget_bytes })?;
                match drawn.as_mut() {
                    Some(drawn) => drawn.merge(permits),
                    None => drawn = Some(permits),
                }
            }
            whole.extend_from_slice(&data);
        }
        Ok(Bytes::from(whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body fed by hand: a chunk at a time, or an error that cuts it off.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        (sender, Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }

    fn headers(length: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_str(length).unwrap());
        }
        headers
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let reader = BodyReader::with(10, 100, Duration::from_secs(1));
        // A body that would never end: refused from the header alone.
        let (_sender, body) = channel_body();
        let error = reader.read(&headers(Some("11")), body).await.unwrap_err();
        assert!(matches!(error, ServerError::BodyTooLarge { limit: 10 }), "{error}");
        assert_eq!(error.http_status(), 413);
    }

    #[tokio::test]
    async fn bodies_within_bounds_are_read_and_longer_ones_refused() {
        let reader = BodyReader::with(10, 100, Duration::from_secs(1));
        let body = reader.read(&headers(None), Body::from("hello")).await.unwrap();
        assert_eq!(&body[..], b"hello");
        let error = reader.read(&headers(None), Body::from("hello world!")).await.unwrap_err();
        assert_eq!(error.http_status(), 413, "{error}");
        let error = reader.read(&headers(Some("ten")), Body::from("x")).await.unwrap_err();
        assert_eq!(error.http_status(), 400, "{error}");
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_at_the_deadline() {
        let reader = BodyReader::with(1000, 1000, Duration::from_millis(100));
        let (sender, body) = channel_body();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if sender.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let error = reader.read(&headers(None), body).await.unwrap_err();
        assert!(matches!(error, ServerError::BodyDeadline { .. }), "{error}");
        assert_eq!(error.http_status(), 408);
        trickle.abort();
    }

    #[tokio::test]
    async fn an_aborted_body_is_a_bad_request_not_too_large() {
        let reader = BodyReader::with(1000, 1000, Duration::from_secs(1));
        let (sender, body) = channel_body();
        sender.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
        sender.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))).await.unwrap();
        let error = reader.read(&headers(Some("100")), body).await.unwrap_err();
        assert_eq!(error.http_status(), 400, "{error}");
    }

    #[tokio::test]
    async fn large_bodies_being_received_share_one_budget_and_small_ones_pass() {
        let reader = BodyReader::with(200_000, 150_000, Duration::from_secs(5));
        // A large body that stops after 150,000 bytes draws 150,000 - 64 KiB.
        let (slow, body) = channel_body();
        let held = {
            let reader = reader.clone();
            tokio::spawn(async move { reader.read(&headers(Some("200000")), body).await })
        };
        slow.send(Ok(Bytes::from(vec![0u8; 150_000]))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let error = reader.read(&headers(None), Body::from(vec![0u8; 200_000])).await.unwrap_err();
        assert!(matches!(error, ServerError::ReceivingTooMuch { budget: 150_000 }), "{error}");
        assert_eq!(error.http_status(), 429);
        // Small bodies are never refused for the budget.
        assert!(reader.read(&headers(Some("10000")), Body::from(vec![0u8; 10_000])).await.is_ok());
        // A trickling body holds only what it has sent.
        let (trickle, body) = channel_body();
        let trickling = {
            let reader = reader.clone();
            tokio::spawn(async move { reader.read(&headers(Some("200000")), body).await })
        };
        trickle.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
        drop(slow); // the large body ends: its budget comes back
        assert_eq!(held.await.unwrap().unwrap().len(), 150_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(reader.read(&headers(None), Body::from(vec![0u8; 200_000])).await.is_ok());
        trickling.abort();
    }
}
