//! `Read` and `ReadOne` through real gRPC: handwritten numbers read with
//! their digits' boxes, the reading model chosen by default, raw gray pixels
//! read as the encoded file is, and errors as `Predict` gives them.

mod common;

use common::{TestServer, models_dir, test_set};
use image::{GrayImage, Luma};
use mnist::{
    preprocess::{DecodeLimits, decode},
    proto::v1::{
        GrayImage as GrayPixels, ListModelsRequest, ReadRequest, classifier_client::ClassifierClient,
        read_request::Input,
    },
    synth::{Condition, PhotoGenerator, Spacing},
};
use tonic::{Code, transport::Channel};

async fn repository_server() -> TestServer {
    repository_server_with(&[]).await
}

/// A server of every shipped model, as scripts/serve.sh starts it, with `flags` added.
async fn repository_server_with(flags: &[&str]) -> TestServer {
    let models = models_dir();
    let mut args = vec!["--model-repository", models.to_str().unwrap(), "--default-model", "mnist"];
    args.extend_from_slice(flags);
    TestServer::start(&args).await
}

fn encoded(image: &GrayImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// A `ReadOne` request for an encoded `photo`, read by `model` (empty: the
/// server's readers), with each digit's `top_k` likeliest classes.
fn read_request(photo: &[u8], model: &str, top_k: u32) -> ReadRequest {
    ReadRequest { input: Some(Input::Image(photo.to_vec())), model: model.into(), top_k, ..Default::default() }
}

async fn read_one(
    client: &mut ClassifierClient<Channel>,
    input: Input,
) -> Result<mnist::proto::v1::ReadResponse, tonic::Status> {
    let request = ReadRequest { id: "n".into(), input: Some(input), top_k: 3, ..Default::default() };
    client.read_one(request).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_read_with_boxes_by_the_reading_model() {
    let server = repository_server().await;
    let mut client = server.client().await;
    let listed = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.read_model, "mnist-reader", "the shipped reading model reads by default");
    assert_eq!(listed.second_read_model, "", "one reader unless the server is told of a second");

    let data = test_set();
    let mut generator = PhotoGenerator::new(3, 640);
    for n in 0..4 {
        let indices: Vec<usize> = (0..5).map(|k| 100 + n * 5 + k).collect();
        let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
        let truth: String = indices.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
        let (photo, boxes) = generator.number_jpeg_with_boxes(&digits, Spacing::Wide, Condition::Clean);
        let response = read_one(&mut client, Input::Image(photo.clone())).await.unwrap();
        assert_eq!(response.text, truth);
        assert_eq!(response.model_name, "mnist-reader");
        assert_eq!(response.model.len(), 12);
        // Read right, widely spaced on clean paper: the model is sure of the
        // whole text (its probability over every alignment, not a product).
        assert!(response.confidence > 0.5 && response.confidence <= 1.0, "{}", response.confidence);
        for (digit, truth_box) in response.digits.iter().zip(&boxes) {
            let b = digit.r#box.unwrap();
            // Each box holds its digit's ink, give or take the strokes' soft edges.
            let near = |found: u32, drawn: u32| found.abs_diff(drawn) <= 12;
            assert!(near(b.x, truth_box[0]) && near(b.x + b.width, truth_box[2]), "{b:?} vs {truth_box:?}");
            assert!(near(b.y, truth_box[1]) && near(b.y + b.height, truth_box[3]), "{b:?} vs {truth_box:?}");
            assert_eq!(digit.top_k.len(), 3);
            assert_eq!(digit.top_k[0].digit, digit.digit);
            assert!(digit.top_k.windows(2).all(|w| w[0].probability >= w[1].probability));
        }
        // The same photo as raw gray pixels reads the same.
        let gray = decode(&photo, &DecodeLimits::default()).unwrap().to_luma8();
        let (width, height) = gray.dimensions();
        let pixels = GrayPixels { width, height, pixels: gray.into_raw() };
        assert_eq!(read_one(&mut client, Input::Pixels(pixels)).await.unwrap().text, truth);
    }
}

/// With a second reader (`--second-read-model`), a request naming no model
/// is read by both readers and answered with the reading it is surer of;
/// naming one, by that one alone. Without (the default), the reading
/// model's reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_readers_read_each_photo_and_the_surer_reading_is_the_answer() {
    // Unchecked, so that a reading naming no model is one of the two named ones.
    let server = repository_server_with(&["--second-read-model", "mnist-reader-cuts", "--check-model", "none"]).await;
    let mut client = server.client().await;
    let listed = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.second_read_model, "mnist-reader-cuts");
    let one_reader = repository_server_with(&["--check-model", "none"]).await;
    let mut alone = one_reader.client().await;

    let data = test_set();
    let mut generator = PhotoGenerator::new(5, 640);
    let mut chosen = std::collections::BTreeSet::new();
    for n in 0..12 {
        let indices: Vec<usize> = (0..4 + n % 4).map(|k| 300 + n * 8 + k).collect();
        let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
        let spacing = [Spacing::Touching, Spacing::Close, Spacing::Normal][n % 3];
        let (photo, _) = generator.number_jpeg_with_boxes(&digits, spacing, Condition::UnevenLight);
        let read_with = |model: &str| read_request(&photo, model, 3);
        let both = client.read_one(read_with("")).await.unwrap().into_inner();
        let windows = client.read_one(read_with("mnist-reader")).await.unwrap().into_inner();
        let cuts = client.read_one(read_with("mnist-reader-cuts")).await.unwrap().into_inner();
        let surer = if cuts.confidence > windows.confidence { &cuts } else { &windows };
        assert_eq!((&both.text, both.confidence), (&surer.text, surer.confidence), "photo {n}");
        assert_eq!(both.model_name, surer.model_name);
        assert_eq!(both.digits, surer.digits);
        chosen.insert(both.model_name.clone());
        let single = alone.read_one(read_with("")).await.unwrap().into_inner();
        assert_eq!((&single.text, single.confidence), (&windows.text, windows.confidence), "photo {n}");
        assert_eq!(single.model_name, "mnist-reader");
    }
    // On these photos each reader is the surer one at least once.
    assert_eq!(chosen.len(), 2, "{chosen:?}");
}

