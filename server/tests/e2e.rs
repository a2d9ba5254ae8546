//! End-to-end tests of mnist-server through real gRPC, with the shipped model.

mod common;

use std::time::Duration;

use common::{ServerProcess, TestServer, png, run_to_exit, run_to_exit_with_env, shipped_model, test_set};
use futures_util::StreamExt;
use mnist::proto::v1::{
    GetModelInfoRequest, PredictRequest, PredictResponse, classifier_client::ClassifierClient, predict_request::Input,
};
use tonic::{Code, Request};

fn pixels_request(id: impl ToString, pixels: &[u8]) -> PredictRequest {
    PredictRequest { id: id.to_string(), input: Some(Input::Pixels(pixels.to_vec())), ..Default::default() }
}

/// Sends `requests` on one Predict stream and collects every response.
async fn stream_all(
    client: &mut ClassifierClient<tonic::transport::Channel>,
    requests: Vec<PredictRequest>,
) -> Vec<PredictResponse> {
    let response = client.predict(futures_util::stream::iter(requests)).await.unwrap();
    response.into_inner().map(|r| r.unwrap()).collect().await
}

fn accuracy(responses: &[PredictResponse], labels: &[u8]) -> f64 {
    let correct = responses.iter().zip(labels).filter(|(r, l)| r.error.is_none() && r.digit == u32::from(**l)).count();
    correct as f64 / labels.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logits_come_back_only_when_asked_for_and_give_the_probabilities() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    let data = test_set().take(3);
    for i in 0..3 {
        let plain = client.predict_one(pixels_request(i, data.image(i))).await.unwrap().into_inner();
        assert!(plain.logits.is_empty(), "logits unasked for");
        let request = PredictRequest { return_logits: true, ..pixels_request(i, data.image(i)) };
        let with_logits = client.predict_one(request).await.unwrap().into_inner();
        assert_eq!(with_logits.logits.len(), 10);
        assert_eq!(with_logits.probabilities, plain.probabilities);
        for (p, q) in mnist::softmax(&with_logits.logits).iter().zip(&plain.probabilities) {
            assert!((p - q).abs() < 1e-5, "softmax of the logits {p} against the probability {q}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_of_1000_pixels_and_pngs_is_ordered_and_accurate() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    let data = test_set().take(1000);

    let requests = (0..data.len()).map(|i| pixels_request(format!("px-{i}"), data.image(i))).collect();
    let by_pixels = stream_all(&mut client, requests).await;
    assert_eq!(by_pixels.len(), 1000);
    for (i, r) in by_pixels.iter().enumerate() {
        assert_eq!(r.id, format!("px-{i}"), "responses must come back in request order");
        assert_eq!(r.probabilities.len(), 10);
        assert!((r.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(r.confidence, r.probabilities[r.digit as usize]);
    }
    let acc = accuracy(&by_pixels, &data.labels);
    assert!(acc >= 0.99, "accuracy {acc}");

    let requests = (0..data.len())
        .map(|i| PredictRequest {
            id: format!("png-{i}"),
            input: Some(Input::Image(png(data.image(i)))),
            ..Default::default()
        })
        .collect();
    let by_png = stream_all(&mut client, requests).await;
    for (i, (a, b)) in by_pixels.iter().zip(&by_png).enumerate() {
        assert_eq!(b.id, format!("png-{i}"));
        assert_eq!(
            a.digit, b.digit,
            "PNG and pixels of image {i} must agree (preprocessing passes MNIST digits through)"
        );
        assert!((a.confidence - b.confidence).abs() < 1e-5);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_one_and_model_info() {
    let server = TestServer::start(&["--max-batch-size", "32"]).await;
    let mut client = server.client().await;
    let data = test_set().take(20);
    for i in 0..data.len() {
        let r = client.predict_one(pixels_request(i, data.image(i))).await.unwrap().into_inner();
        assert_eq!(r.id, i.to_string());
        assert!(r.error.is_none());
    }
    let err = client.predict_one(pixels_request("bad", &[0; 10])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("784"), "{}", err.message());

    let info = client.get_model_info(GetModelInfoRequest::default()).await.unwrap().into_inner();
    assert_eq!(info.input_shape, vec![-1, 1, 28, 28]);
    assert_eq!(info.classes.len(), 10);
    assert_eq!(info.execution_provider, "cpu");
    assert_eq!(info.batching.unwrap().max_batch_size, 32);
    let bytes = std::fs::read(shipped_model()).unwrap();
    assert_eq!(info.model_sha256, mnist::dataset::sha256_hex(&bytes));
    let accuracy = info.test_accuracy.expect("the shipped model has a card");
    assert!(accuracy >= 0.992, "card accuracy {accuracy}");
    assert_eq!(info.model_metadata.get("normalization_mean").map(String::as_str), Some("0.1307"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_fail_alone_and_the_stream_continues() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    let data = test_set().take(1);
    let requests = vec![
        pixels_request("short", &[1, 2, 3]),
        PredictRequest {
            id: "garbage".into(),
            input: Some(Input::Image(b"not an image at all".to_vec())),
            ..Default::default()
        },
        PredictRequest { id: "empty".into(), input: None, ..Default::default() },
        pixels_request("good", data.image(0)),
    ];
    let responses = stream_all(&mut client, requests).await;
    assert_eq!(responses.len(), 4);
    for r in &responses[..3] {
        let error = r.error.as_ref().unwrap_or_else(|| panic!("{} must fail", r.id));
        assert_eq!(Code::from(error.code), Code::InvalidArgument, "{}: {}", r.id, error.message);
        assert!(!error.message.is_empty());
    }
    assert!(responses[1].error.as_ref().unwrap().message.contains("decode"));
    assert!(responses[2].error.as_ref().unwrap().message.contains("no input"));
    assert_eq!(responses[3].id, "good");
    assert!(responses[3].error.is_none());
    assert_eq!(responses[3].digit, u32::from(data.labels[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_huge_images_are_refused_with_their_limits() {
    let server = TestServer::start(&["--max-image-pixels", "10000"]).await;
    let mut client = server.client().await;
    let big = image::GrayImage::new(200, 200);
    let mut bytes = Vec::new();
    big.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    let err = client
        .predict_one(PredictRequest { id: "big".into(), input: Some(Input::Image(bytes)), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("200x200") && err.message().contains("10000"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_size_limit_are_resource_exhausted_with_the_flag() {
    let server = TestServer::start(&["--max-message-bytes", "10000"]).await;
    let mut client = server.client().await;
    let oversized =
        PredictRequest { id: "big".into(), input: Some(Input::Image(vec![7; 20_000])), ..Default::default() };

    let status = client.predict_one(oversized.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("--max-message-bytes") && status.message().contains("10000"), "{status:?}");

    // On a stream the call ends with the same status, after the items before it.
    let data = test_set().take(1);
    let requests = vec![pixels_request("fine", data.image(0)), oversized];
    let mut responses = client.predict(futures_util::stream::iter(requests)).await.unwrap().into_inner();
    assert_eq!(responses.message().await.unwrap().unwrap().id, "fine");
    let status = responses.message().await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("--max-message-bytes"), "{status:?}");

    // The server is unaffected.
    assert!(client.predict_one(pixels_request("after", data.image(0))).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_smaller_than_a_batch_still_starts_and_serves() {
    let server = TestServer::start(&["--max-queue-size", "8", "--max-streams", "4", "--max-batch-size", "64"]).await;
    let mut client = server.client().await;
    let data = test_set().take(1);
    let response = client.predict_one(pixels_request(0, data.image(0))).await.unwrap().into_inner();
    assert_eq!(response.digit, u32::from(data.labels[0]));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_overflow_gives_resource_exhausted_and_admitted_work_completes() {
    let server = TestServer::start(&["--max-queue-size", "4", "--max-streams", "2", "--max-batch-size", "1"]).await;
    let data = test_set().take(1);
    let channel = server.channel().await;
    // One call first: until the server's HTTP/2 SETTINGS (its limit on
    // concurrent streams) have reached the client, a burst can open more
    // streams than allowed and have some reset with REFUSED_STREAM, a
    // transport refusal before any admission rule is asked.
    ClassifierClient::new(channel.clone()).predict_one(pixels_request(0, data.image(0))).await.unwrap();
    let calls: Vec<_> = (0..300)
        .map(|i| {
            let mut client = ClassifierClient::new(channel.clone());
            let request = pixels_request(i, data.image(0));
            tokio::spawn(async move { client.predict_one(request).await })
        })
        .collect();
    let (mut ok, mut exhausted) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.into_inner().digit, u32::from(data.labels[0]));
                ok += 1;
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.message().contains("--max-queue-size"), "{}", status.message());
                exhausted += 1;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
    assert!(exhausted > 0, "300 concurrent calls against a queue of 4 must overflow");
    assert!(ok > 0);
    assert_eq!(ok + exhausted, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deadline_is_honoured() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    let data = test_set().take(2);

    // A stream whose call deadline passes between two images: the first is
    // answered, the second gets DEADLINE_EXCEEDED in its own response.
    // (Set as a header: tonic's own timers cover only the call's start.)
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut request = Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
    request.metadata_mut().insert("grpc-timeout", "300m".parse().unwrap());
    sender.send(pixels_request("in-time", data.image(0))).await.unwrap();
    let mut responses = client.predict(request).await.unwrap().into_inner();
    let first = responses.message().await.unwrap().unwrap();
    assert!(first.error.is_none(), "{first:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    sender.send(pixels_request("too-late", data.image(1))).await.unwrap();
    drop(sender);
    let late = responses.message().await.unwrap().unwrap();
    assert_eq!(late.id, "too-late");
    let error = late.error.expect("an image sent after the deadline must not be classified");
    assert_eq!(Code::from(error.code), Code::DeadlineExceeded, "{}", error.message);

    // Unary: a deadline that has passed ends the call without a prediction,
    // answered by the server (the raw client has no timer of its own).
    let mut request = Request::new(pixels_request("late", data.image(0)));
    request.metadata_mut().insert("grpc-timeout", "1n".parse().unwrap());
    let status = common::raw_classifier(server.addr).predict_one(request).await.unwrap_err();
    assert!(common::is_servers_deadline_answer(&status), "{status:?}");

    // A generous deadline still works.
    let mut request = Request::new(pixels_request("ok", data.image(0)));
    request.set_timeout(Duration::from_secs(10));
    assert!(client.predict_one(request).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let server = TestServer::start(&[]).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "mnist.v1.Classifier"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "service '{service}'");
    }

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(futures_util::stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"mnist.v1.Classifier"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[test]
fn startup_failures_are_clear_and_exit_non_zero() {
    let (ok, stderr) = run_to_exit(&["--model", "/nonexistent/model.onnx"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/model.onnx"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"this is not a protobuf").unwrap();
    let (ok, stderr) = run_to_exit(&["--model", corrupt.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("corrupt.onnx"), "{stderr}");

    let wrong = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wrong_input.onnx");
    let (ok, stderr) = run_to_exit(&["--model", wrong]);
    assert!(!ok);
    assert!(stderr.contains("expected float32 [N, 1, 28, 28]"), "{stderr}");

    // A role given to a model that is not served is named, for each role.
    for flag in ["--read-model", "--second-read-model", "--check-model", "--photo-model"] {
        let (ok, stderr) = run_to_exit(&["--model", shipped_model().to_str().unwrap(), flag, "nope"]);
        assert!(!ok);
        assert!(stderr.contains(&format!("{flag} 'nope' is not one of the served models")), "{stderr}");
    }

    let (ok, stderr) = run_to_exit(&["--model", shipped_model().to_str().unwrap(), "--device", "cuda"]);
    assert!(!ok, "an explicit device that is missing must be an error, not a fallback");
    assert!(stderr.contains("cuda"), "{stderr}");

    let (ok, stderr) =
        run_to_exit_with_env(&["--model", shipped_model().to_str().unwrap()], "/nonexistent/libonnxruntime.so");
    assert!(!ok);
    assert!(stderr.contains("ORT_DYLIB_PATH"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mnist-server"))
        .args(["--addr", &addr, "--model", shipped_model().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_sent_before_it_then_exits_zero() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let model = shipped_model();
    let mut server = ServerProcess::start(&["--model", model.to_str().unwrap(), "--max-batch-size", "8"]);
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status, ServingStatus::Serving as i32);

    let data = test_set().take(500);
    let (sender, receiver) = tokio::sync::mpsc::channel(1000);
    for i in 0..data.len() {
        sender.send(pixels_request(i, data.image(i))).await.unwrap();
    }
    let mut client = ClassifierClient::new(channel);
    let mut responses =
        client.predict(tokio_stream::wrappers::ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let first = responses.next().await.unwrap().unwrap();
    assert_eq!(first.id, "0");
    server.signal("TERM");
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32,
        "health must turn NOT_SERVING when draining"
    );
    drop(sender); // the client finishes its stream
    let mut answered = 1;
    while let Some(response) = responses.next().await {
        let response = response.expect("in-flight requests must be answered, not cut off");
        assert_eq!(response.id, answered.to_string());
        assert!(response.error.is_none());
        answered += 1;
    }
    assert_eq!(answered, 500);
    let status = tokio::task::spawn_blocking(move || server.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_count_requests_batches_and_the_provider() {
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let model = shipped_model();
    let server =
        ServerProcess::start(&["--model", model.to_str().unwrap(), "--metrics-addr", &metrics_addr.to_string()]);
    let mut client = ClassifierClient::connect(server.url()).await.unwrap();
    let data = test_set().take(3);
    for i in 0..3 {
        client.predict_one(pixels_request(i, data.image(i))).await.unwrap();
    }
    let _ = client.predict_one(pixels_request("bad", &[0; 5])).await.unwrap_err();

    let scrape = common::scrape_metrics(metrics_addr).await;
    assert!(
        scrape.contains(r#"mnist_requests_total{protocol="mnist.v1",method="PredictOne",code="OK"} 3"#),
        "{scrape}"
    );
    assert!(
        scrape.contains(r#"mnist_requests_total{protocol="mnist.v1",method="PredictOne",code="INVALID_ARGUMENT"} 1"#),
        "{scrape}"
    );
    assert!(scrape.contains(r#"mnist_model_info{model="mnist",provider="cpu""#), "{scrape}");
    for family in [
        "mnist_batch_size_bucket",
        "mnist_inference_duration_seconds_bucket",
        "mnist_queue_wait_seconds_bucket",
        "mnist_queue_depth",
        "mnist_request_duration_seconds_bucket",
    ] {
        assert!(scrape.contains(family), "{family} missing from:\n{scrape}");
    }
}
