//! End to end through the Open Inference Protocol fronts: gRPC
//! (`inference.GRPCInferenceService`, with the generated Rust client) and
//! HTTP (hyper), on ephemeral ports. The Python suite
//! (tests/interop/test_oip.py) runs the clients others wrote.

mod common;

use std::time::Duration;

use common::{ServerProcess, TestServer, http, shipped_model, test_set};
use mnist::proto::{
    inference::{
        InferTensorContents, ModelInferRequest, ModelInferResponse, ModelReadyRequest,
        grpc_inference_service_client::GrpcInferenceServiceClient,
        model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
    },
    v1::{PredictRequest, classifier_client::ClassifierClient, predict_request::Input},
};
use tonic::{Code, transport::Channel};

/// A ModelInfer request of `images` as raw UINT8 `pixels` [N,784].
fn pixels_request(images: &[&[u8]]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "mnist".into(),
        id: "request".into(),
        inputs: vec![InferInputTensor {
            name: "pixels".into(),
            datatype: "UINT8".into(),
            shape: vec![images.len() as i64, 784],
            ..Default::default()
        }],
        raw_input_contents: vec![images.concat()],
        ..Default::default()
    }
}

/// The `digit` output of a response, raw or typed.
fn digits(response: &ModelInferResponse) -> Vec<i64> {
    let position = response.outputs.iter().position(|o| o.name == "digit").expect("a digit output");
    match response.raw_output_contents.get(position) {
        Some(raw) => raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect(),
        None => response.outputs[position].contents.as_ref().unwrap().int64_contents.clone(),
    }
}

async fn client(server: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::new(server.channel().await)
}

