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
    preprocess::{DecodeLimits, preprocess},
    proto::v1::{PredictRequest, predict_request::Input},
    synth::{Condition, PhotoGenerator},
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
            let pixels = preprocess(&photo, &DecodeLimits::default()).expect("a generated photo decodes");
            let id = format!("{}/{n}", condition.name());
            requests.push(PredictRequest {
                id: format!("{id}/client"),
                input: Some(Input::Pixels(pixels)),
                ..Default::default()
            });
            requests.push(PredictRequest {
                id: format!("{id}/server"),
                input: Some(Input::Image(photo)),
                ..Default::default()
            });
            expected.push((condition.name(), data.labels[index]));
        }
    }
    let mut client = server.client().await;
    let mut responses = client.predict(futures_util::stream::iter(requests)).await.unwrap().into_inner();
    let mut answers = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        assert!(response.error.is_none(), "{}: {:?}", response.id, response.error);
        answers.push(response.digit);
    }
    assert_eq!(answers.len(), expected.len() * 2);

    let mut right: BTreeMap<&str, usize> = BTreeMap::new();
    for (pair, (condition, label)) in answers.chunks(2).zip(&expected) {
        assert_eq!(pair[0], pair[1], "{condition}: the client's preprocessing and the server's disagree");
        *right.entry(condition).or_default() += usize::from(pair[0] == u32::from(*label));
    }
    let total: usize = right.values().sum();
    eprintln!("photos read right: {total}/{} {right:?}", expected.len());
    for (condition, count) in &right {
        assert!(*count >= PER_CONDITION - 2, "{condition}: {count}/{PER_CONDITION} right");
    }
    assert!(total as f64 >= 0.97 * expected.len() as f64, "{total}/{} right", expected.len());
}
