//! Starting servers for end-to-end tests: in-process on an ephemeral port,
//! or as a real process when a test needs signals or exit codes.

#![allow(dead_code)]

pub mod pki;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use clap::Parser;
use mnist::{
    dataset::{Mnist, Split},
    proto::v1::classifier_client::ClassifierClient,
};
use mnist_server::config::Config;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, ClientTlsConfig};

/// The model shipped in `models/`.
pub fn shipped_model() -> PathBuf {
    models_dir().join("mnist.onnx")
}

/// The folder of the shipped models.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The MNIST test split, from `MNIST_DIR` (the test command sets it).
pub fn test_set() -> Mnist {
    let dir = mnist::dataset::default_dir();
    Mnist::load(&dir, Split::Test).unwrap_or_else(|e| panic!("MNIST test set (set MNIST_DIR): {e}"))
}

/// A server running inside the test process.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP port (Open Inference Protocol REST), when started with one.
    pub http_addr: Option<SocketAddr>,
    /// How clients reach it over TLS (None: plaintext).
    tls: Option<ClientTlsConfig>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), mnist_server::error::ServerError>>>,
}

impl TestServer {
    /// Starts a server with the shipped model and extra flags, and waits until it answers.
    pub async fn start(extra: &[&str]) -> Self {
        Self::start_with_tls(extra, None).await
    }

    /// Starts a server whose flags turn TLS on; clients connect with `tls`.
    pub async fn start_with_tls(extra: &[&str], tls: Option<ClientTlsConfig>) -> Self {
        Self::start_full(extra, tls, false).await
    }

    /// Starts a server that also serves the Open Inference Protocol over
    /// HTTP, on an ephemeral port (`http_addr`).
    pub async fn start_with_http(extra: &[&str]) -> Self {
        Self::start_full(extra, None, true).await
    }

