//! The server driven as careless clients drive it, with a lone caller
//! beside them whose answers must keep coming: bursts of long `Read`
//! streams, a client that writes its whole stream before reading any
//! answer, streams on a server smaller than one reading, and deadlines only
//! the server can enforce. Each was a way for one client to take the
//! service away from everyone (hold-and-wait admission, a blocked send that
//! stopped polling the work holding places and decode slots, one FIFO
//! decode queue for all callers).

mod common;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use common::{TestServer, is_servers_deadline_answer, models_dir, png, raw_classifier, test_set};
use futures_util::StreamExt;
use mnist::proto::v1::{
    PredictRequest, ReadRequest, classifier_client::ClassifierClient, predict_request, read_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, transport::Channel};

/// The shipped photos of numbers, with their text.
fn number_photos() -> Vec<(Vec<u8>, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/numbers");
    ["amount-313.jpg", "meter-690159.jpg", "zip-96654.jpg"]
        .iter()
        .map(|name| {
            let text = name.trim_end_matches(".jpg").rsplit('-').next().unwrap().to_string();
            (std::fs::read(dir.join(name)).unwrap(), text)
        })
        .collect()
}

async fn repository_server(flags: &[&str]) -> TestServer {
    let models = models_dir();
    let mut args = vec!["--model-repository", models.to_str().unwrap(), "--default-model", "mnist"];
    args.extend_from_slice(flags);
    TestServer::start(&args).await
}

fn read_message(id: usize, photo: &[u8]) -> ReadRequest {
    ReadRequest { id: id.to_string(), input: Some(read_request::Input::Image(photo.to_vec())), ..Default::default() }
}

/// A 28x28 PNG `PredictOne`: an image to decode, as the lone caller sends.
fn png_request(id: &str) -> PredictRequest {
    let data = test_set().take(1);
    PredictRequest {
        id: id.into(),
        input: Some(predict_request::Input::Image(png(data.image(0)))),
        ..Default::default()
    }
}

/// A lone caller on its own connection: one PNG `PredictOne` every 100 ms
/// until `stop`, each timed. Every answer must be OK or RESOURCE_EXHAUSTED
/// (a refusal to retry is an answer; silence is not) within a second.
async fn lone_caller(channel: Channel, mut stop: tokio::sync::watch::Receiver<bool>) -> Vec<Duration> {
    let mut client = ClassifierClient::new(channel);
    let mut latencies = Vec::new();
    while !*stop.borrow() {
        let started = Instant::now();
        let mut request = Request::new(png_request("lone"));
        request.set_timeout(Duration::from_secs(5));
        match client.predict_one(request).await {
            Ok(_) => {}
            Err(status) if status.code() == Code::ResourceExhausted => {}
            Err(status) => panic!("the lone caller got {status:?}"),
        }
        latencies.push(started.elapsed());
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    latencies
}

fn assert_answered_within_a_second(latencies: &[Duration]) {
    assert!(!latencies.is_empty(), "the lone caller made no call");
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(slowest < Duration::from_secs(1), "the lone caller waited {slowest:?} ({} calls)", latencies.len());
}

/// 24 clients each stream photos of numbers and read every answer, on a
/// server with room for two readings at once: before, each stream took a
/// place per message before reading it and its readings then waited, with
/// no deadline, for the rest of theirs, so the streams held every place
/// and waited for each other for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_read_streams_all_finish_and_a_lone_caller_is_answered_beside_them() {
    let server = repository_server(&["--max-queue-size", "600", "--max-streams", "32"]).await;
    let photos = number_photos();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let lone = tokio::spawn(lone_caller(server.channel().await, stopped));

    const STREAMS: usize = 24;
    const PHOTOS: usize = 12;
    let mut channels = Vec::new();
    for _ in 0..STREAMS {
        channels.push(server.channel().await);
    }
    let streams: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(s, channel)| {
            let photos = photos.clone();
            tokio::spawn(async move {
                let mut client = ClassifierClient::new(channel);
                let requests: Vec<_> =
                    (0..PHOTOS).map(|i| read_message(i, &photos[(s + i) % photos.len()].0)).collect();
                let mut answers = client.read(tokio_stream::iter(requests)).await.unwrap().into_inner();
                let mut texts = Vec::new();
                while let Some(answer) = answers.message().await.unwrap() {
                    assert!(answer.error.is_none(), "stream {s}: {:?}", answer.error);
                    texts.push(answer.text);
                }
                texts
            })
        })
        .collect();
    let finished = tokio::time::timeout(Duration::from_secs(240), futures_util::future::join_all(streams))
        .await
        .expect("every Read stream finishes: none waits for another's places");
    for (s, texts) in finished.into_iter().enumerate() {
        let texts = texts.unwrap();
        assert_eq!(texts.len(), PHOTOS, "stream {s}");
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(text, &photos[(s + i) % photos.len()].1, "stream {s}, photo {i}");
        }
    }
    stop.send(true).unwrap();
    assert_answered_within_a_second(&lone.await.unwrap());
}