#[tokio::test]
async fn model_infer_classifies_every_input_form_alike() {
    let server = TestServer::start(&[]).await;
    let mut client = client(&server).await;
    let data = test_set().take(16);
    let images: Vec<&[u8]> = (0..16).map(|i| data.image(i)).collect();
    let labels: Vec<i64> = data.labels.iter().map(|&l| i64::from(l)).collect();

    let raw = client.model_infer(pixels_request(&images)).await.unwrap().into_inner();
    assert_eq!(raw.id, "request");
    assert_eq!(raw.model_version, "1");
    assert_eq!(raw.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["logits", "probabilities", "digit"]);
    assert_eq!(raw.raw_output_contents.len(), 3, "raw inputs are answered with raw outputs");
    let served = ClassifierClient::new(server.channel().await)
        .get_model_info(mnist::proto::v1::GetModelInfoRequest::default())
        .await
        .unwrap()
        .into_inner()
        .model_sha256;
    let model = raw.parameters.get("model_sha256").and_then(|p| p.parameter_choice.clone());
    assert_eq!(
        model,
        Some(mnist::proto::inference::infer_parameter::ParameterChoice::StringParam(served[..12].to_string())),
        "the answer names the model that made it"
    );
    let expected = digits(&raw);
    assert!(expected.iter().zip(&labels).filter(|(a, b)| a == b).count() >= 15, "{expected:?} vs {labels:?}");

    // The same images typed, and normalized by the caller as FP32 `input`.
    let mut typed = pixels_request(&images);
    typed.raw_input_contents.clear();
    typed.inputs[0].shape = vec![16, 28, 28];
    typed.inputs[0].contents = Some(InferTensorContents {
        uint_contents: images.concat().into_iter().map(u32::from).collect(),
        ..Default::default()
    });
    typed.outputs = vec![InferRequestedOutputTensor { name: "digit".into(), ..Default::default() }];
    let typed = client.model_infer(typed).await.unwrap().into_inner();
    assert!(typed.raw_output_contents.is_empty());
    assert_eq!(digits(&typed), expected);

    let normalized: Vec<f32> =
        images.concat().iter().map(|&p| (f32::from(p) / 255.0 - mnist::PIXEL_MEAN) / mnist::PIXEL_STD).collect();
    let mut fp32 = pixels_request(&images);
    fp32.inputs[0] = InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![16, 1, 28, 28],
        ..Default::default()
    };
    fp32.raw_input_contents = vec![normalized.iter().flat_map(|v| v.to_le_bytes()).collect()];
    assert_eq!(digits(&client.model_infer(fp32).await.unwrap().into_inner()), expected);

    // The same answer as mnist.v1 gives.
    let mut classifier = ClassifierClient::new(server.channel().await);
    let one = classifier
        .predict_one(PredictRequest {
            id: "x".into(),
            input: Some(Input::Pixels(images[3].to_vec())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i64::from(one.digit), expected[3]);
}

#[tokio::test]
async fn unknown_models_wrong_tensors_and_oversized_requests_are_refused_with_reasons() {
    // 8 places: at most 8 images per request.
    let server = TestServer::start(&["--max-queue-size", "8", "--max-streams", "1"]).await;
    let mut client = client(&server).await;
    let image = vec![0u8; 784];

    let mut unknown = pixels_request(&[&image]);
    unknown.model_name = "resnet".into();
    let status = client.model_infer(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("'resnet' is not served; this server serves 'mnist'"), "{status:?}");
    let status = client.model_ready(ModelReadyRequest { name: "mnist".into(), version: "2".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let nine: Vec<&[u8]> = vec![&image; 9];
    let status = client.model_infer(pixels_request(&nine)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("9 images; the limit is 8"), "{status:?}");
    let eight: Vec<&[u8]> = vec![&image; 8];
    assert_eq!(digits(&client.model_infer(pixels_request(&eight)).await.unwrap().into_inner()).len(), 8);

    let mut short = pixels_request(&[&image]);
    short.raw_input_contents = vec![vec![0; 700]];
    let status = client.model_infer(short).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("700 values"), "{status:?}");

    let mut two_raw = pixels_request(&[&image]);
    two_raw.raw_input_contents.push(vec![]);
    let status = client.model_infer(two_raw).await.unwrap_err();
    assert!(status.message().contains("2 raw_input_contents for 1 inputs"), "{status:?}");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_deadline_exceeded() {
    let server = TestServer::start(&[]).await;
    let mut request = tonic::Request::new(pixels_request(&[&[0u8; 784]]));
    request.metadata_mut().insert("grpc-timeout", "1n".parse().unwrap());
    // A client with no timer of its own: the answer is the server's.
    let (raw, origin) = common::raw_h2(server.addr);
    let status = GrpcInferenceServiceClient::with_origin(raw, origin).model_infer(request).await.unwrap_err();
    assert!(common::is_servers_deadline_answer(&status), "{status:?}");
}

#[tokio::test]
async fn stream_infer_answers_in_order_with_errors_in_the_stream() {
    let server = TestServer::start(&["--max-in-flight-per-stream", "4"]).await;
    let mut client = client(&server).await;
    let data = test_set().take(30);
    let mut requests: Vec<ModelInferRequest> = (0..10)
        .map(|i| {
            let mut request = pixels_request(&[data.image(3 * i), data.image(3 * i + 1), data.image(3 * i + 2)]);
            request.id = i.to_string();
            request
        })
        .collect();
    requests[4].inputs[0].datatype = "FP32".into(); // a wrong one in the middle
    let answers: Vec<_> =
        client.model_stream_infer(tokio_stream::iter(requests)).await.unwrap().into_inner().collect_all().await;
    assert_eq!(answers.len(), 10);
    for (i, answer) in answers.iter().enumerate() {
        if i == 4 {
            assert!(answer.error_message.contains("expected UINT8"), "{answer:?}");
            assert!(answer.infer_response.is_none());
            continue;
        }
        let response = answer.infer_response.as_ref().unwrap_or_else(|| panic!("{answer:?}"));
        assert_eq!(response.id, i.to_string());
        let labels: Vec<i64> = data.labels[3 * i..3 * i + 3].iter().map(|&l| i64::from(l)).collect();
        assert_eq!(digits(response), labels);
    }
}

/// Collects a response stream, every item or the first error.
trait CollectAll<T> {
    async fn collect_all(self) -> Vec<T>;
}

impl<T> CollectAll<T> for tonic::Streaming<T> {
    async fn collect_all(mut self) -> Vec<T> {
        let mut items = Vec::new();
        while let Some(item) = self.message().await.unwrap() {
            items.push(item);
        }
        items
    }
}

#[tokio::test]
async fn http_infer_json_and_binary() {
    let server = TestServer::start_with_http(&[]).await;
    let addr = server.http_addr.unwrap();
    let data = test_set().take(2);
    let (status, _, body) = http(addr, "GET", "/v2/health/ready", &[], vec![]).await;
    assert_eq!((status, body.as_slice()), (200, br#"{"ready":true}"#.as_slice()));

    // JSON in, JSON out.
    let values: Vec<u8> = data.image(0).to_vec();
    let request = serde_json::json!({
        "id": "json",
        "inputs": [{ "name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": values }],
        "outputs": [{ "name": "digit" }],
    });
    let (status, headers, body) =
        http(addr, "POST", "/v2/models/mnist/infer", &[], serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["id"], "json");
    assert_eq!(reply["parameters"]["model_sha256"].as_str().map(str::len), Some(12));
    assert_eq!(reply["outputs"][0]["data"][0], i64::from(data.labels[0]));

    // Binary in (two images), binary out, as tritonclient.http sends them.
    let header = serde_json::json!({
        "inputs": [{ "name": "pixels", "datatype": "UINT8", "shape": [2, 784],
                     "parameters": { "binary_data_size": 1568 } }],
        "parameters": { "binary_data_output": true },
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(data.image(0));
    body.extend_from_slice(data.image(1));
    let length = header.len().to_string();
    let (status, headers, reply) =
        http(addr, "POST", "/v2/models/mnist/versions/1/infer", &[("inference-header-content-length", &length)], body)
            .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let json_length: usize = headers["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&reply[..json_length]).unwrap();
    let sizes: Vec<u64> = json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["parameters"]["binary_data_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [80, 80, 16], "logits, probabilities, digit");
    let digits: Vec<i64> =
        reply[json_length + 160..].chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(digits, data.labels[..2].iter().map(|&l| i64::from(l)).collect::<Vec<_>>());

    // Errors are JSON with the protocol's status codes.
    let (status, _, body) =
        http(addr, "POST", "/v2/models/mnist/infer", &[("inference-header-content-length", "99")], b"{}".to_vec())
            .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("Inference-Header-Content-Length"));
    let (status, _, body) = http(addr, "GET", "/v2/models/other/config", &[], vec![]).await;
    assert_eq!(status, 404);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("'other'"), "{error}");
}

#[tokio::test]
async fn the_http_port_closes_on_shutdown() {
    let server = TestServer::start_with_http(&["--shutdown-timeout", "5"]).await;
    let addr = server.http_addr.unwrap();
    assert_eq!(http(addr, "GET", "/v2/health/live", &[], vec![]).await.0, 200);
    let stopped = tokio::spawn(server.stop());
    let stopped = stopped.await.unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
    // Once stopped, the port no longer answers.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Images sent at once over the three fronts run in one batch: every
/// protocol feeds the same queue.
#[tokio::test]
async fn the_three_protocols_share_batches() {
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let http_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let model = shipped_model();
    // A 300 ms window: every image sent below arrives within it.
    let server = ServerProcess::start(&[
        "--model",
        model.to_str().unwrap(),
        "--metrics-addr",
        &metrics_addr.to_string(),
        "--http-addr",
        &http_addr.to_string(),
        "--max-queue-delay-us",
        "300000",
        "--max-batch-size",
        "64",
    ]);
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let data = test_set().take(6);
    let mut classifier = ClassifierClient::new(channel.clone());
    let mut inference = GrpcInferenceServiceClient::new(channel);
    let one =
        PredictRequest { id: "v1".into(), input: Some(Input::Pixels(data.image(0).to_vec())), ..Default::default() };
    let three = pixels_request(&[data.image(1), data.image(2), data.image(3)]);
    let both = [data.image(4), data.image(5)].concat();
    let two = serde_json::json!({
        "inputs": [{ "name": "pixels", "datatype": "UINT8", "shape": [2, 784],
                     "data": both }],
        "outputs": [{ "name": "digit" }],
    });
    let (v1, grpc, (status, _, body)) = tokio::join!(
        classifier.predict_one(one),
        inference.model_infer(three),
        http(http_addr, "POST", "/v2/models/mnist/infer", &[], serde_json::to_vec(&two).unwrap()),
    );
    assert_eq!(v1.unwrap().into_inner().digit, u32::from(data.labels[0]));
    assert_eq!(
        digits(&grpc.unwrap().into_inner()),
        data.labels[1..4].iter().map(|&l| i64::from(l)).collect::<Vec<_>>()
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let scrape = common::scrape_metrics(metrics_addr).await;
    // Warm-up ran a batch of 1 and one of 64; then one batch of all 6.
    assert!(scrape.contains(r#"mnist_batch_size_count{model="mnist"} 3"#), "{scrape}");
    assert!(scrape.contains(r#"mnist_batch_size_sum{model="mnist"} 71"#), "{scrape}");
    for (protocol, method) in [("mnist.v1", "PredictOne"), ("oip-grpc", "ModelInfer"), ("oip-http", "infer")] {
        let line = format!(r#"mnist_requests_total{{protocol="{protocol}",method="{method}",code="OK"}} 1"#);
        assert!(scrape.contains(&line), "{line} in {scrape}");
    }
    assert!(scrape.contains(r#"mnist_images_total{protocol="oip-grpc",code="OK"} 3"#), "{scrape}");
}

/// A client that trickles its request headers is cut off (10 s), instead of
/// holding its connection for ever.
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with_http(&[]).await;
    let mut stream = tokio::net::TcpStream::connect(server.http_addr.unwrap()).await.unwrap();
    stream.write_all(b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is still open after 20 s");
    assert!(started.elapsed() >= Duration::from_secs(9), "closed after {:?}", started.elapsed());
}
