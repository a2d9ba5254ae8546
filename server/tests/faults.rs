//! Overload and faults through real gRPC: the stream limit, clients that
//! vanish mid-stream, and an ONNX Runtime library that is too old.

mod common;

use std::time::Duration;

use common::{TestServer, png_sized, run_to_exit_with_env, shipped_model, test_set};
use mnist::proto::v1::{PredictRequest, PredictResponse, predict_request::Input};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Code, Streaming};

fn pixels_request(id: impl ToString, pixels: &[u8]) -> PredictRequest {
    PredictRequest { id: id.to_string(), input: Some(Input::Pixels(pixels.to_vec())), ..Default::default() }
}

/// Opens a Predict stream fed from a channel; the call fails when the server refuses it.
async fn open_stream(
    server: &TestServer,
) -> Result<(mpsc::Sender<PredictRequest>, Streaming<PredictResponse>), tonic::Status> {
    let (sender, receiver) = mpsc::channel(1024);
    let responses = server.client().await.predict(ReceiverStream::new(receiver)).await?.into_inner();
    Ok((sender, responses))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_and_their_places_come_back() {
    let server = TestServer::start(&["--max-streams", "2"]).await;
    let (ok, stderr) = common::run_to_exit(&["--max-streams", "64", "--max-queue-size", "64"]);
    assert!(!ok && stderr.contains("--max-streams (64) must be smaller than --max-queue-size (64)"), "{stderr}");
    let data = test_set().take(1);
    let (first, mut first_responses) = open_stream(&server).await.unwrap();
    let (second, mut second_responses) = open_stream(&server).await.unwrap();
    for (sender, responses) in [(&first, &mut first_responses), (&second, &mut second_responses)] {
        sender.send(pixels_request("open", data.image(0))).await.unwrap();
        assert!(responses.message().await.unwrap().unwrap().error.is_none());
    }

    let refused = open_stream(&server).await.expect_err("a third stream must be refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("--max-streams") && refused.message().contains('2'), "{}", refused.message());

    // The open streams are not disturbed by the refusal.
    second.send(pixels_request("still", data.image(0))).await.unwrap();
    assert_eq!(second_responses.message().await.unwrap().unwrap().digit, u32::from(data.labels[0]));

    // Ending a stream gives its place back at once.
    drop(first);
    assert!(first_responses.message().await.unwrap().is_none());
    let (third, mut third_responses) = open_stream(&server).await.expect("a freed place is usable at once");
    third.send(pixels_request("third", data.image(0))).await.unwrap();
    assert!(third_responses.message().await.unwrap().unwrap().error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_stream_frees_its_work() {
    // Images small on the wire but slow to decode (16 megapixels), more
    // than the server admits at once: the first client's work would hold
    // every place for a second or more if it were not dropped with it.
    let server =
        TestServer::start(&["--max-queue-size", "48", "--max-streams", "8", "--max-in-flight-per-stream", "48"]).await;
    let big = png_sized(&square(4000, 1000), 4000);
    let url = server.url();
    // The client runs on its own runtime, shut down mid-stream: its socket
    // closes as when a client process dies.
    let (started_sending, sending) = std::sync::mpsc::channel();
    let vanished = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.spawn(async move {
            let channel = tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap();
            let requests = (0..200).map(move |i| PredictRequest {
                id: i.to_string(),
                input: Some(Input::Image(big.clone())),
                ..Default::default()
            });
            let mut client = mnist::proto::v1::classifier_client::ClassifierClient::new(channel);
            let mut responses = client.predict(tokio_stream::iter(requests)).await.unwrap().into_inner();
            let _ = started_sending.send(());
            while let Some(Ok(_)) = responses.next().await {}
        });
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(150)).await });
        runtime.shutdown_background();
    });
    sending.recv_timeout(Duration::from_secs(10)).expect("the first client started its stream");
    tokio::task::spawn_blocking(move || vanished.join().unwrap()).await.unwrap();

    // The next clients get every place: PredictOne calls are refused, not
    // queued, when no place is free. (200 ms of slack for a slow machine;
    // the vanished client's work alone would hold the places for a second
    // or more.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let data = test_set().take(48);
    let channel = server.channel().await;
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let mut client = mnist::proto::v1::classifier_client::ClassifierClient::new(channel.clone());
            let request = pixels_request(i, data.image(i));
            tokio::spawn(async move { client.predict_one(request).await })
        })
        .collect();
    for call in calls {
        if let Err(status) = call.await.unwrap() {
            panic!("a place is still held by the vanished client: {status:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_wait_for_admission_instead_of_failing() {
    // Three streams of 64 images against 4 places: flow control holds the
    // streams back; every image is answered, in order, none refused.
    let server = TestServer::start(&["--max-queue-size", "4", "--max-streams", "3", "--max-batch-size", "2"]).await;
    let data = test_set().take(64);
    let streams: Vec<_> = (0..3)
        .map(|s| {
            let requests: Vec<_> = (0..64).map(|i| pixels_request(format!("{s}-{i}"), data.image(i))).collect();
            let channel = server.channel();
            async move {
                let mut client = mnist::proto::v1::classifier_client::ClassifierClient::new(channel.await);
                let responses = client.predict(tokio_stream::iter(requests)).await.unwrap().into_inner();
                responses.map(|r| r.unwrap()).collect::<Vec<_>>().await
            }
        })
        .collect();
    for (s, answers) in futures_util::future::join_all(streams).await.into_iter().enumerate() {
        assert_eq!(answers.len(), 64);
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.id, format!("{s}-{i}"));
            assert!(answer.error.is_none(), "{:?}", answer.error);
            assert_eq!(answer.digit, u32::from(data.labels[i]));
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_onnx_runtime_that_is_too_old_is_named_with_the_version_needed() {
    let library = fake_runtime_library("1.16.3").expect("building a stand-in library needs a C compiler (cc)");
    let (ok, stderr) = run_to_exit_with_env(&["--model", shipped_model().to_str().unwrap()], library.to_str().unwrap());
    assert!(!ok);
    assert!(stderr.contains("1.16.3") && stderr.contains("1.22 or newer"), "{stderr}");
}

/// A shared library that says it is ONNX Runtime `version` and offers no API.
fn fake_runtime_library(version: &str) -> Option<tempfile::TempPath> {
    let dir = tempfile::tempdir().ok()?;
    let source = dir.path().join("fake_ort.c");
    std::fs::write(
        &source,
        format!(
            r#"#include <stddef.h>
typedef struct {{ const void* (*GetApi)(unsigned int); const char* (*GetVersionString)(void); }} OrtApiBase;
static const void* get_api(unsigned int version) {{ (void)version; return NULL; }}
static const char* get_version(void) {{ return "{version}"; }}
static const OrtApiBase base = {{ get_api, get_version }};
const OrtApiBase* OrtGetApiBase(void) {{ return &base; }}
"#
        ),
    )
    .ok()?;
    let library = tempfile::Builder::new().suffix(".so").tempfile().ok()?.into_temp_path();
    let built =
        std::process::Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).status().ok()?;
    built.success().then_some(library)
}

/// A white square of `inner` pixels centred on a black `side` x `side` image.
fn square(side: usize, inner: usize) -> Vec<u8> {
    let range = (side - inner) / 2..(side + inner) / 2;
    (0..side * side).map(|i| if range.contains(&(i / side)) && range.contains(&(i % side)) { 255 } else { 0 }).collect()
}
