//! Mixed traffic from careless and polite clients against a running server
//! (gRPC and HTTP ports), with a lone caller beside them whose latency is
//! the measure: what one careless client must not take away from others.
//!
//! Run by `scripts/soak-careless.sh`; alone:
//! `cargo run --release -p mnist-server --example careless_soak -- --grpc ADDR --http ADDR --pid PID --minutes M`
//!
//! Traffic, all at once for the whole run:
//! - PredictOne with pixels, 4 callers in a loop;
//! - 4 `Read` streams of 32 photos of numbers each, one after the other,
//!   every answer read;
//! - a client that opens a `Predict` stream of 2,000 photos and a `Read`
//!   stream of 300, never reads an answer, and drops them after 20 s,
//!   again and again;
//! - web page uploads (`POST /api/classify`, a photo) and OIP over HTTP
//!   (`POST /v2/models/mnist/infer`, 8 images as JSON), one caller each;
//! - bodies announced over the limit (`Content-Length` of 5 MB: 413 at
//!   once) and 16 connections trickling a body a byte a second (408 at the
//!   server's deadline), reopened as they are closed;
//! - the lone caller: a PNG `PredictOne` every 100 ms on its own connection.
//!
//! Prints one JSON line per minute: the lone caller's calls, p50, p99 and
//! slowest latency, its refusals (RESOURCE_EXHAUSTED: an answer, to retry)
//! and answers other than OK or RESOURCE_EXHAUSTED; the
//! server's RSS (lowest and highest, from /proc/PID/status); how many
//! readings the polite streams got; the HTTP refusals seen.

