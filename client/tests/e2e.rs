//! End-to-end tests of mnist-client against a real server started by the
//! test (in-process, on an ephemeral port), through the CLI binary.

use std::{
    io::Cursor,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use clap::Parser;
use image::{DynamicImage, GrayImage, ImageFormat, Rgba, RgbaImage, imageops};
use mnist::{
    dataset::{Mnist, Split},
    preprocess::{DecodeLimits, preprocess},
    proto::v1::{PredictRequest, classifier_client::ClassifierClient, predict_request::Input},
};
use tokio::{net::TcpListener, sync::oneshot};

#[path = "../../server/tests/common/pki.rs"]
mod pki;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn test_set() -> Mnist {
    Mnist::load(&mnist::dataset::default_dir(), Split::Test).expect("MNIST test set (set MNIST_DIR)")
}

/// A server on an ephemeral port, stopped when dropped.
struct Server {
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn start_server() -> Server {
    start_server_with(&[], "http", &[]).await
}

/// Starts a server with extra flags; `scheme` and `client_flags` are what a
/// client needs to reach it (health checks use them while waiting).
async fn start_server_with(flags: &[&str], scheme: &str, client_flags: &[&str]) -> Server {
    start_server_on_model(&repo().join("models/mnist.onnx"), flags, scheme, client_flags).await
}

/// Starts a server on `model` (see [`start_server_with`]).
async fn start_server_on_model(model: &std::path::Path, flags: &[&str], scheme: &str, client_flags: &[&str]) -> Server {
    let mut args = vec!["--model", model.to_str().unwrap()];
    args.extend_from_slice(flags);
    start_server_with_args(&args, scheme, client_flags).await
}

/// Starts a server on every shipped model (`--model-repository models`), `mnist` the default.
async fn start_repository_server() -> Server {
    let models = repo().join("models");
    start_server_with_args(&["--model-repository", models.to_str().unwrap(), "--default-model", "mnist"], "http", &[])
        .await
}

async fn start_server_with_args(flags: &[&str], scheme: &str, client_flags: &[&str]) -> Server {
    let mut args = vec!["mnist-server", "--device", "cpu", "--intra-threads", "1"];
    args.extend_from_slice(flags);
    let config = mnist_server::config::Config::try_parse_from(args).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("{scheme}://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(mnist_server::run_on(config, listener, async {
        let _ = stopped.await;
    }));
    // Wait until it answers (health SERVING).
    let health: Vec<&str> = client_flags.iter().copied().chain(["health"]).collect();
    for _ in 0..200 {
        if client(&url, &health).status.success() {
            return Server { url, _stop: stop };
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("server did not start");
}

fn client(url: &str, args: &[&str]) -> Output {
    client_with_env(url, args, &[])
}

fn client_with_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist-client"));
    command.arg("--server").arg(url).args(args).envs(env.iter().copied());
    // Settings of the user running the tests must not leak in.
    for var in ["MNIST_TOKEN", "MNIST_TOKEN_FILE", "MNIST_CA_CERT", "MNIST_CLIENT_CERT", "MNIST_CLIENT_KEY"] {
        if !env.iter().any(|(name, _)| *name == var) {
            command.env_remove(var);
        }
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn save_png(pixels: &[u8], path: &Path) {
    GrayImage::from_raw(28, 28, pixels.to_vec()).unwrap().save(path).unwrap();
}

/// A folder like a user's: digits (one in a subfolder), a text file, a corrupt PNG.
fn sample_folder(data: &Mnist) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        save_png(data.image(i), &dir.path().join(format!("digit-{i}-label-{}.png", data.labels[i])));
    }
    std::fs::create_dir(dir.path().join("more")).unwrap();
    save_png(data.image(5), &dir.path().join(format!("more/digit-5-label-{}.png", data.labels[5])));
    std::fs::write(dir.path().join("README.txt"), "not an image").unwrap();
    std::fs::write(dir.path().join("broken.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_in_every_format_with_recursion_errors_and_exit_codes() {
    let server = start_server().await;
    let data = test_set();
    let folder = sample_folder(&data);
    let root = folder.path().to_str().unwrap();

    // Table, not recursive: 5 digits + the broken file; the text file is skipped.
    let out = client(&server.url, &["predict", root, "--top-k", "2"]);
    assert_eq!(out.status.code(), Some(1), "a failed file makes the exit code non-zero");
    let table = stdout(&out);
    assert_eq!(table.lines().count(), 1 + 6, "{table}");
    for i in 0..5 {
        let line = table.lines().find(|l| l.contains(&format!("digit-{i}-label-"))).unwrap();
        assert!(line.split_whitespace().nth(1) == Some(&data.labels[i].to_string()), "{line}");
    }
    assert!(table.contains("broken.png") && table.contains("error:"), "{table}");
    let summary = stderr(&out);
    assert!(summary.contains("5 classified, 1 failed") && summary.contains("1 non-image files skipped"), "{summary}");

    // JSON, recursive: 6 digits, stable order, one error.
    let out = client(&server.url, &["predict", root, "-r", "--format", "json", "--quiet"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 7);
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "rows come in a stable (sorted) order");
    for row in rows.iter().filter(|r| r["error"].is_null()) {
        let path = row["path"].as_str().unwrap();
        let label: u64 = path.rsplit("label-").next().unwrap().trim_end_matches(".png").parse().unwrap();
        assert_eq!(row["digit"].as_u64(), Some(label), "{path}");
    }
    assert!(stderr(&out).is_empty(), "--quiet prints nothing on stderr");

    // CSV of single files, sent encoded for the server to decode.
    let file = folder.path().join("digit-0-label-7.png");
    let out = client(&server.url, &["predict", file.to_str().unwrap(), "--format", "csv", "--send-encoded"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("path,digit,confidence,top,uncertain,digits_side_by_side,no_digit,cut_by_frame,polarity_uncertain,error")
    );
    assert!(lines.next().unwrap().contains(",7,"), "{csv}");

    // --debug-preprocess writes the 28x28 image the model saw, per row.
    let debug = tempfile::tempdir().unwrap();
    let out = client(
        &server.url,
        &["predict", root, "--format", "json", "--quiet", "--debug-preprocess", debug.path().to_str().unwrap()],
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for (index, row) in rows.as_array().unwrap().iter().enumerate().filter(|(_, r)| r["error"].is_null()) {
        let path = std::path::Path::new(row["path"].as_str().unwrap());
        let seen = image::open(debug.path().join(mnist_client::predict::debug_image_name(index, path))).unwrap();
        let expected = mnist::preprocess::preprocess(&std::fs::read(path).unwrap(), &Default::default()).unwrap();
        assert_eq!(seen.to_luma8().into_raw(), expected, "{}", path.display());
    }

    // --min-confidence flags uncertain predictions.
    let out = client(&server.url, &["predict", file.to_str().unwrap(), "--min-confidence", "1.01", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["uncertain"], true);

    // A missing path is a per-file error.
    let out = client(&server.url, &["predict", "/nonexistent/x.png"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("/nonexistent/x.png"));
}

#[test]
fn no_server_gives_one_clear_line_and_exit_code_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    save_png(&[0; 784], &dir.path().join("a.png"));
    let out = client(&format!("http://127.0.0.1:{port}"), &["predict", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the server") && err.contains(&port.to_string()), "{err}");
}

/// `mnist-server --model models/mnist-int8.onnx` works unchanged, says
/// which model it serves, and scores through gRPC what its card says: within
/// a tenth of a point of the float model's card.
/// Photos and scans naming no model are classified by the server's photo
/// model, whether the client preprocesses them (it names the model
/// ListModels gives) or the server does (`--send-encoded`): the same
/// probabilities as naming `mnist-photo`, not the default model's; 28x28
/// images, MNIST's own form, by the default model either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_go_to_the_photo_model_and_28x28_images_to_the_default_here_and_on_the_server() {
    let server = start_repository_server().await;
    let digits = repo().join("examples/digits");
    let digits = digits.to_str().unwrap();
    // `--model NAME` goes before `predict`, `--send-encoded` after it.
    let probabilities = |extra: &[&str]| -> Vec<Vec<f64>> {
        let (global, own) = extra.split_at(if extra.first() == Some(&"--model") { 2 } else { 0 });
        let mut args = global.to_vec();
        args.extend(["predict", digits, "--format", "json", "--quiet", "--top-k", "10"]);
        args.extend(own);
        let out = client(&server.url, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let rows = rows.as_array().unwrap().iter();
        // All ten digits, likeliest first: by digit, to compare.
        rows.map(|row| {
            let mut top: Vec<(u64, f64)> = row["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["digit"].as_u64().unwrap(), c["probability"].as_f64().unwrap()))
                .collect();
            top.sort_by_key(|&(digit, _)| digit);
            top.into_iter().map(|(_, probability)| probability).collect()
        })
        .collect()
    };
    let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    let (local, remote) = (probabilities(&[]), probabilities(&["--send-encoded"]));
    let (photo, default) = (probabilities(&["--model", "mnist-photo"]), probabilities(&["--model", "mnist"]));
    // Files in path order: four 28x28 MNIST images, then four photos and scans.
    let files: Vec<String> = std::fs::read_dir(digits)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".txt"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(local.len(), files.len());
    for (index, file) in files.iter().enumerate() {
        let expected = if file.starts_with("mnist-") { &default[index] } else { &photo[index] };
        assert!(close(&local[index], expected), "{file} preprocessed here: {:?} {expected:?}", local[index]);
        assert!(close(&remote[index], expected), "{file} sent encoded: {:?} {expected:?}", remote[index]);
    }
    assert!(photo.iter().zip(&default).any(|(a, b)| !close(a, b)), "the two models answer differently");

    // `info` says which model answers which requests naming none.
    let out = client(&server.url, &["info", "--format", "json"]);
    let models: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let roles: std::collections::BTreeMap<String, serde_json::Value> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["answers_unnamed"].clone()))
        .collect();
    assert_eq!(roles["mnist"], serde_json::json!(["pixels and 28x28 images"]), "{roles:?}");
    assert_eq!(roles["mnist-photo"], serde_json::json!(["photos"]), "{roles:?}");
    assert_eq!(roles["mnist-reader"], serde_json::json!(["numbers"]), "{roles:?}");
    assert_eq!(roles["mnist-three-block"], serde_json::json!(["numbers, digits standing alone checked"]), "{roles:?}");
    assert_eq!(roles["mnist-int8"], serde_json::json!([]), "{roles:?}");
    let text = stdout(&client(&server.url, &["--model", "mnist-photo", "info"]));
    assert!(text.contains("answers unnamed:    photos\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_int8_model_serves_unchanged_and_scores_its_card() {
    let model = repo().join("models/mnist-int8.onnx");
    let server = start_server_on_model(&model, &[], "http", &[]).await;
    let read_card = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(repo().join("models").join(name)).unwrap()).unwrap()
    };
    let (card, float_card) = (read_card("mnist-int8.json"), read_card("mnist.json"));

    let out = client(&server.url, &["info", "--format", "json"]);
    let models: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let info = &models[0];
    assert_eq!((info["name"].as_str(), info["default"].as_bool()), (Some("mnist-int8"), Some(true)), "{info}");
    assert_eq!(info["model_sha256"], card["sha256"], "{info}");
    assert!(info["model_file"].as_str().is_some_and(|p| p.ends_with("mnist-int8.onnx")), "{info}");
    assert_eq!(info["test_accuracy"], card["test_accuracy"], "{info}");

    let out = client(&server.url, &["eval", "--format", "json", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((report["images"].as_u64(), report["errors"].as_u64()), (Some(10000), Some(0)));
    let served = report["accuracy"].as_f64().unwrap();
    let card_accuracy = card["test_accuracy"].as_f64().unwrap();
    assert!((served - card_accuracy).abs() <= int8_card_tolerance(), "served {served}, card {card_accuracy}");
    let float = float_card["test_accuracy"].as_f64().unwrap();
    assert!((served - float).abs() <= 0.001 + int8_card_tolerance(), "int8 served {served}, float card {float}");
}

/// `--model` picks a served model on every subcommand; `info` lists them
/// all; an unknown name stops the command before any work, naming the
/// served models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_picks_one_of_several_served_models() {
    let int8 = repo().join("models/mnist-int8.onnx");
    let flags = ["--model", int8.to_str().unwrap()];
    let server = start_server_with(&flags, "http", &[]).await;
    let out = client(&server.url, &["info"]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "name:               mnist (default)\nanswers unnamed:    pixels and 28x28 images; photos; numbers\n"
        ) && text
            .contains("name:               mnist-int8\nanswers unnamed:    none (answers requests that name it)\n"),
        "{text}"
    );
    let out = client(&server.url, &["--model", "mnist-int8", "info", "--format", "json"]);
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["name"], "mnist-int8", "one model asked for: its object");

    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("models/mnist-int8.json")).unwrap()).unwrap();
    let out = client(&server.url, &["--model", "mnist-int8", "eval", "--format", "json", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (served, card_accuracy) = (report["accuracy"].as_f64().unwrap(), card["test_accuracy"].as_f64().unwrap());
    assert!((served - card_accuracy).abs() <= int8_card_tolerance(), "served {served}, card {card_accuracy}");

    let digits = repo().join("examples/digits");
    let digits = digits.to_str().unwrap();
    let out = client(&server.url, &["--model", "mnist-int8", "predict", "--format", "json", digits]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = client(&server.url, &["--model", "mnist-int8", "bench", "--requests", "200", "--warmup", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));

    for command in [&["predict", digits][..], &["eval", "--limit", "10"], &["bench", "--requests", "10"], &["info"]] {
        let args: Vec<&str> = ["--model", "resnet"].iter().chain(command).copied().collect();
        let out = client(&server.url, &args);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        let error = stderr(&out);
        assert!(error.contains("'resnet'") && error.contains("'mnist-int8'"), "{command:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_health_eval_and_bench() {
    let server = start_server().await;
    let out = client(&server.url, &["health"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "SERVING");

    let out = client(&server.url, &["info", "--format", "json"]);
    let models: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(models.as_array().map(Vec::len), Some(1), "{models}");
    assert_eq!(models[0]["execution_provider"], "cpu");

    // The whole test set through the server must score exactly what the
    // model card says (evaluated independently with libtorch).
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("models/mnist.json")).unwrap()).unwrap();
    let out = client(&server.url, &["eval", "--format", "json", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["images"], 10000);
    assert_eq!(report["errors"], 0);
    let served = report["accuracy"].as_f64().unwrap();
    let card_accuracy = card["test_accuracy"].as_f64().unwrap();
    assert!((served - card_accuracy).abs() < 1e-9, "served {served} vs card {card_accuracy}");

    for mode in ["stream", "unary"] {
        let out = client(
            &server.url,
            &["bench", "--mode", mode, "-c", "4", "-n", "400", "--warmup", "20", "--format", "json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["ok"], 400, "{report}");
        assert!(report["errors"].as_object().unwrap().is_empty());
        assert!(report["latency_ms"]["p99"].as_f64().unwrap() >= report["latency_ms"]["p50"].as_f64().unwrap());
    }
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    let image = if format == ImageFormat::Jpeg { DynamicImage::ImageLuma8(image.to_luma8()) } else { image.clone() };
    image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

/// Real-world versions of an MNIST digit: what people's files look like.
fn variants(pixels: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let digit = GrayImage::from_raw(28, 28, pixels.to_vec()).unwrap();
    let inverted = GrayImage::from_fn(28, 28, |x, y| image::Luma([255 - digit.get_pixel(x, y).0[0]]));
    // Dark ink on light paper, 4x larger, smoothly scaled.
    let enlarged = imageops::resize(&inverted, 112, 112, imageops::FilterType::CatmullRom);
    // Off-center on a large canvas.
    let mut padded = GrayImage::new(120, 90);
    imageops::overlay(&mut padded, &imageops::resize(&digit, 56, 56, imageops::FilterType::Triangle), 58, 6);
    // Transparent background, black strokes (alpha carries the digit).
    let rgba = RgbaImage::from_fn(28, 28, |x, y| Rgba([0, 0, 0, digit.get_pixel(x, y).0[0]]));
    vec![
        ("inverted", encode(&DynamicImage::ImageLuma8(inverted), ImageFormat::Png)),
        ("enlarged 4x, dark on light", encode(&DynamicImage::ImageLuma8(enlarged.clone()), ImageFormat::Png)),
        ("padded off-center", encode(&DynamicImage::ImageLuma8(padded), ImageFormat::Png)),
        ("jpeg, enlarged", encode(&DynamicImage::ImageLuma8(enlarged), ImageFormat::Jpeg)),
        ("rgba, transparent", encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_variants_agree_with_the_original_digit() {
    let server = start_server().await;
    let data = test_set().take(300);
    let mut requests = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..data.len() {
        requests.push(PredictRequest {
            id: format!("{i}/original"),
            input: Some(Input::Pixels(data.image(i).to_vec())),
            ..Default::default()
        });
        for (kind, bytes) in variants(data.image(i)) {
            let pixels = preprocess(&bytes, &DecodeLimits::default()).unwrap();
            requests.push(PredictRequest {
                id: format!("{i}/{kind}"),
                input: Some(Input::Pixels(pixels)),
                ..Default::default()
            });
            kinds.push(kind);
        }
    }
    let mut grpc = ClassifierClient::connect(server.url.clone()).await.unwrap();
    let mut responses = grpc.predict(futures_util::stream::iter(requests)).await.unwrap().into_inner();
    let mut original = 0;
    let mut agree: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    while let Some(r) = responses.message().await.unwrap() {
        let (_, kind) = r.id.split_once('/').unwrap();
        if kind == "original" {
            original = r.digit;
        } else {
            let entry = agree.entry(kind.to_string()).or_default();
            entry.0 += usize::from(r.digit == original);
            entry.1 += 1;
        }
    }
    let (same, total) = agree.values().fold((0, 0), |(a, b), (s, t)| (a + s, b + t));
    let rate = same as f64 / total as f64;
    eprintln!("agreement with the original digit: {rate:.4} overall; {agree:?}");
    assert!(rate >= 0.98, "variants agree with the original in {rate:.4} of cases: {agree:?}");
    for (kind, (s, t)) in &agree {
        assert!(*s as f64 / *t as f64 >= 0.95, "{kind}: {s}/{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_a_token_through_the_cli() {
    const TOKEN: &str = "client-test-token-0123456789abcdef";
    let pki = pki::Pki::generate();
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), format!("{TOKEN}\n")).unwrap();
    let (ca, cert, key, token_file) =
        (pki.arg("ca.pem"), pki.arg("client.pem"), pki.arg("client.key"), tokens.path().to_str().unwrap());
    let server_flags = [
        "--tls-cert",
        &pki.arg("server.pem"),
        "--tls-key",
        &pki.arg("server.key"),
        "--tls-client-ca",
        &ca,
        "--auth-token-file",
        token_file,
    ];
    let tls = ["--ca-cert", &ca, "--cert", &cert, "--key", &key];
    let server = start_server_with(&server_flags, "https", &tls).await;
    let data = test_set().take(3);
    let folder = tempfile::tempdir().unwrap();
    for i in 0..3 {
        save_png(data.image(i), &folder.path().join(format!("{i}.png")));
    }
    let folder_arg = folder.path().to_str().unwrap();

    // Everything given: every digit classified.
    let with_all: Vec<&str> = tls.iter().copied().chain(["--token-file", token_file, "predict", folder_arg]).collect();
    let output = client(&server.url, &[&with_all[..], &["--format", "csv"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let digits: Vec<String> =
        stdout(&output).lines().skip(1).map(|l| l.split(',').nth(1).unwrap().to_string()).collect();
    let labels: Vec<String> = data.labels.iter().map(|l| l.to_string()).collect();
    assert_eq!(digits, labels);

    // The token from the environment works the same.
    let predict: Vec<&str> = tls.iter().copied().chain(["predict", folder_arg]).collect();
    let output = client_with_env(&server.url, &predict, &[("MNIST_TOKEN", TOKEN)]);
    assert!(output.status.success(), "{}", stderr(&output));

    // No token: refused, with the reason, exit code 2.
    let output = client(&server.url, &predict);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("Unauthenticated"), "{}", stderr(&output));

    // No client certificate: the handshake fails.
    let output = client(&server.url, &["--ca-cert", &ca, "--token-file", token_file, "predict", folder_arg]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    // Health needs no token.
    assert!(client(&server.url, &[&tls[..], &["health"]].concat()).status.success());

    // TLS options with a plaintext URL are a usage error, not a silent downgrade.
    let plaintext = server.url.replacen("https", "http", 1);
    let output = client(&plaintext, &["--ca-cert", &ca, "health"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("https://"), "{}", stderr(&output));
}

/// Photos of numbers, seeded (`mnist::synth`, MNIST test digits): `per_cell`
/// of every spacing and condition, named `NNNN-<spacing>-<condition>-<digits>.jpg`.
fn number_folder(per_cell: usize, seed: u64) -> tempfile::TempDir {
    use mnist::synth::{Condition, PhotoGenerator, Spacing};
    let data = test_set();
    let dir = tempfile::tempdir().unwrap();
    let mut generator = PhotoGenerator::new(seed, 640);
    let mut n = 0;
    for spacing in Spacing::ALL {
        for condition in Condition::NUMBERS {
            for _ in 0..per_cell {
                let indices = generator.pick_number(data.len());
                let digits: Vec<&[u8]> = indices.iter().map(|&i| data.image(i)).collect();
                let text: String = indices.iter().map(|&i| char::from(b'0' + data.labels[i])).collect();
                let photo = generator.number_jpeg(&digits, spacing, condition);
                let name = format!("{n:04}-{}-{}-{text}.jpg", spacing.name(), condition.name());
                std::fs::write(dir.path().join(name), photo).unwrap();
                n += 1;
            }
        }
    }
    dir
}

/// How far an int8 model's accuracy may be from its card's on this CPU:
/// exact where int8 products do not saturate (VNNI, or not x86), else half
/// a point (ONNX Runtime's AVX2 u8s8 kernels; server/tests/shipped_models.rs).
fn int8_card_tolerance() -> f64 {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let vnni = cpuinfo.split_whitespace().any(|flag| flag == "avx512_vnni" || flag == "avx_vnni");
    if vnni || !cfg!(target_arch = "x86_64") { 0.0 } else { 0.005 }
}

/// The digits a photo of [`number_folder`] shows, and its spacing.
fn truth(path: &str) -> (&str, &str) {
    let name = path.rsplit('/').next().unwrap().trim_end_matches(".jpg");
    let mut parts = name.split('-');
    let spacing = parts.nth(1).unwrap();
    (name.rsplit('-').next().unwrap(), spacing)
}

/// A few hundred numbers of every spacing and condition: read alike here
/// (segmented by the client, only the digits sent) and by the server
/// (`ReadOne` on the file), and exactly right often enough for each spacing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_read_alike_by_client_and_server_and_well() {
    let server = start_repository_server().await;
    let folder = number_folder(NUMBERS_PER_CELL, 1);
    let root = folder.path().to_str().unwrap();
    let local = client(&server.url, &["read", root, "--format", "json", "--quiet"]);
    assert!(local.status.success(), "{:?} {}\n{}", local.status, stderr(&local), stdout(&local));
    let remote = client(&server.url, &["read", root, "--format", "json", "--quiet", "--send-encoded"]);
    assert!(remote.status.success(), "{:?} {}\n{}", remote.status, stderr(&remote), stdout(&remote));
    let local: serde_json::Value = serde_json::from_str(&stdout(&local)).unwrap();
    let remote: serde_json::Value = serde_json::from_str(&stdout(&remote)).unwrap();
    let (local, remote) = (local.as_array().unwrap(), remote.as_array().unwrap());
    assert_eq!(local.len(), 4 * 5 * NUMBERS_PER_CELL);

    let mut right: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    let mut checked_digits = 0;
    for (mine, theirs) in local.iter().zip(remote) {
        let path = mine["path"].as_str().unwrap();
        assert_eq!(mine["text"], theirs["text"], "{path}: the client's reading and the server's differ");
        let (a, b) = (mine["confidence"].as_f64().unwrap(), theirs["confidence"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4, "{path}: confidence {a} here, {b} from the server");
        let checked = |reading: &serde_json::Value| -> Vec<bool> {
            reading["digits"].as_array().unwrap().iter().map(|d| d["checked"].as_bool().unwrap()).collect()
        };
        assert_eq!(checked(mine), checked(theirs), "{path}: the digits checked here and by the server differ");
        checked_digits += checked(mine).iter().filter(|&&c| c).count();
        let (expected, spacing) = truth(path);
        let cell = right.entry(spacing).or_default();
        cell.0 += usize::from(mine["text"].as_str() == Some(expected));
        cell.1 += 1;
    }
    // The wide, normal and close numbers have digits standing alone, checked on both sides.
    assert!(checked_digits >= local.len(), "{checked_digits} digits checked in {} numbers", local.len());
    let report: Vec<String> = right.iter().map(|(s, (r, t))| format!("{s} {r}/{t}")).collect();
    eprintln!("exact numbers per spacing: {}", report.join(", "));
    for (spacing, (r, t)) in &right {
        let floor = READ_FLOORS.iter().find(|(name, _)| name == spacing).map_or(1.0, |(_, floor)| *floor);
        assert!(*r as f64 / *t as f64 >= floor, "{spacing}: {r}/{t} numbers read exactly, below {floor}");
    }
}

/// Photos of numbers per spacing and condition in [`numbers_are_read_alike_by_client_and_server_and_well`].
const NUMBERS_PER_CELL: usize = 15;

/// The share of numbers read exactly that each spacing must reach there:
/// what these seeded photos measured with the shipped reader, the
/// three-block window model trained for 8 epochs and fine-tuned for 3 on
/// twice the strips, read through two views, its digits standing alone
/// checked by `mnist-three-block` (wide 72/75, normal 73/75, close 72/75,
/// touching 67/75; unchecked: 70, 72, 72 and 67; before the fine-tuning: 72, 73, 72 and 66;
/// the 4-epoch one through two views: 71, 73, 70 and 65, through one: 70, 72, 71 and
/// 62; the reference-network window model before it: 66, 70, 71 and 58;
/// the model that read cuts: 70, 72, 69 and 44), less a margin for other
/// CPUs' floating point. Regression floors, below the issue's
/// targets (docs/reading-numbers.md says where).
const READ_FLOORS: [(&str, f64); 4] = [("wide", 0.88), ("normal", 0.88), ("close", 0.88), ("touching", 0.80)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_in_every_format_with_debug_pictures_and_flags() {
    let server = start_repository_server().await;
    let folder = number_folder(1, 9);
    let root = folder.path().to_str().unwrap();
    let paths: Vec<String> = {
        let mut p: Vec<String> =
            std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
        p.sort();
        p
    };

    let out = client(&server.url, &["read", root]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("path"), "{table}");
    assert_eq!(table.lines().count(), 1 + paths.len(), "{table}");
    assert!(stderr(&out).contains(&format!("{} read, 0 failed", paths.len())), "{}", stderr(&out));

    let out = client(&server.url, &["read", root, "--format", "csv", "--quiet"]);
    let csv = stdout(&out);
    assert_eq!(csv.lines().next(), Some("path,text,confidence,digit_confidences,uncertain,error"));

    // --expect-digits: a length the numbers do not have is flagged, and with the right one
    // the reading has it.
    let first = &paths[0];
    let (digits, _) = truth(first);
    let wrong = (digits.len() % 8 + 2).to_string();
    let out = client(&server.url, &["read", first, "--format", "json", "--expect-digits", &wrong]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["uncertain"], true, "{rows}");
    assert!(stderr(&out).contains("1 uncertain"), "{}", stderr(&out));
    let right = digits.len().to_string();
    let out = client(&server.url, &["read", first, "--format", "json", "--expect-digits", &right]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["text"].as_str().unwrap().len(), digits.len(), "{rows}");
    let boxes = rows[0]["digits"].as_array().unwrap();
    assert!(boxes.iter().all(|d| d["box"]["width"].as_u64().unwrap() > 0 && d["confidence"].as_f64().is_some()));

    // --min-confidence above 1 flags every reading.
    let out = client(&server.url, &["read", first, "--format", "json", "--min-confidence", "1.01"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["uncertain"], true);

    // --debug-preprocess: the annotated photo and each digit the model saw.
    let debug = tempfile::tempdir().unwrap();
    let out = client(&server.url, &["read", first, "--quiet", "--debug-preprocess", debug.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let name = mnist_client::predict::debug_image_name(0, Path::new(first));
    let picture = image::open(debug.path().join(&name)).unwrap();
    assert!(picture.width() >= 100);
    let stem = name.trim_end_matches(".png");
    let seen = image::open(debug.path().join(format!("{stem}.digit-0.png"))).unwrap();
    assert_eq!((seen.width(), seen.height()), (28, 28));
    // Digits with paper on both sides are also shown as the check model saw them, alone.
    let debug_all = tempfile::tempdir().unwrap();
    let out = client(&server.url, &["read", root, "--quiet", "--debug-preprocess", debug_all.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alone: Vec<PathBuf> = std::fs::read_dir(debug_all.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".alone.png"))
        .collect();
    assert!(alone.len() >= paths.len(), "{} digits alone in {} photos", alone.len(), paths.len());
    for file in &alone {
        let seen = image::open(file).unwrap();
        assert_eq!((seen.width(), seen.height()), (28, 28), "{}", file.display());
    }

    // A bad file is a per-file error with exit code 1, as for predict.
    std::fs::write(folder.path().join("zz-broken.png"), b"\x89PNG broken").unwrap();
    let out = client(&server.url, &["read", root, "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    let broken = table.lines().find(|l| l.contains("zz-broken.png")).expect("a row for the broken file");
    assert!(broken.contains("error:"), "{table}");

    // predict on a photo of a number: says so, and does not claim certainty.
    let out = client(&server.url, &["predict", first, "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let several = rows[0]["digits_side_by_side"].as_u64().expect("several digits noticed");
    assert!(several >= 2, "{rows}");
    assert_eq!(rows[0]["uncertain"], true);
    assert!(rows[0]["confidence"].as_f64().unwrap() <= 1.0 / several as f64 + 1e-6);
    assert!(stderr(&out).contains("mnist-client read"), "{}", stderr(&out));
}
