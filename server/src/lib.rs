//! `mnist-server`: the MNIST classifier over gRPC.
//!
//! The data path reads top to bottom through the modules:
//! [`api`] (the protocol fronts: `mnist.v1` and the Open Inference Protocol
//! over gRPC, the Open Inference Protocol over HTTP; each only translates)
//! -> [`core`] (admission, limits, preprocessing: shared by every front and
//! every model) -> [`models`] (the served models by name, each with its
//! own) [`batcher`] (one queue for every call to that model, batches for
//! it) -> [`backend`] (ONNX Runtime behind one trait). [`model`] loads,
//! describes and reloads a model's file. [`config`] holds the
//! flags, [`error`] maps every failure to a gRPC status and an HTTP code,
//! [`metrics`] exports Prometheus metrics, [`tls`] and [`auth`] decide who
//! may connect and call, [`http_server`] carries the HTTP port, [`timing`]
//! records where a call's time goes, [`threads`] keeps the network threads
//! below inference's priority, and [`run`] wires them together with health
//! checks, reflection and graceful shutdown.

pub mod api;
pub mod auth;
pub mod backend;
pub mod batcher;
pub mod config;
pub mod core;
pub mod error;
pub mod fair;
pub mod http_server;
pub mod message_limit;
pub mod metrics;
pub mod model;
pub mod models;
pub mod threads;
pub mod timing;
pub mod tls;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use mnist::{
    IMAGE_PIXELS,
    preprocess::DecodeLimits,
    proto::{
        CLASSIFIER_SERVICE, FILE_DESCRIPTOR_SET, INFERENCE_SERVICE,
        inference::grpc_inference_service_server::GrpcInferenceServiceServer, v1::classifier_server::ClassifierServer,
    },
};
use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    api::{classifier::ClassifierService, inference::InferenceService},
    auth::BearerAuth,
    batcher::{Batcher, BatcherConfig, ModelImage},
    config::Config,
    core::Core,
    error::ServerError,
    message_limit::MessageLimit,
    models::{Model, Models, Roles},
    threads::ModelLoader,
    timing::CallTiming,
};

/// HTTP/2 pings find peers that vanished without closing their connection
/// (a crashed host, a dropped NAT entry), so their streams and queued work
/// are freed instead of waiting for TCP to give up.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the server until `shutdown` resolves, then drains: health turns
/// NOT_SERVING, new calls are refused, calls in flight finish (for at most
/// `--shutdown-timeout`), and the inference thread empties its queue.
///
/// The TLS and token files are read and every model loaded before the
/// port is opened, so bad settings fail fast; the port is opened before the
/// warm-up, so health probes see NOT_SERVING until every model has run.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
    let access = Access::load(&config)?;
    let (loader, models) = load_models(&config).await?;
    let listener = bind(config.addr).await?;
    let http = match config.http_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    serve(config, access, loader, models, Listeners { grpc: listener, http }, shutdown).await
}

/// Like [`run`], on a gRPC listener the caller opened (tests bind port 0
/// and read the port back before starting the server); the HTTP port, if
/// any, is bound from `--http-addr`.
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let http = match config.http_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    run_on_listeners(config, Listeners { grpc: listener, http }, shutdown).await
}

/// The ports the server answers on.
pub struct Listeners {
    /// `mnist.v1` and the Open Inference Protocol over gRPC, health, reflection.
    pub grpc: TcpListener,
    /// The Open Inference Protocol over HTTP, when served.
    pub http: Option<TcpListener>,
}

/// Like [`run`], on listeners the caller opened.
pub async fn run_on_listeners(
    mut config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // The HTTP port is the listener's, whatever `--http-addr` said.
    config.http_addr = match &listeners.http {
        Some(listener) => {
            Some(listener.local_addr().map_err(|source| ServerError::Bind { addr: config.addr, source })?)
        }
        None => None,
    };
    let access = Access::load(&config)?;
    let (loader, models) = load_models(&config).await?;
    serve(config, access, loader, models, listeners, shutdown).await
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
}

/// Who may connect (TLS) and call (bearer token).
struct Access {
    /// The transport, with its TLS acceptor already built: a key that does
    /// not match its certificate fails here, before the model is loaded.
    transport: tonic::transport::Server,
    tls: bool,
    /// The HTTP port's TLS, from the same files.
    http_tls: Option<tokio_rustls::TlsAcceptor>,
    auth: BearerAuth,
}

