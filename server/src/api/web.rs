//! The web page on the HTTP port: draw a digit, drop or snap a photo, and
//! see the answer, the confidence of every digit and the 28x28 image the
//! model saw.
//!
//! The page is static files compiled into the binary (`server/web/`: no
//! CDN, no build step) and calls two JSON routes beside the Open Inference
//! Protocol's, over the same [`Core`]: the same admission, preprocessing
//! and batcher as every other front, so the page can neither bypass a
//! limit nor see anything another client would not.
//!
//! - `GET /`, `/web/*`, `/favicon.svg`: the page, open (it holds no data);
//!   served with a strict Content-Security-Policy: scripts and styles only
//!   from the server itself, no inline script, no request elsewhere.
//! - `GET /api/models`: the served models (name, digest, accuracy from the
//!   card, execution provider, batching), the default first, and the
//!   models that answer requests naming none: `photo_model` (image files)
//!   and `read_model` (numbers).
//! - `POST /api/classify?model=NAME`: the body is an image file (any format
//!   the `image` crate reads), classified by the model named, else by the
//!   photo model as image files are on every front; the answer is the
//!   digit, the ten probabilities, the model that answered and the 784
//!   pixels it saw.
//! - `POST /api/read?model=NAME&digits=N`: the body is a photo of a
//!   handwritten number; the answer is its text and confidence and, per
//!   digit, its box in the photo, its probabilities and the 784 pixels the
//!   model saw (as `Read` answers, through [`Core::read`]).
//!
//! The `/api` routes need the bearer token when the server has one; the
//! page asks for it and sends it in the `Authorization` header, never in a
//! URL.

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{ApiError, ApiQuery, BodyReader, require_token};
use crate::{
    auth::BearerAuth,
    core::{Core, ImageInput, PageInput, ReadingPlaces},
    error::ServerError,
    metrics,
    models::Model,
};

/// The protocol's name in metrics.
const PROTOCOL: &str = "web";

/// Scripts, styles, images and requests from this server only; nothing
/// inline (the page has no inline script or style), no frames, no forms
/// sent anywhere. Images also from `data:` and `blob:` URLs: the photos the
/// person picked, shown before they are sent.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");

/// What the JSON routes share.
#[derive(Clone)]
struct PageState {
    core: Arc<Core>,
    bodies: BodyReader,
}

/// The page and its JSON routes, over `core`, their bodies read by `bodies`.
pub fn router(core: Arc<Core>, auth: BearerAuth, bodies: BodyReader) -> Router {
    let api = Router::new()
        .route("/api/models", get(models))
        .route("/api/classify", post(classify))
        .route("/api/read", post(read))
        .route_layer(middleware::from_fn_with_state(auth, require_token))
        .with_state(PageState { core, bodies });
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/web/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/web/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/favicon.svg", get(|| async { asset("image/svg+xml", FAVICON_SVG) }))
        .merge(api)
        .method_not_allowed_fallback(ApiError::method_not_allowed)
}

/// A static file with the headers every page response carries.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The assets change with the binary only: a short cache, revalidated.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What the model panel shows of one served model.
fn describe(model: &Model) -> Value {
    let served = model.served();
    let info = &served.info;
    let batching = info.batching.unwrap_or_default();
    json!({
        "name": model.name(),
        "default": info.is_default,
        "version": served.version,
        "file": info.model_file,
        "sha256": info.model_sha256,
        "test_accuracy": info.test_accuracy,
        "provider": info.execution_provider,
        "temperature": info.model_metadata.get("temperature"),
        "quantization": info.model_metadata.get("quantization"),
        "batching": {
            "max_batch_size": batching.max_batch_size,
            "max_queue_delay_us": batching.max_queue_delay_us,
            "max_queue_size": batching.max_queue_size,
        },
        "server_version": info.server_version,
    })
}

async fn models(State(state): State<PageState>) -> axum::Json<Value> {
    let models = state.core.models();
    axum::Json(json!({
        "models": models.iter().map(|model| describe(model)).collect::<Vec<_>>(),
        "photo_model": models.photo_model().name(),
        "read_model": models.reading_model().name(),
    }))
}