    async fn start_full(extra: &[&str], tls: Option<ClientTlsConfig>, http: bool) -> Self {
        let model = shipped_model();
        let mut args = vec!["mnist-server", "--device", "cpu", "--intra-threads", "1"];
        // `--model` adds a model: the shipped one only when the test names none.
        if !extra.iter().any(|flag| matches!(*flag, "--model" | "--model-repository")) {
            args.extend(["--model", model.to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        let config = Config::try_parse_from(args).expect("valid flags");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = if http { Some(TcpListener::bind("127.0.0.1:0").await.unwrap()) } else { None };
        let http_addr = http.as_ref().map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = mnist_server::Listeners { grpc: listener, http };
        let task = tokio::spawn(mnist_server::run_on_listeners(config, listeners, async {
            let _ = stopped.await;
        }));
        let mut server = Self { addr, http_addr, tls, stop: Some(stop), task: Some(task) };
        server.wait_serving().await;
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        self.try_channel().await.unwrap()
    }

    /// A channel with the server's client TLS settings (if any).
    pub async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        self.try_channel_with(self.tls.clone()).await
    }

    /// A channel with other TLS settings than the server's default client.
    pub async fn try_channel_with(&self, tls: Option<ClientTlsConfig>) -> Result<Channel, tonic::transport::Error> {
        let mut endpoint = Channel::from_shared(self.url()).unwrap();
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        endpoint.connect().await
    }

    pub async fn client(&self) -> ClassifierClient<Channel> {
        ClassifierClient::new(self.channel().await)
    }

    async fn wait_serving(&mut self) {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
        for _ in 0..200 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.task.take().unwrap().await;
                panic!("server stopped during start-up: {result:?}");
            }
            if let Ok(channel) = self.try_channel().await {
                let mut health = HealthClient::new(channel);
                if let Ok(r) = health.check(HealthCheckRequest { service: String::new() }).await
                    && r.into_inner().status == ServingStatus::Serving as i32
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become SERVING");
    }

    /// Stops the server and returns its result.
    pub async fn stop(mut self) -> Result<(), mnist_server::error::ServerError> {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
    }
}

/// A server running as its own process (for signals and exit codes).
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// stderr lines after start-up.
    pub logs: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts `mnist-server` with `args` and waits for its "ready" line.
    pub fn start(args: &[&str]) -> Self {
        Self::from_child(spawn(args))
    }

    /// Waits for the "ready" line of a server started with JSON logs on
    /// stderr (piped).
    pub fn from_child(mut child: Child) -> Self {
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut addr = None;
        loop {
            let line = logs.recv_timeout(Duration::from_secs(30)).expect("server did not start");
            let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let message = json["fields"]["message"].as_str().unwrap_or_default();
            if message == "listening" {
                addr = json["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            }
            if message.starts_with("ready") {
                break;
            }
        }
        Self { child, addr: addr.expect("listening address"), logs }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the Prometheus metrics endpoint at `addr` (`--metrics-addr`).
pub async fn scrape_metrics(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap()
}

/// Spawns the server binary with JSON logs on a free port.
pub fn spawn(args: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist-server"));
    command.args(["--addr", "127.0.0.1:0", "--log-format", "json", "--intra-threads", "1"]).args(args);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    command.spawn().expect("spawn mnist-server")
}

/// Runs the server binary to completion; returns (success, stderr).
pub fn run_to_exit(args: &[&str]) -> (bool, String) {
    exit_and_stderr(Command::new(env!("CARGO_BIN_EXE_mnist-server")).args(args))
}

/// Like [`run_to_exit`], with `ORT_DYLIB_PATH` set to `ort_dylib`.
pub fn run_to_exit_with_env(args: &[&str], ort_dylib: &str) -> (bool, String) {
    exit_and_stderr(Command::new(env!("CARGO_BIN_EXE_mnist-server")).args(args).env("ORT_DYLIB_PATH", ort_dylib))
}

/// Runs the server command on a free port to completion.
fn exit_and_stderr(command: &mut Command) -> (bool, String) {
    let output = command.args(["--addr", "127.0.0.1:0"]).stdin(Stdio::null()).output().expect("run mnist-server");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `pixels` encoded as an 8-bit grayscale PNG.
pub fn png(pixels: &[u8]) -> Vec<u8> {
    png_sized(pixels, 28)
}

/// `pixels` (side x side) encoded as an 8-bit grayscale PNG.
pub fn png_sized(pixels: &[u8], side: u32) -> Vec<u8> {
    let image = image::GrayImage::from_raw(side, side, pixels.to_vec()).unwrap();
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// One HTTP/1.1 request; returns the status, the headers and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path).header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(http_body_util::Full::new(hyper::body::Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (parts.status.as_u16(), parts.headers, http_body_util::BodyExt::collect(body).await.unwrap().to_bytes().to_vec())
}

/// An HTTP/2 connection with no gRPC timers of its own: a `grpc-timeout`
/// header set on a request is only the server's to honour, so a test sees
/// what the server answers, not the client's own CANCELLED.
pub type RawH2 =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, tonic::body::Body>;

/// A [`RawH2`] connection to `addr`, and the origin to give a generated
/// client's `with_origin`.
pub fn raw_h2(addr: SocketAddr) -> (RawH2, tonic::codegen::http::Uri) {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).http2_only(true).build_http();
    (client, format!("http://{addr}").parse().unwrap())
}

/// A `mnist.v1` client over [`RawH2`].
pub fn raw_classifier(addr: SocketAddr) -> mnist::proto::v1::classifier_client::ClassifierClient<RawH2> {
    let (client, origin) = raw_h2(addr);
    mnist::proto::v1::classifier_client::ClassifierClient::with_origin(client, origin)
}

/// Whether `status` is the server's answer to a call whose deadline
/// passed: DEADLINE_EXCEEDED from the server's own checks, or CANCELLED
/// "Timeout expired" from tonic's timer on the server, which answers for a
/// unary call still reading its message when the deadline passes. Only
/// meaningful from a [`RawH2`] client, which has no timer of its own: the
/// status cannot be the client giving up.
pub fn is_servers_deadline_answer(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::DeadlineExceeded
        || (status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired")
}
