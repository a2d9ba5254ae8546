//! `mnist-client` over several servers: the work is spread over them, and
//! a server killed (SIGKILL) or drained (SIGTERM) mid-run loses nothing and
//! duplicates nothing. The servers are real processes (they must be
//! killable): the `mnist-server` binary of this build.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use mnist::dataset::{Mnist, Split};

const FILES: usize = 2000;

/// The server binary built with this test (cargo builds every binary of
/// the workspace for `cargo test --workspace`; built here otherwise).
fn server_binary() -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let binary = dir.join("mnist-server");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status =
            Command::new(cargo).args(["build", "-p", "mnist-server", "--bin", "mnist-server"]).status().unwrap();
        assert!(status.success(), "cannot build mnist-server");
    }
    binary
}

struct Server {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    /// A server slowed down on purpose (it waits up to 20 ms to fill a
    /// batch of 8), so that a run lasts long enough to kill servers in it.
    fn start() -> Self {
        let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist.onnx");
        let mut child = Command::new(server_binary())
            .args(["--addr", "127.0.0.1:0", "--log-format", "json", "--intra-threads", "1"])
            .args(["--model", model.to_str().unwrap(), "--metrics-addr", &metrics.to_string()])
            .args(["--max-batch-size", "8", "--max-queue-delay-us", "20000", "--shutdown-timeout", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let json: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
            let message = json["fields"]["message"].as_str().unwrap_or_default().to_string();
            if message == "listening" {
                addr = json["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            }
            if message.starts_with("ready") {
                break;
            }
        }
        // Keep reading the logs so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr: addr.expect("the server's address"), metrics }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Images this server answered on Predict streams, from its metrics.
    fn answered(&self) -> u64 {
        let mut stream = std::net::TcpStream::connect(self.metrics).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.lines()
            .find(|l| l.starts_with(r#"mnist_requests_total{protocol="mnist.v1",method="Predict",code="OK"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `FILES` MNIST test digits as PNG files, and their labels by file name.
fn digits() -> (tempfile::TempDir, BTreeMap<String, u8>) {
    let dir = std::env::var("MNIST_DIR").map(PathBuf::from).unwrap_or_else(|_| mnist::dataset::default_dir());
    let data = Mnist::load(&dir, Split::Test).unwrap().take(FILES);
    let folder = tempfile::tempdir().unwrap();
    let mut labels = BTreeMap::new();
    for i in 0..FILES {
        let name = format!("{i:04}.png");
        image::save_buffer(folder.path().join(&name), data.image(i), 28, 28, image::ExtendedColorType::L8).unwrap();
        labels.insert(folder.path().join(&name).display().to_string(), data.labels[i]);
    }
    (folder, labels)
}

fn predict(servers: &str, folder: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_mnist-client"))
        .args(["--server", servers, "predict", folder.to_str().unwrap(), "--format", "csv", "--concurrency", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Each file exactly once, nearly all right, no failure.
fn check(output: &Output, labels: &BTreeMap<String, u8>) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status.code());
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), FILES, "one line per file");
    let mut seen = BTreeMap::new();
    let mut right = 0;
    for row in rows {
        let mut fields = row.split(',');
        let (path, digit) = (fields.next().unwrap(), fields.next().unwrap());
        assert!(seen.insert(path.to_string(), ()).is_none(), "{path} twice");
        if digit.parse::<u8>().ok() == labels.get(path).copied() {
            right += 1;
        }
    }
    assert!(right >= FILES * 99 / 100, "{right} of {FILES} right");
}

#[test]
fn work_is_spread_and_a_killed_or_drained_server_loses_nothing() {
    let (folder, labels) = digits();
    let servers = [Server::start(), Server::start(), Server::start()];
    let list = servers.iter().map(Server::url).collect::<Vec<_>>().join(",");

    // All three up: each takes a share.
    let output = predict(&list, folder.path()).wait_with_output().unwrap();
    check(&output, &labels);
    let shares: Vec<u64> = servers.iter().map(Server::answered).collect();
    assert_eq!(shares.iter().sum::<u64>(), FILES as u64, "{shares:?}");
    assert!(shares.iter().all(|&n| n >= FILES as u64 / 10), "every server takes a share: {shares:?}");

    // bench spreads its connections and says what each server answered.
    let bench = Command::new(env!("CARGO_BIN_EXE_mnist-client"))
        .args(["--server", &list, "bench", "--mode", "unary", "--concurrency", "6", "--requests", "600"])
        .args(["--warmup", "0", "--format", "json"])
        .output()
        .unwrap();
    assert!(bench.status.success(), "{}", String::from_utf8_lossy(&bench.stderr));
    let report: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    let counts: Vec<u64> = report["replicas"].as_array().unwrap().iter().map(|r| r["ok"].as_u64().unwrap()).collect();
    assert_eq!(counts.len(), 3, "{report}");
    assert!(counts.iter().all(|&n| n > 0) && counts.iter().sum::<u64>() == 600, "{counts:?}");

    // One killed, one drained, mid-run.
    let started = Instant::now();
    let run = predict(&list, folder.path());
    std::thread::sleep(Duration::from_millis(700));
    servers[0].signal("KILL");
    std::thread::sleep(Duration::from_millis(700));
    servers[1].signal("TERM");
    let output = run.wait_with_output().unwrap();
    check(&output, &labels);
    assert!(
        started.elapsed() > Duration::from_millis(1400),
        "the run ended before the servers stopped: {:?}",
        started.elapsed()
    );
    let after: u64 = servers[2].answered() - shares[2];
    assert!(after > 0, "the surviving server took over");
}

#[test]
fn a_dns_target_uses_every_address_of_a_name() {
    let (folder, labels) = digits();
    let server = Server::start();
    // localhost may resolve to ::1 as well as 127.0.0.1: the address the
    // server does not listen on fails, and the other takes the work.
    let target = format!("dns:///localhost:{}", server.addr.port());
    let output = predict(&target, folder.path()).wait_with_output().unwrap();
    check(&output, &labels);
}
