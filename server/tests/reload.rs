//! Model rollout without downtime: SIGHUP (and `--watch-model`) swap in a
//! new model file under load, with no error and no lost image, each answer
//! saying which model made it; a bad file leaves the old model serving.

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{ServerProcess, scrape_metrics, shipped_model, test_set};
use mnist::proto::v1::{
    GetModelInfoRequest, PredictRequest, classifier_client::ClassifierClient, predict_request::Input,
};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

/// Two models with different bytes (the second has a `doc_string` appended:
/// protobuf keeps the last value of a field) and their cards, in a folder.
struct Models {
    dir: tempfile::TempDir,
    files: [(Vec<u8>, String); 2],
}

impl Models {
    fn new() -> Self {
        let original = std::fs::read(shipped_model()).unwrap();
        let mut variant = original.clone();
        let doc = b"variant B, for the reload tests";
        variant.extend_from_slice(&[0x32, doc.len() as u8]); // field 6 (doc_string), length-delimited
        variant.extend_from_slice(doc);
        let sha = |bytes: &[u8]| Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
        let files = [(sha(&original), original), (sha(&variant), variant)].map(|(sha, bytes)| (bytes, sha));
        let models = Self { dir: tempfile::tempdir().unwrap(), files };
        models.install(0);
        models
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnist.onnx")
    }

    fn sha(&self, which: usize) -> &str {
        &self.files[which].1
    }

    /// Writes model `which` and its card beside the served file, then renames
    /// them over it: a reader sees the old pair or the new one, never half a file.
    fn install(&self, which: usize) {
        let (bytes, sha) = &self.files[which];
        let mut card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(shipped_model().with_extension("json")).unwrap()).unwrap();
        card["sha256"] = serde_json::json!(sha);
        self.replace("mnist.json", &serde_json::to_vec(&card).unwrap());
        self.replace("mnist.onnx", bytes);
    }

    fn replace(&self, name: &str, bytes: &[u8]) {
        let staged = self.dir.path().join(format!(".{name}.new"));
        std::fs::write(&staged, bytes).unwrap();
        std::fs::rename(&staged, self.dir.path().join(name)).unwrap();
    }
}

async fn serving_sha(client: &mut ClassifierClient<Channel>) -> String {
    client.get_model_info(GetModelInfoRequest::default()).await.unwrap().into_inner().model_sha256
}