/// The digits of a reading that stand alone are checked by the
/// single-digit model the server lists (`mnist-three-block` by default,
/// `mnist::read::check`): on numbers of MNIST test digits spaced apart, no
/// fewer are read right than by the window model alone (a request naming
/// it), where the digits are but not which they are may change, and two
/// photos it misreads are read right; a server told `--check-model none`
/// answers as the window model alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_standing_alone_are_checked_by_a_single_digit_model() {
    let server = repository_server().await;
    let mut client = server.client().await;
    let listed = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.check_model, "mnist-three-block", "the strongest shipped single-digit model checks");
    let unchecked_server = repository_server_with(&["--check-model", "none"]).await;
    let mut unchecked = unchecked_server.client().await;
    let listed = unchecked.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.check_model, "");

    let data = test_set();
    let mut generator = PhotoGenerator::new(17, 640);
    let (mut right_checked, mut right_alone, mut touched, mut checked_digits) = (0, 0, 0, 0);
    for n in 0..CHECKED_PHOTOS {
        let indices = generator.pick_number(data.len());
        let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
        let truth: String = indices.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
        let spacing = [Spacing::Wide, Spacing::Normal, Spacing::Close][n % 3];
        let condition = Condition::NUMBERS[n % Condition::NUMBERS.len()];
        let (photo, _) = generator.number_jpeg_with_boxes(&digits, spacing, condition);
        let read_with = |model: &str| read_request(&photo, model, 10);
        let checked = client.read_one(read_with("")).await.unwrap().into_inner();
        let alone = client.read_one(read_with("mnist-reader")).await.unwrap().into_inner();
        let none = unchecked.read_one(read_with("")).await.unwrap().into_inner();
        assert_eq!((&none.text, none.confidence), (&alone.text, alone.confidence), "photo {n}");
        // The check changes which digit, never where the digits are.
        assert_eq!(checked.digits.len(), alone.digits.len(), "photo {n}");
        assert!(alone.digits.iter().chain(&none.digits).all(|d| !d.checked), "photo {n}: unchecked readings");
        checked_digits += checked.digits.iter().filter(|d| d.checked).count();
        for (c, a) in checked.digits.iter().zip(&alone.digits) {
            assert_eq!(c.r#box, a.r#box, "photo {n}");
            let total: f32 = c.top_k.iter().map(|s| s.probability).sum();
            assert!((total - 1.0).abs() < 1e-3, "photo {n}: combined probabilities sum to {total}");
        }
        assert!(checked.confidence > 0.0 && checked.confidence <= 1.0, "photo {n}: {}", checked.confidence);
        touched += usize::from(checked.confidence != alone.confidence);
        right_checked += usize::from(checked.text == truth);
        right_alone += usize::from(alone.text == truth);
    }
    eprintln!("{CHECKED_PHOTOS} photos: {right_checked} read right checked, {right_alone} by the window model alone");
    assert!(right_checked >= right_alone, "checked {right_checked}, window model alone {right_alone}");
    assert!(touched >= CHECKED_PHOTOS / 2, "the check moved the confidence of only {touched} readings");
    // Spaced apart, most digits stand alone and say they were checked.
    assert!(checked_digits >= 2 * CHECKED_PHOTOS, "{checked_digits} digits checked in {CHECKED_PHOTOS} photos");

    // Two photos the window model alone misreads (a 4 read as a 1, a 6 as
    // a 0) and the check reads right, written by `read_accuracy --split
    // test --per-cell 50 --seed 5 --write DIR` (its `checked-*` photos).
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (file, truth, unchecked) in
        [("number-4289856.jpg", "4289856", "1289856"), ("number-4186391.jpg", "4186391", "4180391")]
    {
        let photo = std::fs::read(fixtures.join(file)).unwrap();
        let read_with = |model: &str| read_request(&photo, model, 0);
        assert_eq!(client.read_one(read_with("")).await.unwrap().into_inner().text, truth, "{file}");
        assert_eq!(client.read_one(read_with("mnist-reader")).await.unwrap().into_inner().text, unchecked, "{file}");
    }
}

