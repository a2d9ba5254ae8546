//! Several models in one server: each request reaches the model it names,
//! through every front, and a model's reload leaves the others serving.

mod common;

use std::{collections::BTreeMap, path::Path};

use common::{ServerProcess, TestServer, models_dir, png, test_set};
use mnist::{
    IMAGE_PIXELS, PIXEL_MEAN, PIXEL_STD,
    dataset::sha256_hex,
    proto::{
        inference::{
            ModelInferRequest, ModelMetadataRequest, RepositoryIndexRequest,
            grpc_inference_service_client::GrpcInferenceServiceClient,
            model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
        },
        v1::{
            GetModelInfoRequest, ListModelsRequest, ModelInfo, PredictRequest, classifier_client::ClassifierClient,
            predict_request::Input,
        },
    },
};
use mnist_server::backend::{Backend, OnnxBackend, RuntimeOptions};
use tonic::transport::Channel;

/// The probabilities `model` gives `images` when run directly, outside the
/// server: what the server must answer for requests that name it.
fn direct_probabilities(model: &Path, images: &[&[u8]]) -> Vec<Vec<f32>> {
    let options =
        RuntimeOptions { device: mnist_server::config::Device::Cpu, intra_threads: 1, spinning: false, sessions: 1 };
    let (mut backend, _) = OnnxBackend::load(model, &options).expect("load the model");
    let mut input = Vec::with_capacity(images.len() * IMAGE_PIXELS);
    for image in images {
        mnist::normalize_into(image, PIXEL_MEAN, PIXEL_STD, &mut input);
    }
    let logits = backend.infer(&input, images.len()).expect("direct inference");
    logits.chunks(10).map(mnist::softmax).collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 2e-5)
}

async fn list(client: &mut ClassifierClient<Channel>) -> Vec<ModelInfo> {
    client.list_models(ListModelsRequest {}).await.expect("ListModels").into_inner().models
}

