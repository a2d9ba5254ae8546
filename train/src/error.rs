use std::path::PathBuf;

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the MNIST files failed.
    #[error(transparent)]
    Data(#[from] mnist::Error),

    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A checkpoint is unreadable or does not match this run.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The requested device cannot be used.
    #[error("device {requested} is not available: {reason}")]
    Device {
        /// The device asked for.
        requested: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),

    /// ONNX Runtime could not load or run an exported model.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// Drawing a chart failed.
    #[error("plot {}: {reason}", path.display())]
    Plot {
        /// The image being drawn.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The run was interrupted (Ctrl-C) and stopped cleanly.
    #[error("interrupted after epoch {completed_epochs}; resume with --resume")]
    Interrupted {
        /// Epochs completed and checkpointed.
        completed_epochs: usize,
    },
}

/// Result with the trainer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an `io::Error` on `path` into [`Error::Io`].
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}
