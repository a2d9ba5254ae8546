//! The server's errors, and the one place where they become gRPC statuses
//! and HTTP status codes.

use std::{net::SocketAddr, path::PathBuf};

use mnist::proto::RpcStatus;
use tonic::{Code, Status};

/// Everything that can go wrong, at start-up or for one image.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The image or pixels in a request are unusable.
    #[error(transparent)]
    Input(#[from] mnist::Error),

    /// A request set neither `pixels` nor `image`.
    #[error("request has no input: set `pixels` (784 bytes, 28x28) or `image` (an encoded image file)")]
    EmptyInput,

    /// An Open Inference Protocol tensor that does not fit the model: unknown
    /// name, wrong data type or shape, data of the wrong size.
    #[error("{0}")]
    InvalidTensor(String),

    /// A request carries more images than one request may.
    #[error(
        "request carries {count} images; the limit is {limit} per request (--max-images-per-request): \
         split it into several requests"
    )]
    TooManyImages {
        /// Images in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },

    /// An HTTP request body over `--max-message-bytes`.
    #[error(
        "request body is larger than the limit of {limit} bytes (--max-message-bytes); send fewer or smaller images"
    )]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },

    /// An HTTP request body that is cut off, or whose framing is wrong.
    #[error("{0}")]
    BadBody(String),

    /// An HTTP request body that did not arrive whole in time.
    #[error("the request body did not arrive within {seconds} s (--http-body-timeout); send it at once")]
    BodyDeadline {
        /// The deadline.
        seconds: f64,
    },

    /// The bodies being received already hold the server's budget for them.
    #[error("server is busy receiving other request bodies ({budget} bytes at once at the most); retry with backoff")]
    ReceivingTooMuch {
        /// The budget, in bytes.
        budget: usize,
    },

    /// A request names a model or version this server does not serve.
    #[error("{0}")]
    ModelNotFound(String),

    /// As many images as the server may hold are already admitted and
    /// not yet answered.
    #[error(
        "server is overloaded: {capacity} images are already waiting for an answer (--max-queue-size); \
         retry with backoff"
    )]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },

    /// A request needs more places than the server has at all: no retry
    /// can help, only a larger `--max-queue-size`.
    #[error(
        "request needs {places} places but the server has {capacity} in all (--max-queue-size); \
         it can never be admitted: split it or raise the limit"
    )]
    NeverFits {
        /// Places the request needs.
        places: usize,
        /// All the server has.
        capacity: usize,
    },

    /// As many `Predict` streams as the server may hold are open.
    #[error("server is overloaded: {limit} Predict streams are already open (--max-streams); retry with backoff")]
    TooManyStreams {
        /// The limit.
        limit: usize,
    },

    /// The call carries no valid bearer token.
    #[error("{0}")]
    Unauthenticated(&'static str),

    /// The call's deadline passed before its image ran.
    #[error("deadline exceeded before the image was classified")]
    DeadlineExceeded,

    /// The server is stopping and takes no more work.
    #[error("server is shutting down")]
    ShuttingDown,

    /// ONNX Runtime failed on a batch.
    #[error("inference failed: {0}")]
    Inference(String),

    /// The ONNX Runtime library is missing, unloadable or too old.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// The model file is missing, corrupt or has the wrong inputs or outputs.
    #[error("model {}: {reason}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The requested execution provider cannot be used.
    #[error("execution provider {provider} cannot be used: {reason}")]
    Device {
        /// The provider asked for.
        provider: &'static str,
        /// Why not.
        reason: String,
    },

    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },

    /// Settings that contradict each other.
    #[error("invalid settings: {0}")]
    Config(String),

    /// The TLS certificate, key or client CA is missing or unusable.
    #[error("TLS{}: {reason}", path.as_ref().map(|p| format!(" file {}", p.display())).unwrap_or_default())]
    Tls {
        /// The offending file, when one is to blame.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },

    /// The bearer-token file is missing or unusable.
    #[error("auth token file {}: {reason}", path.display())]
    AuthTokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The metrics endpoint could not be started.
    #[error("metrics endpoint: {0}")]
    Metrics(String),

    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(String),

    /// Serving failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl ServerError {
    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServerError::Input(_)
            | ServerError::EmptyInput
            | ServerError::InvalidTensor(_)
            | ServerError::TooManyImages { .. }
            | ServerError::BadBody(_) => Code::InvalidArgument,
            ServerError::ModelNotFound(_) => Code::NotFound,
            ServerError::NeverFits { .. } => Code::FailedPrecondition,
            ServerError::QueueFull { .. }
            | ServerError::TooManyStreams { .. }
            | ServerError::BodyTooLarge { .. }
            | ServerError::ReceivingTooMuch { .. } => Code::ResourceExhausted,
            ServerError::BodyDeadline { .. } => Code::DeadlineExceeded,
            ServerError::Unauthenticated(_) => Code::Unauthenticated,
            ServerError::DeadlineExceeded => Code::DeadlineExceeded,
            ServerError::ShuttingDown => Code::Unavailable,
            ServerError::Inference(_)
            | ServerError::Runtime(_)
            | ServerError::Model { .. }
            | ServerError::Device { .. }
            | ServerError::Bind { .. }
            | ServerError::Config(_)
            | ServerError::Tls { .. }
            | ServerError::AuthTokenFile { .. }
            | ServerError::Metrics(_)
            | ServerError::Reflection(_)
            | ServerError::Transport(_) => Code::Internal,
        }
    }

    /// The HTTP status code of this error, for the HTTP front.
    pub fn http_status(&self) -> u16 {
        match self {
            ServerError::BodyTooLarge { .. } => 413,
            ServerError::BodyDeadline { .. } => 408,
            other => http_status(other.code()),
        }
    }

    /// The error as a `google.rpc.Status`, for a stream item's `error` field.
    pub fn to_rpc_status(&self) -> RpcStatus {
        RpcStatus { code: self.code() as i32, message: self.to_string(), details: Vec::new() }
    }
}