/// Every shipped model, served at once: ListModels names them (the default
/// first), each mnist.v1 and OIP request is answered by the model it names
/// with that model's own probabilities, and an unknown name is NOT_FOUND
/// naming the served ones.
#[tokio::test]
async fn each_request_is_answered_by_the_model_it_names() {
    let repository = models_dir();
    let server =
        TestServer::start(&["--model-repository", repository.to_str().unwrap(), "--default-model", "mnist"]).await;
    let mut client = server.client().await;
    let served = list(&mut client).await;
    let names: Vec<&str> = served.iter().map(|m| m.name.as_str()).collect();
    let mut files: Vec<String> = std::fs::read_dir(&repository)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".onnx"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "the repository ships several models: {files:?}");
    assert_eq!(names.len(), files.len(), "{names:?} for {files:?}");
    assert_eq!(names[0], "mnist", "--default-model goes first");
    assert!(served[0].is_default && served[1..].iter().all(|m| !m.is_default));

    let data = test_set().take(40);
    let images: Vec<&[u8]> = (0..data.len()).map(|i| data.image(i)).collect();
    let mut oip = GrpcInferenceServiceClient::new(server.channel().await);
    let mut differs_from_default = BTreeMap::new();
    let default_expected = direct_probabilities(&repository.join("mnist.onnx"), &images);
    for info in &served {
        let file = repository.join(&info.model_file);
        assert_eq!(info.model_sha256, sha256_hex(&std::fs::read(&file).unwrap()), "{}", info.name);
        let expected = direct_probabilities(&file, &images);
        differs_from_default
            .insert(info.name.clone(), expected.iter().zip(&default_expected).any(|(a, b)| !close(a, b)));

        // mnist.v1: unary, pixels and an encoded image.
        for (i, image) in images.iter().enumerate().take(10) {
            let input = if i % 2 == 0 { Input::Pixels(image.to_vec()) } else { Input::Image(png(image)) };
            let request = PredictRequest {
                id: i.to_string(),
                input: Some(input),
                model: info.name.clone(),
                return_logits: false,
            };
            let reply = client.predict_one(request).await.unwrap().into_inner();
            assert_eq!(reply.model_name, info.name);
            assert_eq!(reply.model, info.model_sha256[..12]);
            assert!(close(&reply.probabilities, &expected[i]), "{} image {i}", info.name);
        }
        // mnist.v1: one stream over every image.
        let requests: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(i, image)| PredictRequest {
                id: i.to_string(),
                input: Some(Input::Pixels(image.to_vec())),
                model: info.name.clone(),
                return_logits: false,
            })
            .collect();
        let mut stream = client.predict(tokio_stream::iter(requests)).await.unwrap().into_inner();
        let mut answered = 0;
        while let Some(reply) = stream.message().await.unwrap() {
            let i: usize = reply.id.parse().unwrap();
            assert_eq!(reply.model_name, info.name);
            assert!(close(&reply.probabilities, &expected[i]), "{} streamed image {i}", info.name);
            answered += 1;
        }
        assert_eq!(answered, images.len());

        // The Open Inference Protocol addresses each model by name.
        let request = ModelInferRequest {
            model_name: info.name.clone(),
            inputs: vec![InferInputTensor {
                name: "pixels".into(),
                datatype: "UINT8".into(),
                shape: vec![images.len() as i64, 784],
                ..Default::default()
            }],
            outputs: vec![InferRequestedOutputTensor { name: "probabilities".into(), ..Default::default() }],
            raw_input_contents: vec![images.concat()],
            ..Default::default()
        };
        let reply = oip.model_infer(request).await.unwrap().into_inner();
        assert_eq!(reply.model_name, info.name);
        let values: Vec<f32> = reply.raw_output_contents[0]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        for (i, probabilities) in values.chunks(10).enumerate() {
            assert!(close(probabilities, &expected[i]), "{} OIP image {i}", info.name);
        }
        let metadata = oip
            .model_metadata(ModelMetadataRequest { name: info.name.clone(), version: String::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(metadata.name, info.name);
        let one = client.get_model_info(GetModelInfoRequest { model: info.name.clone() }).await.unwrap().into_inner();
        assert_eq!(one, *info);
    }
    // The models really are different (int8 rounds differently), so the
    // probability checks above tell them apart.
    assert!(differs_from_default.iter().any(|(name, differs)| name != "mnist" && *differs), "{differs_from_default:?}");

    // Triton's repository index lists them all, then reading numbers.
    let index = oip.repository_index(RepositoryIndexRequest::default()).await.unwrap().into_inner();
    let indexed: Vec<&str> = index.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(indexed[..names.len()], names);
    assert_eq!(indexed[names.len()..], ["mnist-read"]);
    assert!(index.models.iter().all(|m| m.state == "READY"));

    // A name that is not served: NOT_FOUND naming the served ones, on every front.
    let unknown = PredictRequest {
        id: "x".into(),
        input: Some(Input::Pixels(images[0].to_vec())),
        model: "resnet".into(),
        return_logits: false,
    };
    let status = client.predict_one(unknown.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("'resnet'") && status.message().contains("'mnist-int8'"), "{status:?}");
    let mut stream = client.predict(tokio_stream::iter([unknown])).await.unwrap().into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    assert_eq!(reply.error.map(|e| e.code), Some(tonic::Code::NotFound as i32), "a stream item's error");
    let status = client.get_model_info(GetModelInfoRequest { model: "resnet".into() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status =
        oip.model_metadata(ModelMetadataRequest { name: "resnet".into(), version: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("'mnist'"), "{status:?}");

    // No name: the default model for MNIST's own form (pixels, a 28x28
    // image), the photo model for a photo (any other size).
    let request =
        PredictRequest { id: "d".into(), input: Some(Input::Pixels(images[0].to_vec())), ..Default::default() };
    assert_eq!(client.predict_one(request).await.unwrap().into_inner().model_name, "mnist");
    assert_eq!(unnamed_file_answered_by(&mut client, png(images[0])).await, "mnist");
    assert_eq!(unnamed_file_answered_by(&mut client, photo(images[0])).await, "mnist-photo");
    let listed = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.photo_model, "mnist-photo");
    server.stop().await.unwrap();
}

/// `--photo-model` gives image files naming no model to another served
/// model, or (`none`) to the default one, and ListModels says which; so
/// does the web page's API, whose drawings and photos are image files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_photo_model_is_chosen_at_start() {
    let repository = models_dir();
    let image = test_set().image(0).to_vec();
    for (flag, expected) in [("none", "mnist"), ("mnist-three-block", "mnist-three-block")] {
        let args =
            ["--model-repository", repository.to_str().unwrap(), "--default-model", "mnist", "--photo-model", flag];
        let server = TestServer::start_with_http(&args).await;
        let mut client = server.client().await;
        let listed = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
        assert_eq!(listed.photo_model, expected, "--photo-model {flag}");
        assert_eq!(unnamed_file_answered_by(&mut client, photo(&image)).await, expected, "--photo-model {flag}");

        let addr = server.http_addr.unwrap();
        let (_, _, body) = common::http(addr, "GET", "/api/models", &[], Vec::new()).await;
        let models: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(models["photo_model"], expected, "{models}");
        assert_eq!(models["read_model"], "mnist-reader", "{models}");
        let (status, _, body) = common::http(addr, "POST", "/api/classify", &[], photo(&image)).await;
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, &answer["model_name"]), (200, &serde_json::json!(expected)), "{answer}");
        server.stop().await.unwrap();
    }
}

/// The model that answers the image file `file` sent naming none.
async fn unnamed_file_answered_by(client: &mut ClassifierClient<Channel>, file: Vec<u8>) -> String {
    let request = PredictRequest { id: "f".into(), input: Some(Input::Image(file)), ..Default::default() };
    client.predict_one(request).await.unwrap().into_inner().model_name
}