/// The web page's `/api/read` (the HTTP front) reads as `ReadOne` does and
/// says which digits the check model read too, and which model that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_says_which_digits_were_checked() {
    let models = models_dir();
    let server =
        TestServer::start_with_http(&["--model-repository", models.to_str().unwrap(), "--default-model", "mnist"])
            .await;
    let addr = server.http_addr.unwrap();
    let photo = std::fs::read(models.join("../examples/numbers/amount-313.jpg")).unwrap();
    let read = |path: &'static str| common::http(addr, "POST", path, &[("content-type", "image/jpeg")], photo.clone());

    let (status, _, body) = read("/api/read").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["text"], "313");
    assert_eq!(answer["model_name"], "mnist-reader");
    assert_eq!(answer["check_model"], "mnist-three-block");
    let digits = answer["digits"].as_array().unwrap();
    assert_eq!(digits.len(), 3);
    // Widely spaced: every digit stands alone, so every one was checked.
    assert!(digits.iter().all(|d| d["checked"] == true), "{answer}");
    let mut client = server.client().await;
    let grpc = client.read_one(read_request(&photo, "", 0)).await.unwrap().into_inner();
    let confidence = answer["confidence"].as_f64().unwrap();
    assert!((confidence - f64::from(grpc.confidence)).abs() < 1e-6, "{confidence} vs {}", grpc.confidence);

    // A model named reads alone: nothing is checked.
    let (_, _, body) = read("/api/read?model=mnist-reader").await;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["text"], "313");
    assert!(answer["check_model"].is_null(), "{answer}");
    assert!(answer["digits"].as_array().unwrap().iter().all(|d| d["checked"] == false), "{answer}");
}