impl Access {
    fn load(config: &Config) -> Result<Self, ServerError> {
        config.validate()?;
        let tls = config.tls_files().map(tls::server_config).transpose()?;
        let enabled = tls.is_some();
        let mut transport = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            transport =
                transport.tls_config(tls).map_err(|e| ServerError::Tls { path: None, reason: error_chain(&e) })?;
        }
        let http_tls = match (config.http_addr, config.tls_files()) {
            (Some(_), Some(files)) => Some(tls::http_acceptor(files)?),
            _ => None,
        };
        let auth = match &config.auth_token_file {
            Some(path) => BearerAuth::from_file(path)?,
            None => BearerAuth::disabled(),
        };
        for addr in std::iter::once(config.addr).chain(config.http_addr) {
            if addr.ip().is_loopback() {
                continue;
            }
            if !enabled {
                tracing::warn!(%addr, "listening beyond loopback without TLS: images and \
                    predictions cross the network in clear (see docs/security.md)");
            }
            if !auth.is_enabled() && config.tls_client_ca.is_none() {
                tracing::warn!(%addr, "listening beyond loopback without a token or client \
                    certificates: anyone who can reach the port can call it (see docs/security.md)");
            }
        }
        Ok(Self { transport, tls: enabled, http_tls, auth })
    }
}

/// Starts the model loader (from the caller's thread, so at its priority:
/// see [`threads`]) and loads ONNX Runtime and every model on it, the
/// default one first.
async fn load_models(config: &Config) -> Result<(ModelLoader, Vec<(models::ModelSpec, model::Loaded)>), ServerError> {
    let specs = config.models()?;
    let runtime = config.runtime_options(specs.len());
    let loader = ModelLoader::start()?;
    let mut loaded = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let model = model::load_on(&loader, &spec, i == 0, config, runtime, model::Card::Lenient).await?;
        tracing::info!(
            model = %spec.name,
            file = %spec.path.display(),
            sha256 = %model.model.sha256,
            provider = model.provider,
            default = i == 0,
            "model loaded"
        );
        loaded.push((spec, model));
    }
    Ok((loader, loaded))
}