/// A 56x56 PNG of a 28x28 digit: an image preprocessing fits, as it does a photo.
fn photo(pixels: &[u8]) -> Vec<u8> {
    let digit = image::GrayImage::from_raw(28, 28, pixels.to_vec()).unwrap();
    let enlarged = image::imageops::resize(&digit, 56, 56, image::imageops::FilterType::Nearest);
    common::png_sized(enlarged.as_raw(), 56)
}

/// A reload of one model (SIGHUP with its file replaced, and a broken file
/// for another) changes only that model; every model keeps answering.
#[tokio::test]
async fn a_reload_replaces_only_the_model_whose_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    std::fs::copy(models_dir().join("mnist.onnx"), &a).unwrap();
    std::fs::copy(models_dir().join("mnist.onnx"), &b).unwrap();
    let server = ServerProcess::start(&["--model", a.to_str().unwrap(), "--model", b.to_str().unwrap()]);
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut client = ClassifierClient::new(channel);
    let before = list(&mut client).await;
    assert_eq!(before.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);

    // b's file becomes the int8 model, a's is truncated: b moves on, a stays.
    let int8 = models_dir().join("mnist-int8.onnx");
    std::fs::copy(&int8, &b).unwrap();
    std::fs::write(&a, b"not a model").unwrap();
    server.signal("HUP");
    let int8_sha = sha256_hex(&std::fs::read(&int8).unwrap());
    let mut after = Vec::new();
    for _ in 0..100 {
        after = list(&mut client).await;
        if after[1].model_sha256 == int8_sha {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(after[1].model_sha256, int8_sha, "b runs its new file");
    assert_eq!(after[0].model_sha256, before[0].model_sha256, "a's broken file left its model serving");
    let data = test_set().take(5);
    for (name, sha) in [("a", &before[0].model_sha256), ("b", &int8_sha)] {
        for i in 0..data.len() {
            let request = PredictRequest {
                id: i.to_string(),
                input: Some(Input::Pixels(data.image(i).to_vec())),
                model: name.into(),
                return_logits: false,
            };
            let reply = client.predict_one(request).await.unwrap().into_inner();
            assert_eq!((reply.model_name.as_str(), reply.model.as_str()), (name, &sha[..12]));
            assert_eq!(reply.digit, u32::from(data.labels[i]));
        }
    }
}

/// Flags that name models badly fail at start-up with a clear message.
#[test]
fn bad_model_flags_are_refused_at_start() {
    let shipped = models_dir().join("mnist.onnx");
    let shipped = shipped.to_str().unwrap();
    let (ok, stderr) = common::run_to_exit(&["--model", shipped, "--model", shipped]);
    assert!(!ok && stderr.contains("two models are named 'mnist'"), "{stderr}");
    let (ok, stderr) = common::run_to_exit(&["--model", shipped, "--default-model", "other"]);
    assert!(!ok && stderr.contains("--default-model other"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (ok, stderr) = common::run_to_exit(&["--model-repository", empty.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("no .onnx"), "{stderr}");
    let (ok, stderr) = common::run_to_exit(&["--model", "ok=/nonexistent/x.onnx"]);
    assert!(!ok && stderr.contains("/nonexistent/x.onnx"), "{stderr}");
}

/// The binary run with no model flags (`cargo run -p mnist-server`, a
/// hand-written unit file) serves what scripts/serve.sh serves: every model
/// of the shipped folder, found beside the binary when the working
/// directory has none, `mnist` the default. With no folder anywhere, a clear
/// error names the flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_server_serves_the_shipped_folder_and_says_what_to_give_without_one() {
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mnist-server"));
    command
        .current_dir(elsewhere.path())
        .args(["--addr", "127.0.0.1:0", "--log-format", "json", "--intra-threads", "1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let server = ServerProcess::from_child(command.spawn().unwrap());
    let mut client = ClassifierClient::connect(server.url()).await.unwrap();
    let listed = client.list_models(ListModelsRequest {}).await.unwrap().into_inner();
    let names: Vec<&str> = listed.models.iter().map(|m| m.name.as_str()).collect();
    let shipped = std::fs::read_dir(models_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "onnx"))
        .count();
    assert_eq!(names.len(), shipped, "{names:?}");
    assert_eq!(names[0], "mnist", "the default first: {names:?}");
    assert_eq!((listed.read_model.as_str(), listed.photo_model.as_str()), ("mnist-reader", "mnist-photo"));

    // A copy of the binary with no models folder near it, run where there is none.
    let lonely = elsewhere.path().join("bin/mnist-server");
    std::fs::create_dir_all(lonely.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_mnist-server"), &lonely).unwrap();
    let output = std::process::Command::new(&lonely)
        .current_dir(elsewhere.path())
        .args(["--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no models to serve") && stderr.contains("--model-repository"), "{stderr}");
}