/// Waits until the server reports `sha` (a reload takes a fraction of a second).
async fn wait_for_model(client: &mut ClassifierClient<Channel>, sha: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    while serving_sha(client).await != sha {
        assert!(Instant::now() < deadline, "the server did not switch to {sha}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Instant::now()
}

/// One answer: when its request was sent, and the model that answered.
type Answer = (Instant, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_models_under_load_without_errors_and_a_bad_file_keeps_the_old_one() {
    let models = Models::new();
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let path = models.path();
    let server =
        ServerProcess::start(&["--model", path.to_str().unwrap(), "--metrics-addr", &metrics_addr.to_string()]);
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut control = ClassifierClient::new(channel.clone());
    assert_eq!(serving_sha(&mut control).await, models.sha(0));

    // Steady load: unary callers and streams, every answer checked.
    let data = Arc::new(test_set().take(200));
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (mut client, data, answers, errors, running) =
            (ClassifierClient::new(channel.clone()), data.clone(), answers.clone(), errors.clone(), running.clone());
        load.push(tokio::spawn(async move {
            let mut i = worker;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let index = i % data.len();
                let request = PredictRequest {
                    id: index.to_string(),
                    input: Some(Input::Pixels(data.image(index).to_vec())),
                    ..Default::default()
                };
                let sent = Instant::now();
                match client.predict_one(request).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        answers.lock().unwrap().push((sent, reply.model));
                    }
                    Err(status) => errors.lock().unwrap().push(status.to_string()),
                }
                i += 4;
            }
        }));
    }
    for _ in 0..2 {
        let (mut client, data, answers, errors, running) =
            (ClassifierClient::new(channel.clone()), data.clone(), answers.clone(), errors.clone(), running.clone());
        load.push(tokio::spawn(async move {
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let requests: Vec<_> = (0..50)
                    .map(|i| PredictRequest {
                        id: i.to_string(),
                        input: Some(Input::Pixels(data.image(i).to_vec())),
                        ..Default::default()
                    })
                    .collect();
                match client.predict(tokio_stream::iter(requests)).await {
                    Ok(stream) => {
                        let mut stream = stream.into_inner();
                        let mut got = 0;
                        loop {
                            match stream.message().await {
                                Ok(Some(reply)) if reply.error.is_none() => {
                                    got += 1;
                                    answers.lock().unwrap().push((sent, reply.model));
                                }
                                Ok(Some(reply)) => errors.lock().unwrap().push(format!("{:?}", reply.error)),
                                Ok(None) => break,
                                Err(status) => {
                                    errors.lock().unwrap().push(status.to_string());
                                    break;
                                }
                            }
                        }
                        if got != 50 {
                            errors.lock().unwrap().push(format!("a stream of 50 got {got} answers"));
                        }
                    }
                    Err(status) => errors.lock().unwrap().push(status.to_string()),
                }
            }
        }));
    }

    // Five reloads, alternating the two models.
    let mut switches = Vec::new();
    for round in 1..=5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let which = round % 2;
        models.install(which);
        server.signal("HUP");
        switches.push((wait_for_model(&mut control, models.sha(which)).await, which));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A truncated file: refused, the old model keeps serving.
    let serving = models.sha(1).to_string();
    models.replace("mnist.onnx", &models.files[0].0[..1000]);
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(serving_sha(&mut control).await, serving, "a bad file must not replace the model");
    tokio::time::sleep(Duration::from_millis(300)).await;

    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    assert!(answers.len() > 1000, "only {} answers", answers.len());
    let prefix = |which: usize| models.sha(which)[..12].to_string();
    for (sent, model) in answers.iter() {
        assert!(*model == prefix(0) || *model == prefix(1), "unknown model {model}");
        // Sent after a switch was visible (and before the next one began):
        // only the new model may have answered.
        if let Some((_, which)) = switches.iter().rev().find(|(at, _)| at < sent) {
            let next_began = switches.iter().find(|(at, _)| at > sent).map(|(at, _)| *at);
            let settled = next_began.is_none_or(|next| *sent + Duration::from_millis(300) < next);
            if settled {
                assert_eq!(*model, prefix(*which), "an answer sent after the switch came from the old model");
            }
        }
    }
    let used: std::collections::BTreeSet<_> = answers.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(used.len(), 2, "both models answered");

    let scrape = scrape_metrics(metrics_addr).await;
    let name = path.file_stem().unwrap().to_str().unwrap();
    assert!(scrape.contains(&format!(r#"mnist_model_reloads_total{{model="{name}",result="ok"}} 5"#)), "{scrape}");
    assert!(scrape.contains(&format!(r#"mnist_model_reloads_total{{model="{name}",result="failed"}} 1"#)), "{scrape}");
    let info = format!(r#"mnist_model_info{{model="{name}",provider="cpu",sha256="{serving}"}} 1"#);
    assert!(scrape.contains(&info), "{info} in {scrape}");
    assert!(server.logs.try_iter().any(|line| line.contains("model reload failed")), "the failure is logged");
}

#[tokio::test]
async fn watch_model_loads_a_changed_file_and_ignores_a_touched_one() {
    let models = Models::new();
    let path: &Path = &models.path();
    let server = ServerProcess::start(&["--model", path.to_str().unwrap(), "--watch-model", "0.1"]);
    let mut control = ClassifierClient::new(Channel::from_shared(server.url()).unwrap().connect().await.unwrap());
    models.install(1);
    wait_for_model(&mut control, models.sha(1)).await;
    // The same bytes again: a new modification time, nothing to reload.
    models.install(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs: Vec<String> = server.logs.try_iter().collect();
    assert_eq!(logs.iter().filter(|l| l.contains("model reloaded")).count(), 1, "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains("reload failed")), "{logs:#?}");
}

/// `--network-nice` lowers tokio's threads only: the inference thread and
/// ONNX Runtime's threads keep the process's priority, also those of a
/// session built by a reload (built on a network thread, they would inherit
/// its lower priority for good).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn network_threads_run_below_inference_also_after_a_reload() {
    let models = Models::new();
    let path = models.path();
    let server =
        ServerProcess::start(&["--model", path.to_str().unwrap(), "--network-nice", "7", "--intra-threads", "2"]);
    let mut control = ClassifierClient::new(Channel::from_shared(server.url()).unwrap().connect().await.unwrap());
    models.install(1);
    server.signal("HUP");
    wait_for_model(&mut control, models.sha(1)).await;
    let data = test_set().take(1);
    let request =
        PredictRequest { id: "0".into(), input: Some(Input::Pixels(data.image(0).to_vec())), ..Default::default() };
    control.predict_one(request).await.unwrap();

    let base = nice_of(Path::new("/proc/thread-self/stat"));
    let mut threads: Vec<(String, i32)> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.child.id())).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap().trim().to_string();
        threads.push((name, nice_of(&task.join("stat"))));
    }
    let of = |name: &str| threads.iter().filter(|(n, _)| n == name).map(|(_, nice)| *nice).collect::<Vec<_>>();
    assert!(!of("tokio-rt-worker").is_empty(), "{threads:?}");
    assert!(of("tokio-rt-worker").iter().all(|&nice| nice == (base + 7).min(19)), "{threads:?}");
    assert_eq!(of("inference"), vec![base], "{threads:?}");
    // The reloaded session's intra-op thread (and the old one's, if not yet dropped).
    assert!(!of("ort-intra-op").is_empty(), "{threads:?}");
    assert!(of("ort-intra-op").iter().all(|&nice| nice == base), "{threads:?}");
}

/// The nice value in a `/proc/.../stat` line (field 19, counted after the
/// parenthesized command name, which may hold spaces).
#[cfg(target_os = "linux")]
fn nice_of(stat: &Path) -> i32 {
    let line = std::fs::read_to_string(stat).unwrap();
    let after_name = &line[line.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}
