//! Training end to end on small subsets of the real MNIST files.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use mnist::dataset::{Mnist, Split, default_dir};
use mnist_train::{
    Error,
    data::TensorSet,
    eval::{evaluate, logits_f32},
    onnx,
    recipe::Recipe,
    train::{TrainConfig, train},
};
use tch::Device;

/// libtorch's random generator is global to the process: runs in parallel
/// test threads would draw from it in turns and lose their reproducibility.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn subsets(train_images: usize, test_images: usize) -> (TensorSet, TensorSet, Mnist) {
    let dir = default_dir();
    let train_data = Mnist::load(&dir, Split::Train).expect("MNIST (set MNIST_DIR)").take(train_images);
    let test_data = Mnist::load(&dir, Split::Test).expect("MNIST (set MNIST_DIR)").take(test_images);
    (TensorSet::new(&train_data, Device::Cpu), TensorSet::new(&test_data, Device::Cpu), test_data)
}

fn config(recipe: Recipe, dir: &std::path::Path, resume: bool) -> TrainConfig {
    TrainConfig { recipe, device: Device::Cpu, run_dir: dir.to_path_buf(), resume, quiet: true }
}

#[test]
fn one_epoch_on_a_subset_learns_to_read_digits() {
    let _serial = one_at_a_time();
    let (train_set, test_set, _) = subsets(8000, 1000);
    let dir = tempfile::tempdir().unwrap();
    let recipe = Recipe { epochs: 1, ..Recipe::default() };
    let trained = train(&config(recipe, dir.path(), false), &train_set, &test_set, &AtomicBool::new(false)).unwrap();
    let eval = evaluate(&trained.net, &test_set).unwrap();
    assert!(eval.accuracy >= 0.90, "held-out accuracy {}", eval.accuracy);
    assert_eq!(trained.progress.history.len(), 1);
    assert!(dir.path().join("metrics.jsonl").is_file() && dir.path().join("checkpoint.safetensors").is_file());
}

#[test]
fn resuming_from_a_checkpoint_gives_the_same_weights_as_an_uninterrupted_run() {
    let _serial = one_at_a_time();
    let (train_set, test_set, _) = subsets(1500, 200);
    let recipe = Recipe { epochs: 2, augment: true, ..Recipe::default() };
    let never = AtomicBool::new(false);

    let straight_dir = tempfile::tempdir().unwrap();
    let straight = train(&config(recipe.clone(), straight_dir.path(), false), &train_set, &test_set, &never).unwrap();

    let split_dir = tempfile::tempdir().unwrap();
    let first = Recipe { epochs: 1, ..recipe.clone() };
    train(&config(first, split_dir.path(), false), &train_set, &test_set, &never).unwrap();
    let resumed = train(&config(recipe, split_dir.path(), true), &train_set, &test_set, &never).unwrap();

    assert_eq!(resumed.progress.completed_epochs, 2);
    assert_eq!(resumed.progress.steps, straight.progress.steps);
    let (a, b) = (straight.vs.variables(), resumed.vs.variables());
    for (name, tensor) in &a {
        assert!(tensor.equal(&b[name]), "{name} differs between the straight and the resumed run");
    }
    assert_eq!(straight.progress.history[1].test_accuracy, resumed.progress.history[1].test_accuracy);
}

#[test]
fn an_interrupted_run_keeps_its_last_checkpoint_and_a_mismatched_resume_is_refused() {
    let _serial = one_at_a_time();
    let (train_set, test_set, _) = subsets(500, 100);
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let recipe = Recipe { epochs: 1, ..Recipe::default() };
    train(&config(recipe.clone(), dir.path(), false), &train_set, &test_set, &stop).unwrap();

    stop.store(true, Ordering::SeqCst);
    let longer = Recipe { epochs: 3, ..recipe };
    let err = train(&config(longer.clone(), dir.path(), true), &train_set, &test_set, &stop).unwrap_err();
    assert!(matches!(err, Error::Interrupted { completed_epochs: 1 }), "{err}");

    let other = Recipe { lr: 0.01, ..longer };
    let err = train(&config(other, dir.path(), true), &train_set, &test_set, &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("another recipe"), "{err}");
}

/// The exported graph must compute what libtorch computes. CI checks 1,000
/// test images; `PARITY_IMAGES=10000` checks the whole set.
#[test]
fn onnx_export_matches_libtorch_in_onnx_runtime() {
    let _serial = one_at_a_time();
    let images: usize = std::env::var("PARITY_IMAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let (train_set, test_set, test_data) = subsets(3000, images);
    let dir = tempfile::tempdir().unwrap();
    let recipe = Recipe { epochs: 1, ..Recipe::default() };
    let trained = train(&config(recipe, dir.path(), false), &train_set, &test_set, &AtomicBool::new(false)).unwrap();
    let torch_logits = logits_f32(&trained.net, &test_set).unwrap();

    let path = dir.path().join("mnist.onnx");
    onnx::write(&onnx::build_model(&trained.vs, &BTreeMap::new()).unwrap(), &path).unwrap();

    let library = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (source scripts/env.sh)");
    let environment = ort::init_from(&library).unwrap().build().unwrap();
    let mut session = ort::session::Session::builder(&environment).unwrap().commit_from_file(&path).unwrap();
    let mut input = Vec::with_capacity(test_data.len() * 784);
    mnist::normalize_into(&test_data.images, mnist::PIXEL_MEAN, mnist::PIXEL_STD, &mut input);
    let tensor = ort::value::TensorRef::from_array_view(([test_data.len(), 1, 28, 28], input.as_slice())).unwrap();
    let outputs = session.run(ort::inputs!["input" => tensor]).unwrap();
    let (shape, ort_logits) = outputs["logits"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(shape[..], [test_data.len() as i64, 10]);

    let mut max_diff = 0f32;
    for (i, (a, b)) in torch_logits.chunks(10).zip(ort_logits.chunks(10)).enumerate() {
        assert_eq!(mnist::argmax(a), mnist::argmax(b), "image {i}: argmax differs");
        for (x, y) in a.iter().zip(b) {
            max_diff = max_diff.max((x - y).abs());
        }
    }
    println!("parity on {} images: max |logit difference| = {max_diff:e}", test_data.len());
    assert!(max_diff <= 1e-4, "max |logit difference| {max_diff}");
}
