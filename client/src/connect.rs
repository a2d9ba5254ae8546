//! Opening a channel to the server, with one clear error when it is down.

use std::time::Duration;

use mnist::proto::v1::classifier_client::ClassifierClient;
use tonic::transport::{Channel, Endpoint};

use crate::ClientError;

/// Connection settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct ServerAddress {
    /// URL such as `http://127.0.0.1:50051`.
    pub url: String,
    /// Per-call deadline; none when unset.
    pub timeout: Option<Duration>,
}

impl ServerAddress {
    /// Connects, failing fast (5 s) when nothing answers.
    pub async fn channel(&self) -> Result<Channel, ClientError> {
        let invalid = |reason: String| ClientError::InvalidServer { server: self.url.clone(), reason };
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        endpoint
            .connect()
            .await
            .map_err(|e| ClientError::Unreachable { server: self.url.clone(), reason: root_cause(&e) })
    }

    /// A Classifier client on a new channel.
    pub async fn classifier(&self) -> Result<ClassifierClient<Channel>, ClientError> {
        Ok(ClassifierClient::new(self.channel().await?).max_decoding_message_size(64 << 20))
    }
}

/// The innermost cause of an error chain ("Connection refused (os error
/// 111)" rather than "transport error").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