/// A client that writes its whole stream before reading any answer (a
/// common mistake): a `Predict` stream of photos and a `Read` stream, never
/// read. Before, the server's stream loop blocked on sending the first
/// answer nobody took, stopped polling the work it held, and so kept its
/// decode slots and places: no image was decoded for anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_reads_its_answers_costs_only_itself() {
    let server = repository_server(&[]).await;
    let photos = number_photos();
    let data = test_set().take(1);
    let channel = server.channel().await;
    let photo_digit = common::png_sized(&upscaled(data.image(0), 4), 112);

    // The careless client: 1,500 photos of digits and 300 photos of numbers,
    // sent as fast as flow control lets them through, no answer read.
    let mut careless = ClassifierClient::new(channel.clone());
    let (predicts, predict_stream) = mpsc::channel(64);
    let (reads, read_stream) = mpsc::channel(64);
    let unread_predictions = careless.predict(ReceiverStream::new(predict_stream)).await.unwrap();
    let unread_readings = careless.read(ReceiverStream::new(read_stream)).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..1500 {
            let request = PredictRequest {
                id: i.to_string(),
                input: Some(predict_request::Input::Image(photo_digit.clone())),
                ..Default::default()
            };
            if predicts.send(request).await.is_err() {
                break;
            }
        }
    });
    let read_writer = tokio::spawn(async move {
        for i in 0..300 {
            if reads.send(read_message(i, &photos[i % photos.len()].0)).await.is_err() {
                break;
            }
        }
    });
    // Let it fill its windows.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Beside it, on other connections: lone PNG calls, and a polite stream.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let lone = tokio::spawn(lone_caller(server.channel().await, stopped));
    let mut polite = ClassifierClient::new(server.channel().await);
    let data = test_set().take(50);
    let requests: Vec<_> = (0..50)
        .map(|i| PredictRequest {
            id: i.to_string(),
            input: Some(predict_request::Input::Image(png(data.image(i)))),
            ..Default::default()
        })
        .collect();
    let answers = tokio::time::timeout(Duration::from_secs(20), async {
        let stream = polite.predict(tokio_stream::iter(requests)).await.unwrap().into_inner();
        stream.map(|answer| answer.unwrap()).collect::<Vec<_>>().await
    })
    .await
    .expect("a polite stream beside the careless client makes progress");
    assert_eq!(answers.len(), 50);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.digit, u32::from(data.labels[i]), "{answer:?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).unwrap();
    assert_answered_within_a_second(&lone.await.unwrap());

    // The careless client's answers were kept for it, in order.
    let mut predictions = unread_predictions.into_inner();
    for i in 0..20 {
        let answer = predictions.message().await.unwrap().unwrap();
        assert_eq!(answer.id, i.to_string());
        assert!(answer.error.is_none(), "{:?}", answer.error);
    }
    let mut readings = unread_readings.into_inner();
    let first = readings.message().await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.error), ("0", None));
    drop((predictions, readings));
    writer.abort();
    read_writer.abort();
}

/// `pixels` (28x28) blown up `factor` times: a photo the server must fit.
fn upscaled(pixels: &[u8], factor: usize) -> Vec<u8> {
    let side = 28 * factor;
    (0..side * side).map(|i| pixels[(i / side / factor) * 28 + (i % side) / factor]).collect()
}