use std::{
    io::Cursor,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use image::{GrayImage, ImageFormat};
use mnist::{
    dataset::{Mnist, Split, default_dir},
    proto::v1::{PredictRequest, ReadRequest, classifier_client::ClassifierClient, predict_request, read_request},
};
use tokio::{io::AsyncWriteExt, net::TcpStream, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, transport::Channel};

#[derive(Default)]
struct Counters {
    readings: AtomicU64,
    unary_ok: AtomicU64,
    http_413: AtomicU64,
    http_408: AtomicU64,
    http_429: AtomicU64,
    http_ok: AtomicU64,
    http_other: AtomicU64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut grpc, mut http, mut pid, mut minutes) = (None, None, None, 30u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--grpc" => grpc = Some(args.next().ok_or("--grpc ADDR")?.parse::<SocketAddr>()?),
            "--http" => http = Some(args.next().ok_or("--http ADDR")?.parse::<SocketAddr>()?),
            "--pid" => pid = Some(args.next().ok_or("--pid PID")?.parse::<u32>()?),
            "--minutes" => minutes = args.next().ok_or("--minutes M")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (grpc, http, pid) = (grpc.ok_or("--grpc")?, http.ok_or("--http")?, pid.ok_or("--pid")?);
    let url = format!("http://{grpc}");
    let data = Mnist::load(&default_dir(), Split::Test)?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let numbers: Vec<Vec<u8>> = ["amount-313.jpg", "meter-690159.jpg", "zip-96654.jpg"]
        .iter()
        .map(|name| std::fs::read(root.join("examples/numbers").join(name)))
        .collect::<Result<_, _>>()?;
    let photo = std::fs::read(root.join("examples/digits/photo-label-4.jpg"))?;
    let png28 = png(data.image(0), 28)?;
    let counters = Arc::new(Counters::default());
    let end = Instant::now() + Duration::from_secs(minutes * 60);

    let endpoint = Channel::from_shared(url.clone())?;
    let connect = |_: String| {
        let endpoint = endpoint.clone();
        async move { endpoint.connect().await }
    };
    // PredictOne with pixels.
    for caller in 0..4 {
        let mut client = ClassifierClient::new(connect(url.clone()).await?);
        let (pixels, counters) = (data.image(caller).to_vec(), Arc::clone(&counters));
        tokio::spawn(async move {
            while Instant::now() < end {
                let request = PredictRequest {
                    input: Some(predict_request::Input::Pixels(pixels.clone())),
                    ..Default::default()
                };
                match client.predict_one(request).await {
                    Ok(_) => {
                        counters.unary_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    // Refused: retry after a moment, as a client should.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
    }
    // Polite Read streams.
    for stream in 0..4 {
        let mut client = ClassifierClient::new(connect(url.clone()).await?);
        let (numbers, counters) = (numbers.clone(), Arc::clone(&counters));
        tokio::spawn(async move {
            while Instant::now() < end {
                let requests: Vec<_> = (0..32).map(|i| read_request(&numbers[(stream + i) % numbers.len()])).collect();
                let Ok(answers) = client.read(tokio_stream::iter(requests)).await else { continue };
                let mut answers = answers.into_inner();
                while let Ok(Some(answer)) = answers.message().await {
                    if answer.error.is_none() {
                        counters.readings.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    // The client that never reads.
    {
        let channel = connect(url.clone()).await?;
        let (photo, numbers) = (photo.clone(), numbers.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                let mut client = ClassifierClient::new(channel.clone());
                let (predicts, predict_stream) = mpsc::channel(16);
                let (reads, read_stream) = mpsc::channel(16);
                let unread = (
                    client.predict(ReceiverStream::new(predict_stream)).await,
                    client.read(ReceiverStream::new(read_stream)).await,
                );
                let photo = photo.clone();
                let writer = tokio::spawn(async move {
                    for _ in 0..2000 {
                        let request = PredictRequest {
                            input: Some(predict_request::Input::Image(photo.clone())),
                            ..Default::default()
                        };
                        if predicts.send(request).await.is_err() {
                            break;
                        }
                    }
                });
                let numbers = numbers.clone();
                let read_writer = tokio::spawn(async move {
                    for i in 0..300 {
                        if reads.send(read_request(&numbers[i % numbers.len()])).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::time::sleep(Duration::from_secs(20)).await;
                writer.abort();
                read_writer.abort();
                drop(unread);
            }
        });
    }
    // Web uploads and OIP over HTTP.
    {
        post_in_a_loop(http, "/api/classify", "application/octet-stream", photo.clone(), &counters, end);
        let pixels: Vec<Vec<u8>> = (0..8).map(|i| data.image(i).to_vec()).collect();
        let body = serde_json::json!({
            "inputs": [{"name": "pixels", "shape": [8, 784], "datatype": "UINT8", "data": pixels}]
        })
        .to_string()
        .into_bytes();
        post_in_a_loop(http, "/v2/models/mnist/infer", "application/json", body, &counters, end);
    }
    // Bodies announced over the limit, and trickled bodies.
    {
        let oversized_counters = Arc::clone(&counters);
        tokio::spawn(async move {
            while Instant::now() < end {
                let status = announce_oversized(http).await;
                count_http(&oversized_counters, status);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        for _ in 0..16 {
            let counters = Arc::clone(&counters);
            tokio::spawn(async move {
                while Instant::now() < end {
                    let status = trickle(http, end).await;
                    count_http(&counters, status);
                }
            });
        }
    }

    // The lone caller, and the minute-by-minute report.
    let mut lone = ClassifierClient::new(connect(url.clone()).await?);
    let mut minute = 1;
    while Instant::now() < end {
        let minute_end = (Instant::now() + Duration::from_secs(60)).min(end);
        let (mut latencies, mut failures, mut refusals, mut rss) = (Vec::new(), 0u64, 0u64, Vec::new());
        let readings_before = counters.readings.load(Ordering::Relaxed);
        while Instant::now() < minute_end {
            let started = Instant::now();
            let request =
                PredictRequest { input: Some(predict_request::Input::Image(png28.clone())), ..Default::default() };
            let mut request = tonic::Request::new(request);
            request.set_timeout(Duration::from_secs(10));
            match lone.predict_one(request).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::ResourceExhausted => refusals += 1,
                Err(_) => failures += 1,
            }
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            if latencies.len() % 10 == 0
                && let Some(kib) = rss_kib(pid)
            {
                rss.push(kib);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        println!(
            "{}",
            serde_json::json!({
                "minute": minute,
                "lone_calls": latencies.len(),
                "lone_p50_ms": at(0.5),
                "lone_p99_ms": at(0.99),
                "lone_max_ms": latencies.last().copied().unwrap_or(0.0),
                "lone_failures": failures,
                "lone_refusals": refusals,
                "rss_mib_min": rss.iter().min().map(|k| k / 1024),
                "rss_mib_max": rss.iter().max().map(|k| k / 1024),
                "readings": counters.readings.load(Ordering::Relaxed) - readings_before,
                "unary_ok_total": counters.unary_ok.load(Ordering::Relaxed),
                "http_ok_total": counters.http_ok.load(Ordering::Relaxed),
                "http_413_total": counters.http_413.load(Ordering::Relaxed),
                "http_408_total": counters.http_408.load(Ordering::Relaxed),
                "http_429_total": counters.http_429.load(Ordering::Relaxed),
                "http_other_total": counters.http_other.load(Ordering::Relaxed),
            })
        );
        minute += 1;
    }
    Ok(())
}

fn read_request(photo: &[u8]) -> ReadRequest {
    ReadRequest { input: Some(read_request::Input::Image(photo.to_vec())), ..Default::default() }
}

fn png(pixels: &[u8], side: u32) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let image = GrayImage::from_raw(side, side, pixels.to_vec()).ok_or("pixels do not fill the image")?;
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)?;
    Ok(bytes)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Posts `body` to `path` until `end`, counting the answers; a refusal is
/// retried after a moment, as a client should.
fn post_in_a_loop(
    http: SocketAddr,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    counters: &Arc<Counters>,
    end: Instant,
) {
    let counters = Arc::clone(counters);
    tokio::spawn(async move {
        while Instant::now() < end {
            let status = post(http, path, content_type, body.clone()).await;
            count_http(&counters, status);
            if status != Some(200) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
}

fn count_http(counters: &Counters, status: Option<u16>) {
    let counter = match status {
        Some(200) => &counters.http_ok,
        Some(413) => &counters.http_413,
        Some(408) => &counters.http_408,
        Some(429) => &counters.http_429,
        _ => &counters.http_other,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The status line's code of a raw HTTP/1.1 answer.
async fn status_of(stream: &mut TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut head)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

async fn post(addr: SocketAddr, path: &str, content_type: &str, body: Vec<u8>) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(&body).await.ok()?;
    status_of(&mut stream).await
}

async fn announce_oversized(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = "POST /v2/models/mnist/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 5000000\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.ok()?;
    status_of(&mut stream).await
}

/// A body of 4 MB announced, sent a byte a second until the server answers
/// (408 at its body deadline).
async fn trickle(addr: SocketAddr, end: Instant) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = "POST /api/classify HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000000\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.ok()?;
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        while Instant::now() < end {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    use tokio::io::AsyncReadExt;
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(120), reader.read(&mut head)).await.ok()?.ok()?;
    sender.abort();
    String::from_utf8_lossy(&head[..n]).split_whitespace().nth(1)?.parse().ok()
}