/// `?model=NAME`; absent or empty: the server's choice (the photo model
/// for a photo or scan, the default model for a 28x28 image).
#[derive(Deserialize)]
struct ClassifyQuery {
    #[serde(default)]
    model: String,
}

async fn classify(
    State(state): State<PageState>,
    ApiQuery(query): ApiQuery<ClassifyQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let image = image_bytes(&state.bodies, &headers, body);
    measured("classify", async { classify_body(&state.core, &query.model, image.await?).await }).await
}

async fn classify_body(core: &Core, model: &str, image: Vec<u8>) -> Result<Value, ServerError> {
    let model = core.models().classifier(model, mnist::preprocess::needs_fitting(&image))?;
    let admission = core.try_admit(1)?;
    let (prediction, seen) = core.classify_and_show(model, ImageInput::Encoded(image), None, admission).await?;
    Ok(json!({
        "model_name": model.name(),
        "model": prediction.model_prefix(),
        "digit": prediction.digit,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
        "no_digit": prediction.notes.no_digit,
        "cut_by_frame": prediction.notes.cut_by_frame,
        "polarity_uncertain": prediction.notes.polarity_uncertain,
        "seen": seen,
    }))
}

/// `?model=NAME&digits=N`; absent or empty: the reading model, any length.
#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    digits: Option<usize>,
}

async fn read(
    State(state): State<PageState>,
    ApiQuery(query): ApiQuery<ReadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let image = image_bytes(&state.bodies, &headers, body);
    measured("read", async { read_number(&state.core, &query, image.await?).await }).await
}

/// Runs one of the page's calls, counting it in the request metrics under
/// `method` with its outcome and time.
async fn measured(
    method: &'static str,
    call: impl Future<Output = Result<Value, ServerError>>,
) -> Result<axum::Json<Value>, ApiError> {
    let started = Instant::now();
    let result = call.await;
    let code = result.as_ref().map_or_else(ServerError::code, |_| tonic::Code::Ok);
    metrics::request(PROTOCOL, method, code, started.elapsed(), 1);
    Ok(axum::Json(result?))
}

/// The uploaded image's bytes: within the body limit and not empty.
async fn image_bytes(bodies: &BodyReader, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ServerError> {
    let body = bodies.read(headers, body).await?;
    if body.is_empty() {
        return Err(ServerError::EmptyInput);
    }
    Ok(body.to_vec())
}

async fn read_number(core: &Core, query: &ReadQuery, image: Vec<u8>) -> Result<Value, ServerError> {
    let readers = core.models().readers(&query.model)?;
    let check_model = readers.checker.map(|model| model.name().to_string());
    let mut admission = core.try_admit(1)?;
    let expected = query.digits.filter(|&n| n > 0);
    let page = PageInput::Encoded(image);
    let read = core.read(&readers, page, expected, None, &mut admission, ReadingPlaces::TakeNow).await?;
    let digits: Vec<Value> = read
        .reading
        .digits
        .iter()
        .map(|digit| {
            let seen = read.segmentation.candidates.get(digit.candidate).map(|c| c.pixels.clone()).unwrap_or_default();
            json!({
                "digit": digit.digit,
                "confidence": digit.confidence,
                "probabilities": digit.probabilities,
                "box": digit.bounds,
                "seen": seen,
                "checked": digit.checked,
            })
        })
        .collect();
    Ok(json!({
        "model_name": read.model_name,
        "model": read.model,
        "text": read.reading.text,
        "confidence": read.reading.confidence,
        "best_length": read.reading.best_length,
        "cut_short": read.reading.cut_short,
        "check_model": check_model,
        "digits": digits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_inline_and_nothing_from_elsewhere() {
        // The policy forbids inline script and style: the page must have none.
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains(" style="), "inline code in index.html");
        assert!(!INDEX_HTML.contains("onclick=") && !INDEX_HTML.contains("javascript:"));
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "{text}");
        }
        assert!(INDEX_HTML.contains(r#"<script src="/web/app.js" defer></script>"#));
        let weight = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len() + FAVICON_SVG.len();
        assert!(weight < 100_000, "the page weighs {weight} bytes");
    }
}
