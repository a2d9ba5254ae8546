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
    /// Wraps a failed call's status, with a hint when the cause is a
    /// common set-up mistake.
    pub fn call(call: &'static str, status: tonic::Status) -> Self {
        let mut message = status.message().to_string();
        // Transport failures carry their cause (a TLS alert, a reset) only
        // in the error chain.
        if let Some(source) = std::error::Error::source(&status) {
            let cause = root_cause(source);
            if !message.contains(&cause) {
                message = format!("{message}: {cause}");
            }
            if cause.contains("Certificate") {
                message.push_str(" (the server requires a client certificate it trusts: --cert and --key)");
            }
        }
        match status.code() {
            tonic::Code::Unauthenticated => message.push_str(" (give the token with --token-file or MNIST_TOKEN)"),
            tonic::Code::Internal if message.contains("h2 protocol error") => {
                message.push_str(" (a TLS server answers plaintext like this: use an https:// URL)")
            }
            _ => {}
        }
        Self::Call { call, code: status.code(), message }
    }
}

/// The innermost cause of an error chain ("Connection refused (os error
/// 111)" rather than "transport error").
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