/// A server with fewer places than one reading's worst case still reads:
/// a stream of readings on 8 places, and a `ReadOne` on 16, are read (the
/// reading takes every place and classifies its candidates in batches of
/// that many), not refused as overloaded or left waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_smaller_than_one_reading_still_reads() {
    let photos = number_photos();
    let server = repository_server(&["--max-queue-size", "8", "--max-streams", "1"]).await;
    let mut client = server.client().await;
    let requests: Vec<_> = (0..8).map(|i| read_message(i, &photos[i % photos.len()].0)).collect();
    let answers = tokio::time::timeout(Duration::from_secs(60), async {
        let stream = client.read(tokio_stream::iter(requests)).await.unwrap().into_inner();
        stream.map(|answer| answer.unwrap()).collect::<Vec<_>>().await
    })
    .await
    .expect("one stream of 8 readings on 8 places finishes");
    for (i, answer) in answers.iter().enumerate() {
        assert!(answer.error.is_none(), "{:?}", answer.error);
        assert_eq!(answer.text, photos[i % photos.len()].1);
    }
    server.stop().await.unwrap();

    let server = repository_server(&["--max-queue-size", "16", "--max-streams", "1"]).await;
    let mut client = server.client().await;
    for (photo, text) in &photos {
        let answer = client.read_one(read_message(0, photo)).await.unwrap().into_inner();
        assert_eq!(&answer.text, text);
    }
}

/// Deadlines through a client with no timer of its own, so that the
/// answer is the server's: unary calls whose deadline has passed on
/// arrival (answered by the server's checks, or by tonic's timer on the
/// server while the message is still arriving), and stream messages that
/// wait for places past the call's deadline, which only the server's own
/// code can answer (tonic's timer ends when the stream's headers are sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_the_servers_own_answer() {
    let server = repository_server(&["--max-queue-size", "8", "--max-streams", "2"]).await;
    let mut client = raw_classifier(server.addr);
    let data = test_set().take(1);
    let pixels =
        || PredictRequest { input: Some(predict_request::Input::Pixels(data.image(0).to_vec())), ..Default::default() };
    let mut late = Request::new(pixels());
    late.metadata_mut().insert("grpc-timeout", "1n".parse().unwrap());
    let status = client.predict_one(late).await.unwrap_err();
    assert!(is_servers_deadline_answer(&status), "{status:?}");

    let mut late = Request::new(read_message(0, &png(data.image(0))));
    late.metadata_mut().insert("grpc-timeout", "1n".parse().unwrap());
    let status = client.read_one(late).await.unwrap_err();
    assert!(is_servers_deadline_answer(&status), "{status:?}");

    // A generous deadline is no refusal.
    let mut in_time = Request::new(pixels());
    in_time.metadata_mut().insert("grpc-timeout", "10S".parse().unwrap());
    assert!(client.predict_one(in_time).await.is_ok());

    // A stream whose second reading waits for the places the first holds
    // (a reading takes all 8), past the call's 1.5 s: the first is read,
    // the second answered DEADLINE_EXCEEDED in its own item. A slow photo
    // (16 megapixels) keeps the first reading's places long enough.
    let slow = common::png_sized(&vec![255; 4000 * 4000], 4000);
    let (sender, receiver) = mpsc::channel(4);
    let mut request = Request::new(ReceiverStream::new(receiver));
    request.metadata_mut().insert("grpc-timeout", "1500m".parse().unwrap());
    let mut answers = client.read(request).await.unwrap().into_inner();
    let started = Instant::now();
    for i in 0..10 {
        sender.send(read_message(i, &slow)).await.unwrap();
    }
    drop(sender);
    let mut codes = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        codes.push(answer.error.map(|e| Code::from(e.code)));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(codes.len(), 10);
    assert!(
        codes.contains(&Some(Code::DeadlineExceeded)),
        "a message waiting for places past the deadline is answered DEADLINE_EXCEEDED: {codes:?}"
    );
}
