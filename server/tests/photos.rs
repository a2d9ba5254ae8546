//! Phone-style photos (`mnist::synth`: ruled and squared paper, shadows,
//! faint pencil, specks around a small digit..., clean scans, and the
//! harder conditions: short rules, marker strokes, rotation, the frame,
//! chalk, tiny crops, perspective) are read as well by the server's `image`
//! path as by the client's own preprocessing, and well.
//!
//! A smaller run of `cargo run --release -p mnist-server --example
//! photo_accuracy` (docs/preprocessing.md has the full table): the photos
//! are seeded, so the accuracies here are the same on every machine.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, test_set};
use mnist::{
    preprocess::{DecodeLimits, view_file},
    proto::v1::{PredictRequest, PredictResponse, predict_request::Input},
    synth::{Condition, PhotoGenerator},
    verdict::conclude,
};

const PER_CONDITION: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_read_alike_by_client_and_server_and_well() {
    let server = TestServer::start(&[]).await;
    let data = test_set();
    let mut generator = PhotoGenerator::new(7, 320);
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    let conditions = Condition::ALL.into_iter().chain([Condition::Clean]).chain(Condition::HARDER);
    for (c, condition) in conditions.enumerate() {
        for n in 0..PER_CONDITION {
            let index = 5000 + c * PER_CONDITION + n;
            let photo = generator.photo_jpeg(data.image(index), condition);
            // As `mnist-client predict` does: the pixels, and the other way
            // round when the polarity is uncertain; concluded below.
            let view = view_file(&photo, &DecodeLimits::default()).expect("a generated photo decodes");
            let id = format!("{}/{n}", condition.name());
            for (suffix, pixels) in [("client", Some(view.pixels.clone())), ("other", view.other_polarity.clone())] {
                if let Some(pixels) = pixels.filter(|_| !view.notes.no_digit) {
                    requests.push(PredictRequest {
                        id: format!("{id}/{suffix}"),
                        input: Some(Input::Pixels(pixels)),
                        ..Default::default()
                    });
                }
            }
            requests.push(PredictRequest {
                id: format!("{id}/server"),
                input: Some(Input::Image(photo)),
                ..Default::default()
            });
            expected.push((id, condition.name(), data.labels[index], view.notes));
        }
    }
    let answers: BTreeMap<String, PredictResponse> =
        predict_responses(&server, requests).await.into_iter().map(|r| (r.id.clone(), r)).collect();

    let mut right: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, condition, label, notes) in &expected {
        let server_answer = &answers[&format!("{id}/server")];
        let probabilities = |suffix: &str| answers.get(&format!("{id}/{suffix}")).map(|r| r.probabilities.clone());
        let first = probabilities("client").unwrap_or_default();
        let client_answer = conclude(*notes, &first, probabilities("other").as_deref());
        assert_eq!(
            (client_answer.digit, client_answer.notes.no_digit),
            (server_answer.digit, server_answer.no_digit),
            "{id}: the client's preprocessing and the server's disagree"
        );
        assert!(
            (client_answer.confidence - server_answer.confidence).abs() < 1e-4,
            "{id}: {} against {}",
            client_answer.confidence,
            server_answer.confidence
        );
        *right.entry(condition).or_default() +=
            usize::from(!server_answer.no_digit && server_answer.digit == u32::from(*label));
    }
    let total: usize = right.values().sum();
    eprintln!("photos read right: {total}/{} {right:?}", expected.len());
    for (condition, count) in &right {
        assert!(*count >= PER_CONDITION - 2, "{condition}: {count}/{PER_CONDITION} right");
    }
    assert!(total as f64 >= 0.97 * expected.len() as f64, "{total}/{} right", expected.len());
}

/// Photos per condition for the photo model's test.
const PHOTO_MODEL_PER_CONDITION: usize = 200;

/// `mnist-photo` (the three-block network fine-tuned with rotations and
/// thickened strokes) reads digits turned 15-30 degrees and marker strokes
/// clearly better than the default `mnist` does on the same seeded photos,
/// and clean scans at least as well (docs/preprocessing.md, "A model for
/// photos"): what it ships for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_photo_model_reads_rotated_and_marker_digits_better_than_the_default() {
    let models = common::models_dir();
    let server = TestServer::start(&[
        "--model",
        models.join("mnist.onnx").to_str().unwrap(),
        "--model",
        models.join("mnist-photo.onnx").to_str().unwrap(),
    ])
    .await;
    let data = test_set();
    let mut generator = PhotoGenerator::new(11, 320);
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for (c, condition) in [Condition::Rotated, Condition::Marker, Condition::Clean].into_iter().enumerate() {
        for n in 0..PHOTO_MODEL_PER_CONDITION {
            let index = c * PHOTO_MODEL_PER_CONDITION + n;
            let photo = generator.photo_jpeg(data.image(index), condition);
            for model in ["mnist", "mnist-photo"] {
                requests.push(PredictRequest {
                    id: format!("{}/{n}/{model}", condition.name()),
                    input: Some(Input::Image(photo.clone())),
                    model: model.to_string(),
                    ..Default::default()
                });
            }
            expected.push((format!("{}/{n}", condition.name()), condition.name(), data.labels[index]));
        }
    }
    let answers: BTreeMap<String, u32> = predict_all(&server, requests).await.into_iter().collect();
    assert_eq!(answers.len(), expected.len() * 2);
    let mut right: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (id, condition, label) in &expected {
        for model in ["mnist", "mnist-photo"] {
            let digit = answers[&format!("{id}/{model}")];
            *right.entry((*condition, model)).or_default() += usize::from(digit == u32::from(*label));
        }
    }
    eprintln!("right of {PHOTO_MODEL_PER_CONDITION} per condition: {right:?}");
    let count = |condition: &str, model: &str| right[&(condition, model)];
    // What it was tuned for: clearly better there (200, 198 against 193,
    // 190 when this was written); clean scans at least as well, give or
    // take a photo (199 against 198).
    for condition in ["rotated", "marker"] {
        assert!(count(condition, "mnist-photo") >= count(condition, "mnist") + 3, "{condition}: {right:?}");
    }
    assert!(count("clean", "mnist-photo") + 1 >= count("clean", "mnist"), "{right:?}");
}

/// The answers (id, digit) to `requests`, sent on one `Predict` stream, in
/// the order they come back; none may be an error.
async fn predict_all(server: &TestServer, requests: Vec<PredictRequest>) -> Vec<(String, u32)> {
    predict_responses(server, requests).await.into_iter().map(|r| (r.id, r.digit)).collect()
}

async fn predict_responses(server: &TestServer, requests: Vec<PredictRequest>) -> Vec<PredictResponse> {
    let mut client = server.client().await;
    let mut responses = client.predict(futures_util::stream::iter(requests)).await.unwrap().into_inner();
    let mut answers = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        assert!(response.error.is_none(), "{}: {:?}", response.id, response.error);
        answers.push(response);
    }
    answers
}
