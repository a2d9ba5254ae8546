//! Opening a channel to the server: TLS, credentials, and one clear error
//! when the server is down or the settings are wrong.

use std::{fs, path::PathBuf, time::Duration};

use mnist::proto::v1::classifier_client::ClassifierClient;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::{ClientError, error::root_cause};

/// A channel that adds the bearer token, if any, to every call.
pub type ServerChannel = InterceptedService<Channel, Credentials>;

/// Connection settings shared by every subcommand.
#[derive(Debug, Clone, Default)]
pub struct ServerAddress {
    /// URL such as `http://127.0.0.1:50051`, or `https://` for TLS.
    pub url: String,
    /// Per-call deadline; none when unset.
    pub timeout: Option<Duration>,
    /// TLS settings (used with `https://` URLs).
    pub tls: TlsOptions,
    /// Bearer token sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
}

/// Client-side TLS files.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA certificates to trust instead of the system's (PEM).
    pub ca_cert: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM); needs `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Name to verify the server's certificate against, when it differs
    /// from the URL's host (e.g. connecting by IP address).
    pub domain: Option<String>,
}

impl TlsOptions {
    fn any(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some() || self.key.is_some() || self.domain.is_some()
    }
}

impl ServerAddress {
    /// A plaintext address with no deadline and no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Whether TLS options were given.
    pub fn tls_enabled(&self) -> bool {
        self.tls.any()
    }

    /// The first replica `--server` names, for the commands that ask one
    /// server (`info`, `health`).
    pub async fn first_replica(&self) -> Result<ServerAddress, ClientError> {
        let target = self.target()?;
        let urls = target.resolve().await?;
        Ok(self.replica(&urls[0], &target))
    }

    /// Connects, failing fast (5 s) when nothing answers.
    pub async fn channel(&self) -> Result<ServerChannel, ClientError> {
        let invalid = |reason: String| ClientError::InvalidServer { server: self.url.clone(), reason };
        let credentials = Credentials::new(self.token.as_deref()).map_err(ClientError::Usage)?;
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        match endpoint.uri().scheme_str() {
            Some("https") => {
                endpoint = endpoint.tls_config(self.tls_config()?).map_err(|e| invalid(root_cause(&e)))?;
            }
            Some("http") if self.tls.any() => {
                return Err(ClientError::Usage(format!(
                    "TLS options were given but {} is not an https:// URL",
                    self.url
                )));
            }
            Some("http") => {}
            _ => return Err(invalid("the scheme must be http:// or https://".into())),
        }
        let channel = endpoint.connect().await.map_err(|e| {
            let mut reason = root_cause(&e);
            if reason.contains("certificate") || reason.contains("alert") {
                reason.push_str(
                    " (check --ca-cert, --tls-domain, and --cert/--key if the server requires client certificates)",
                );
            }
            ClientError::Unreachable { server: self.url.clone(), reason }
        })?;
        Ok(InterceptedService::new(channel, credentials))
    }

    /// A Classifier client on a new channel.
    pub async fn classifier(&self) -> Result<ClassifierClient<ServerChannel>, ClientError> {
        Ok(ClassifierClient::new(self.channel().await?).max_decoding_message_size(64 << 20))
    }

    fn tls_config(&self) -> Result<ClientTlsConfig, ClientError> {
        let read = |path: &PathBuf, what: &str| {
            fs::read(path).map_err(|e| ClientError::Usage(format!("{what} {}: {e}", path.display())))
        };
        let mut config = ClientTlsConfig::new();
        config = match &self.tls.ca_cert {
            Some(path) => config.ca_certificate(Certificate::from_pem(read(path, "CA certificate")?)),
            None => config.with_native_roots(),
        };
        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => {
                config =
                    config.identity(Identity::from_pem(read(cert, "client certificate")?, read(key, "client key")?));
            }
            (None, None) => {}
            _ => return Err(ClientError::Usage("--cert and --key go together (mutual TLS)".into())),
        }
        if let Some(domain) = &self.tls.domain {
            config = config.domain_name(domain.clone());
        }
        Ok(config)
    }
}

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    /// Credentials for `token` (none: calls go without).
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        let authorization = token
            .map(|token| {
                let mut value = MetadataValue::try_from(format!("Bearer {}", token.trim()))
                    .map_err(|_| "the token has characters that cannot travel in a gRPC header".to_string())?;
                value.set_sensitive(true);
                Ok::<_, String>(value)
            })
            .transpose()?;
        Ok(Self { authorization })
    }
}

/// Never prints the token.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("token", &self.authorization.as_ref().map(|_| "<redacted>")).finish()
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}