/// Photos of [`digits_standing_alone_are_checked_by_a_single_digit_model`].
const CHECKED_PHOTOS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_errors_predict_gives() {
    let server = repository_server().await;
    let mut client = server.client().await;
    let empty = client.read_one(ReadRequest::default()).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    let garbage = read_one(&mut client, Input::Image(b"not an image".to_vec())).await.unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument);
    assert!(garbage.message().contains("decode"), "{garbage:?}");
    let short = GrayPixels { width: 10, height: 10, pixels: vec![0; 99] };
    let short = read_one(&mut client, Input::Pixels(short)).await.unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument);
    assert!(short.message().contains("10x10"), "{short:?}");
    let unknown = ReadRequest {
        input: Some(Input::Image(encoded(&GrayImage::new(8, 8)))),
        model: "no-such-model".into(),
        ..Default::default()
    };
    assert_eq!(client.read_one(unknown).await.unwrap_err().code(), Code::NotFound);
    let mut late = tonic::Request::new(ReadRequest {
        input: Some(Input::Image(encoded(&GrayImage::from_pixel(600, 200, Luma([200]))))),
        ..Default::default()
    });
    late.metadata_mut().insert("grpc-timeout", "1n".parse().unwrap());
    let late = common::raw_classifier(server.addr).read_one(late).await.unwrap_err();
    assert!(common::is_servers_deadline_answer(&late), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pages_get_a_clear_answer() {
    let server = repository_server().await;
    let mut client = server.client().await;
    let mut specks = GrayImage::from_pixel(800, 600, Luma([235]));
    for i in 0..500u32 {
        let (x, y) = ((i * 97) % 790 + 4, (i * 61) % 590 + 4);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            specks.put_pixel(x + dx, y + dy, Luma([30]));
        }
    }
    let mut strip = GrayImage::from_pixel(20_000, 200, Luma([235]));
    for x in (40..19_900).step_by(60) {
        for y in 50..150 {
            for dx in 0..8 {
                strip.put_pixel(x + dx, y, Luma([20]));
            }
        }
    }
    let pages = [
        ("empty", GrayImage::from_pixel(640, 480, Luma([230]))),
        ("all ink", GrayImage::from_pixel(640, 480, Luma([5]))),
        ("500 specks", specks),
        ("20000x200 strip", strip),
    ];
    for (name, page) in pages {
        let response = read_one(&mut client, Input::Image(encoded(&page))).await;
        if name == "20000x200 strip" {
            // Longer than the server's 8192-pixel side: refused before decoding, with the reason.
            let refused = response.expect_err("a 20000-pixel side is over the limit");
            assert_eq!(refused.code(), Code::InvalidArgument);
            assert!(refused.message().contains("20000x200"), "{refused:?}");
            continue;
        }
        let response = response.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(response.digits.len() <= mnist::read::MAX_PIECES, "{name}: {} digits", response.digits.len());
        assert!(response.text.chars().all(|c| c.is_ascii_digit()), "{name}: {}", response.text);
        if name == "empty" {
            assert_eq!((response.text.as_str(), response.confidence), ("", 0.0));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_stream_answers_in_order_with_failures_in_their_items() {
    let server = repository_server().await;
    let mut client = server.client().await;
    let data = test_set();
    let mut generator = PhotoGenerator::new(5, 480);
    let digits: Vec<&[u8]> = (0..3).map(|i| data.image(i)).collect();
    let truth: String = (0..3).map(|i| char::from(b'0' + data.labels[i])).collect();
    let photo = generator.number_jpeg(&digits, Spacing::Wide, Condition::Clean);
    let requests = vec![
        ReadRequest { id: "a".into(), input: Some(Input::Image(photo.clone())), ..Default::default() },
        ReadRequest { id: "b".into(), input: Some(Input::Image(b"garbage".to_vec())), ..Default::default() },
        ReadRequest { id: "c".into(), input: Some(Input::Image(photo)), expected_digits: 3, ..Default::default() },
    ];
    let mut stream = client.read(futures_util::stream::iter(requests)).await.unwrap().into_inner();
    let mut answers = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        answers.push(response);
    }
    let ids: Vec<&str> = answers.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(answers[0].text, truth);
    assert_eq!(answers[1].error.as_ref().map(|e| e.code), Some(Code::InvalidArgument as i32));
    assert_eq!(answers[2].text, truth);
}

/// `mnist-read` over the Open Inference Protocol's gRPC and HTTP fronts
/// reads what `ReadOne` reads, lists itself, describes its tensors, and
/// refuses what it cannot read with INVALID_ARGUMENT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_read_over_the_open_inference_protocol_as_read_one_reads_them() {
    use mnist::proto::inference::{
        InferParameter, ModelInferRequest, ModelMetadataRequest, RepositoryIndexRequest,
        grpc_inference_service_client::GrpcInferenceServiceClient, infer_parameter::ParameterChoice,
        model_infer_request::InferInputTensor,
    };

    let models = models_dir();
    let server =
        TestServer::start_with_http(&["--model-repository", models.to_str().unwrap(), "--default-model", "mnist"])
            .await;
    let mut classifier = server.client().await;
    let mut oip = GrpcInferenceServiceClient::new(server.channel().await);

    let index = oip.repository_index(RepositoryIndexRequest::default()).await.unwrap().into_inner();
    assert!(index.models.iter().any(|m| m.name == "mnist-read"), "{:?}", index.models);
    let metadata = oip
        .model_metadata(ModelMetadataRequest { name: "mnist-read".into(), version: String::new() })
        .await
        .unwrap()
        .into_inner();
    let outputs: Vec<&str> = metadata.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!((metadata.inputs[0].name.as_str(), outputs), ("image", vec!["text", "confidence", "digits"]));

    let data = test_set();
    let mut generator = PhotoGenerator::new(11, 640);
    let photos: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            let digits: Vec<&[u8]> = (0..4).map(|k| data.image(300 + n * 4 + k)).collect();
            generator.number_jpeg(&digits, Spacing::Normal, Condition::Ruled)
        })
        .collect();
    let request = |photos: &[Vec<u8>], parameters: Vec<(String, InferParameter)>| ModelInferRequest {
        model_name: "mnist-read".into(),
        id: "numbers".into(),
        inputs: vec![InferInputTensor {
            name: "image".into(),
            datatype: "BYTES".into(),
            shape: vec![photos.len() as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![
            photos.iter().flat_map(|p| [(p.len() as u32).to_le_bytes().to_vec(), p.clone()].concat()).collect(),
        ],
        parameters: parameters.into_iter().collect(),
        ..Default::default()
    };
    let response = oip.model_infer(request(&photos, vec![])).await.unwrap().into_inner();
    assert_eq!(response.model_name, "mnist-read");
    let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["text", "confidence", "digits"]);
    let split = |raw: &[u8]| {
        let mut elements = Vec::new();
        let mut rest = raw;
        while let Some((length, tail)) = rest.split_first_chunk::<4>() {
            let (element, tail) = tail.split_at(u32::from_le_bytes(*length) as usize);
            elements.push(String::from_utf8(element.to_vec()).unwrap());
            rest = tail;
        }
        elements
    };
    let texts = split(&response.raw_output_contents[0]);
    let confidences: Vec<f32> =
        response.raw_output_contents[1].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let digits = split(&response.raw_output_contents[2]);
    for (n, photo) in photos.iter().enumerate() {
        let one = read_one(&mut classifier, Input::Image(photo.clone())).await.unwrap();
        assert_eq!(texts[n], one.text);
        assert!((confidences[n] - one.confidence).abs() < 1e-6);
        let details: serde_json::Value = serde_json::from_str(&digits[n]).unwrap();
        assert_eq!(details.as_array().unwrap().len(), one.digits.len());
        assert_eq!(details[0]["box"]["x"], one.digits[0].r#box.unwrap().x);
        let checked: Vec<bool> = details.as_array().unwrap().iter().map(|d| d["checked"] == true).collect();
        assert_eq!(checked, one.digits.iter().map(|d| d.checked).collect::<Vec<_>>());
    }

    // A required length, as ReadOne's expected_digits.
    let three = InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(3)) };
    let response =
        oip.model_infer(request(&photos[..1], vec![("expected_digits".into(), three)])).await.unwrap().into_inner();
    let asked = ReadRequest { input: Some(Input::Image(photos[0].clone())), expected_digits: 3, ..Default::default() };
    let one = classifier.read_one(asked).await.unwrap().into_inner();
    assert_eq!(split(&response.raw_output_contents[0])[0], one.text);

    // What it cannot read is INVALID_ARGUMENT, with the reason.
    let mut pixels = request(&photos[..1], vec![]);
    pixels.inputs[0] =
        InferInputTensor { name: "pixels".into(), datatype: "UINT8".into(), shape: vec![1, 784], ..Default::default() };
    pixels.raw_input_contents = vec![vec![0; 784]];
    let status = oip.model_infer(pixels).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("encoded photos"), "{}", status.message());
    let zero = InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(0)) };
    let status = oip.model_infer(request(&photos[..1], vec![("expected_digits".into(), zero)])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // HTTP, JSON out: the same text.
    let addr = server.http_addr.unwrap();
    let header = serde_json::json!({
        "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1],
                     "parameters": { "binary_data_size": photos[0].len() + 4 } }],
        "outputs": [{ "name": "text" }],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&(photos[0].len() as u32).to_le_bytes());
    body.extend_from_slice(&photos[0]);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let http_request = hyper::Request::builder()
        .method("POST")
        .uri("/v2/models/mnist-read/infer")
        .header("host", "localhost")
        .header("inference-header-content-length", header.len().to_string())
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let reply = sender.send_request(http_request).await.unwrap();
    assert_eq!(reply.status(), 200);
    use http_body_util::BodyExt;
    let reply: serde_json::Value =
        serde_json::from_slice(&reply.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(reply["model_name"], "mnist-read");
    assert_eq!(reply["outputs"][0]["data"][0], texts[0].as_str());
}