async fn serve(
    config: Config,
    Access { transport, tls: tls_enabled, http_tls, auth }: Access,
    loader: ModelLoader,
    loaded: Vec<(models::ModelSpec, model::Loaded)>,
    Listeners { grpc: listener, http: http_listener }: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.addr, source })?;
    let prometheus = if config.metrics_addr.is_some() || config.http_metrics {
        Some(metrics::install(config.metrics_addr)?)
    } else {
        None
    };
    let batcher_config = BatcherConfig {
        max_batch_size: config.max_batch_size as usize,
        max_queue_delay: config.max_queue_delay(),
        max_queue_size: config.max_queue_size as usize,
    };
    let providers: Vec<&'static str> = loaded.iter().map(|(_, model)| model.provider).collect();
    let mut entries = Vec::with_capacity(loaded.len());
    let mut inference_threads = Vec::with_capacity(loaded.len());
    for (spec, model::Loaded { model, served, provider }) in loaded {
        metrics::model_info(&spec.name, provider, &model.sha256);
        // Born on the loader, each inference thread keeps the process's priority.
        let name = spec.name.clone();
        let (batcher, thread) = loader.run(move || Batcher::start(&name, model, batcher_config)).await??;
        entries.push(Arc::new(Model::new(spec, batcher, served)));
        inference_threads.push(thread);
    }
    let join_inference_threads = move || inference_threads.into_iter().for_each(|thread| drop(thread.join()));
    let limits = DecodeLimits {
        max_encoded_bytes: config.max_message_bytes,
        max_pixels: config.max_image_pixels,
        ..DecodeLimits::default()
    };
    let core = Arc::new(Core::new(
        Models::new(
            entries,
            Roles {
                photo: config.photo_model.as_deref(),
                read: config.read_model.as_deref(),
                second: config.second_read_model.as_deref(),
                check: config.check_model.as_deref(),
            },
        )?,
        core::Limits {
            decode: limits,
            max_in_flight_per_stream: config.max_in_flight_per_stream as usize,
            max_streams: config.max_streams as usize,
            max_admitted: config.max_queue_size as usize,
            max_images_per_request: config.max_images_per_request as usize,
        },
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;

    let mut builder = transport
        // Each open call may hold a message of --max-message-bytes before
        // it can be admitted: bound what one connection makes the server hold.
        .max_concurrent_streams(config.max_calls_per_connection)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    // Health stays open so that load balancers and orchestrators can probe
    // without credentials; everything else is behind the token.
    let classifier = ClassifierServer::new(ClassifierService::new(Arc::clone(&core)))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let inference = GrpcInferenceServiceServer::new(InferenceService::new(Arc::clone(&core)))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let mut router = builder
        .add_service(health_service)
        .add_service(CallTiming::new(MessageLimit::new(
            InterceptedService::new(classifier, auth.clone()),
            config.max_message_bytes,
        )))
        .add_service(CallTiming::new(MessageLimit::new(
            InterceptedService::new(inference, auth.clone()),
            config.max_message_bytes,
        )));
    if !config.no_reflection {
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let error = |e: tonic_reflection::server::Error| ServerError::Reflection(e.to_string());
        router = router
            .add_service(InterceptedService::new(reflection().build_v1().map_err(error)?, auth.clone()))
            .add_service(InterceptedService::new(reflection().build_v1alpha().map_err(error)?, auth.clone()));
    }

    let (stop_serving, serving_stopped) = tokio::sync::watch::channel(false);
    let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let server =
        tokio::spawn(router.serve_with_incoming_shutdown(incoming(listener), stopped(serving_stopped.clone())));
    tracing::info!(
        addr = %local_addr,
        tls = tls_enabled,
        client_certificates = config.tls_client_ca.is_some(),
        auth = auth.is_enabled(),
        reflection = !config.no_reflection,
        "listening"
    );
    let http_task = match http_listener {
        Some(listener) => {
            let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: local_addr, source })?;
            let metrics = prometheus.filter(|_| config.http_metrics);
            let bodies = api::body::BodyReader::new(config.max_message_bytes, config.http_body_timeout());
            let mut app = api::http::router(Arc::clone(&core), auth.clone(), metrics, bodies.clone());
            if !config.no_web_page {
                app = app.merge(api::web::router(Arc::clone(&core), auth.clone(), bodies));
            }
            let shutdown = stopped(serving_stopped.clone());
            let connections = config.max_http_connections as usize;
            let task = tokio::spawn(http_server::serve(listener, http_tls, app, connections, shutdown));
            tracing::info!(
                addr = %addr,
                tls = tls_enabled,
                metrics = config.http_metrics,
                web_page = !config.no_web_page,
                "HTTP listening"
            );
            Some(task)
        }
        None => None,
    };

    // A batch cannot hold more images than the queue does.
    let warm_up_batch = config.max_batch_size.min(config.max_queue_size) as usize;
    let warmed_up =
        futures_util::future::try_join_all(core.models().iter().map(|model| warm_up(model, warm_up_batch))).await;
    if let Err(error) = warmed_up {
        let _ = stop_serving.send(true);
        core.models().close();
        let _ = server.await;
        if let Some(http) = http_task {
            let _ = http.await;
        }
        let _ = tokio::task::spawn_blocking(join_inference_threads).await;
        return Err(error);
    }
    core.set_ready(true);
    set_health(&health, ServingStatus::Serving).await;
    let served: Vec<Arc<Model>> = core.models().iter().cloned().collect();
    Arc::new(model::Reloader::new(config.clone(), served, loader)).spawn(config.watch_model());
    tracing::info!(addr = %local_addr, models = %core.models().names(), providers = ?providers, "ready: serving");

    shutdown.await;
    tracing::info!(timeout_seconds = config.shutdown_timeout, "shutting down: draining calls in flight");
    core.set_ready(false);
    set_health(&health, ServingStatus::NotServing).await;
    let _ = stop_serving.send(true);
    let drained = async {
        let grpc = server.await;
        if let Some(http) = http_task
            && let Err(join_error) = http.await
        {
            tracing::error!(%join_error, "HTTP server task failed");
        }
        grpc
    };
    match tokio::time::timeout(config.shutdown_timeout(), drained).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join_error)) => tracing::error!(%join_error, "server task failed"),
        Err(_) => tracing::warn!("shutdown timeout reached: closing the calls still open"),
    }
    core.models().close();
    let _ = tokio::task::spawn_blocking(join_inference_threads).await;
    tracing::info!("stopped");
    Ok(())
}

/// The connections the server accepts, each with `TCP_NODELAY` and TCP
/// keepalive set.
///
/// `serve_with_incoming*` ignores the builder's `tcp_nodelay` and
/// `tcp_keepalive`: those apply only to listeners tonic binds itself. Left
/// with Nagle's algorithm on, a response written in two segments (headers,
/// then data and trailers) waits for the client's delayed ACK, up to 40 ms
/// on Linux: that was the p99 of every load test. TLS wraps these same
/// sockets, so it gets both settings too.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(KEEPALIVE_INTERVAL))
}

/// An error and its causes on one line ("tls error: invalid peer
/// certificate: ..." rather than "transport error").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

/// Runs a model once on a single image and once on a full batch, so the
/// first real request does not pay for ONNX Runtime's lazy initialisation.
async fn warm_up(model: &Model, max_batch_size: usize) -> Result<(), ServerError> {
    let batcher = model.batcher();
    let started = Instant::now();
    batcher.predict(ModelImage::Pixels(vec![0; IMAGE_PIXELS]), None).await?;
    let batch: Vec<_> =
        (0..max_batch_size).map(|_| batcher.predict(ModelImage::Pixels(vec![0; IMAGE_PIXELS]), None)).collect();
    for result in futures_util::future::join_all(batch).await {
        result?;
    }
    tracing::info!(model = model.name(), elapsed_ms = started.elapsed().as_millis() as u64, "warm-up done");
    Ok(())
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for service in ["", CLASSIFIER_SERVICE, INFERENCE_SERVICE] {
        health.set_service_status(service, status).await;
    }
}