/// A name a request sent, as an error message quotes it: at most
/// [`QUOTED_NAME_CHARS`] characters. A client that sends a 10 KB model name
/// must get NOT_FOUND, not a status too large for its transport to read.
pub fn quoted(name: &str) -> String {
    match name.char_indices().nth(QUOTED_NAME_CHARS) {
        None => name.to_string(),
        Some((end, _)) => format!("{}... ({} bytes)", &name[..end], name.len()),
    }
}

/// How much of a request's name an error message quotes.
pub const QUOTED_NAME_CHARS: usize = 64;

/// The HTTP status code of a gRPC status code, for the HTTP front: the
/// mapping that gRPC-HTTP gateways use, so both fronts refuse alike.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

impl From<ServerError> for Status {
    fn from(error: ServerError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_contract() {
        assert_eq!(ServerError::from(mnist::Error::PixelCount(3)).code(), Code::InvalidArgument);
        assert_eq!(ServerError::EmptyInput.code(), Code::InvalidArgument);
        assert_eq!(ServerError::QueueFull { capacity: 1 }.code(), Code::ResourceExhausted);
        assert_eq!(ServerError::DeadlineExceeded.code(), Code::DeadlineExceeded);
        assert_eq!(ServerError::ShuttingDown.code(), Code::Unavailable);
        assert_eq!(ServerError::TooManyStreams { limit: 2 }.code(), Code::ResourceExhausted);
        assert_eq!(ServerError::Unauthenticated("no token").code(), Code::Unauthenticated);
        assert_eq!(ServerError::TooManyImages { count: 9, limit: 8 }.code(), Code::InvalidArgument);
        assert_eq!(ServerError::ModelNotFound("x".into()).code(), Code::NotFound);
        assert_eq!(ServerError::QueueFull { capacity: 1 }.http_status(), 429);
        assert_eq!(ServerError::BodyTooLarge { limit: 1 }.http_status(), 413);
        assert_eq!(http_status(ServerError::ShuttingDown.code()), 503);
        assert_eq!(http_status(ServerError::Unauthenticated("no token").code()), 401);
        assert_eq!(http_status(ServerError::InvalidTensor("x".into()).code()), 400);
        assert_eq!(ServerError::NeverFits { places: 9, capacity: 8 }.code(), Code::FailedPrecondition);
        let status = ServerError::QueueFull { capacity: 7 }.to_rpc_status();
        assert_eq!(status.code, Code::ResourceExhausted as i32);
        assert!(status.message.contains('7'));
    }

    #[test]
    fn long_names_are_quoted_cut() {
        assert_eq!(quoted("mnist"), "mnist");
        let long = "é".repeat(10_000);
        let shown = quoted(&long);
        assert!(shown.starts_with(&"é".repeat(QUOTED_NAME_CHARS)), "{shown}");
        assert!(shown.ends_with("... (20000 bytes)"), "{shown}");
        assert!(shown.len() < 200);
    }
}
