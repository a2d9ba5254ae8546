//! The HTTP port's bounds and refusals through real sockets: bodies over
//! the limit (announced or sent), cut off, trickled or compressed; the
//! `timeout` parameter; the bearer token; request lines the routing cannot
//! take apart; and shapes whose size wraps a machine word. Every refusal is
//! `{"error": ...}` with the code the docs promise.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, http};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Writes `head` (and then `body`, unless None) on a fresh connection and
/// returns the answer's status and JSON body, or None when the server said
/// nothing within `wait`.
async fn raw(addr: std::net::SocketAddr, head: &str, body: Option<&[u8]>, wait: Duration) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    if let Some(body) = body {
        stream.write_all(body).await.unwrap();
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            if let Some(end) = find(&answer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if answer.len() >= end + 4 + length {
                    break;
                }
            }
        }
    })
    .await;
    read.ok()?;
    let end = find(&answer, b"\r\n\r\n")?;
    let status = String::from_utf8_lossy(&answer[..end]).split_whitespace().nth(1)?.parse().ok()?;
    Some((status, serde_json::from_slice(&answer[end + 4..]).unwrap_or(Value::Null)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("not a JSON error: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_in_size_time_and_form() {
    let server = TestServer::start_with_http(&["--max-message-bytes", "100000", "--http-body-timeout", "1"]).await;
    let addr = server.http_addr.unwrap();

    // Announced over the limit: 413 at once, though no byte of it is sent.
    let head = "POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n";
    let (status, body) = raw(addr, head, None, Duration::from_secs(5)).await.expect("answered before the body");
    assert_eq!(status, 413);
    assert!(error_of(&body).contains("--max-message-bytes"), "{body}");

    // Sent over the limit without announcing it (chunked): 413.
    let head = "POST /api/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = format!("{:x}\r\n{}\r\n", 150_000, "x".repeat(150_000));
    let (status, _) = raw(addr, head, Some(chunk.as_bytes()), Duration::from_secs(5)).await.unwrap();
    assert_eq!(status, 413);

    // Cut off: the client announces 1,000 bytes, sends 10 and stops
    // writing. A broken body is a bad request, not one too large.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /v2/models/mnist/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("could not be read"), "{answer}");

    // Trickled a byte at a time: 408 at the body deadline (1 s here).
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--http-body-timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    trickle.abort();

    // Compressed bodies are refused, naming the encoding.
    let (status, _, body) =
        http(addr, "POST", "/v2/models/mnist/infer", &[("content-encoding", "gzip")], b"{}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("Content-Encoding gzip"));

    // The server still answers.
    let request = json!({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": vec![0; 784]}]});
    let (status, _, _) = http(addr, "POST", "/v2/models/mnist/infer", &[], request.to_string().into_bytes()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_with_the_right_code_and_a_json_reason() {
    let server = TestServer::start_with_http(&[]).await;
    let addr = server.http_addr.unwrap();
    let infer = |request: Value| {
        let body = request.to_string().into_bytes();
        async move {
            let (status, _, body) = http(addr, "POST", "/v2/models/mnist/infer", &[], body).await;
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        }
    };
    // A shape whose size wraps 64 bits to one image's: refused, not read.
    let (status, body) = infer(json!({"inputs": [{
        "name": "pixels", "shape": [1152921504606846977_u64, 784], "datatype": "UINT8", "data": vec![0; 784]
    }]}))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("more than any request can carry"), "{body}");

    // The `timeout` parameter (microseconds, as tritonclient sends it) is a
    // deadline: 1 µs has passed before the image runs.
    let (status, body) = infer(json!({
        "parameters": {"timeout": 1},
        "inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": vec![0; 784]}]
    }))
    .await;
    assert_eq!(status, 504, "{body}");
    assert!(error_of(&body).contains("deadline"), "{body}");

    // An unknown model's name is quoted cut, whatever its length.
    let long = "m".repeat(10_000);
    let (status, _, body) = http(addr, "GET", &format!("/v2/models/{long}"), &[], Vec::new()).await;
    assert_eq!(status, 404);
    assert!(body.len() < 1000, "{} bytes", body.len());

    // Query strings the routing cannot read: JSON errors too.
    for query in ["/api/read?digits=-1", "/api/read?digits=many"] {
        let (status, _, body) = http(addr, "POST", query, &[], b"x".to_vec()).await;
        assert_eq!(status, 400, "{query}");
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{query}: not JSON"));
        assert!(error_of(&body).contains("invalid query"), "{body}");
    }
    // A route called with the wrong method: 405, as JSON too.
    for (method, path) in [("GET", "/v2/models/mnist/infer"), ("GET", "/api/classify"), ("POST", "/api/models")] {
        let (status, _, body) = http(addr, method, path, &[], Vec::new()).await;
        assert_eq!(status, 405, "{method} {path}");
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{method} {path}: not JSON"));
        assert!(error_of(&body).contains("method"), "{body}");
    }
    // An empty image is no image.
    let (status, _, body) = http(addr, "POST", "/api/classify", &[], Vec::new()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("no input"), "{}", String::from_utf8_lossy(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_route_but_health() {
    let token = "an-http-test-token-0123456789";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    let server = TestServer::start_with_http(&["--auth-token-file", file.path().to_str().unwrap()]).await;
    let addr = server.http_addr.unwrap();
    let bearer = format!("Bearer {token}");
    for (method, path) in
        [("GET", "/v2"), ("GET", "/v2/models/mnist"), ("GET", "/api/models"), ("POST", "/api/classify")]
    {
        let (status, headers, body) = http(addr, method, path, &[], b"x".to_vec()).await;
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(headers.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
        assert!(serde_json::from_slice::<Value>(&body).is_ok(), "{method} {path}: not JSON");
        let (status, _, _) =
            http(addr, method, path, &[("authorization", "Bearer wrong-token-0123456789")], vec![]).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
    let (status, _, _) = http(addr, "GET", "/v2/models/mnist", &[("authorization", &bearer)], vec![]).await;
    assert_eq!(status, 200);
    let (status, _, _) = http(addr, "GET", "/v2/health/ready", &[], vec![]).await;
    assert_eq!(status, 200, "health stays open for probes");
}
