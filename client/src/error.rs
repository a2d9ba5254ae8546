/// Errors that stop a client command as a whole (per-file problems are
/// reported per file instead).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is malformed.
    #[error("invalid server address '{server}': {reason} (expected e.g. http://127.0.0.1:50051)")]
    InvalidServer {
        /// What was given.
        server: String,
        /// Why it is invalid.
        reason: String,
    },

    /// No connection could be made.
    #[error("cannot reach the server at {server}: {reason}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The cause, e.g. "Connection refused".
        reason: String,
    },

    /// A call failed as a whole.
    #[error("{call} failed: {code:?}: {message}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// Its status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },

    /// The MNIST files could not be loaded.
    #[error(transparent)]
    Data(#[from] mnist::Error),

    /// A setting is unusable.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// Wraps a failed call's status.
    pub fn call(call: &'static str, status: tonic::Status) -> Self {
        Self::Call { call, code: status.code(), message: status.message().to_string() }
    }
}
