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
    export::{ExportOptions, HeldOut, Splits, export},
    model::Arch,
    onnx,
    recipe::Recipe,
    record::EvalSplit,
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
    TrainConfig {
        recipe,
        device: Device::Cpu,
        run_dir: dir.to_path_buf(),
        resume,
        eval_split: EvalSplit::Test,
        quiet: true,
    }
}

#[test]
fn one_epoch_on_a_subset_learns_to_read_digits() {
    let _serial = one_at_a_time();
    let (train_set, test_set, _) = subsets(8000, 1000);
    let dir = tempfile::tempdir().unwrap();
    let recipe = Recipe { epochs: 1, ..Recipe::default() };
    let trained = train(&config(recipe, dir.path(), false), &train_set, &test_set, &AtomicBool::new(false)).unwrap();
    let eval = evaluate(&trained.net, &test_set).unwrap();
    assert!(eval.accuracy() >= 0.90, "held-out accuracy {}", eval.accuracy());
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
    assert_eq!(straight.progress.history[1].eval_accuracy, resumed.progress.history[1].eval_accuracy);
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

#[test]
fn a_run_started_from_another_runs_weights_begins_where_that_one_ended() {
    let _serial = one_at_a_time();
    let (train_set, test_set, _) = subsets(2000, 500);
    let never = AtomicBool::new(false);
    let first_dir = tempfile::tempdir().unwrap();
    let first = train(
        &config(Recipe { epochs: 1, ..Recipe::default() }, first_dir.path(), false),
        &train_set,
        &test_set,
        &never,
    )
    .unwrap();
    let learned = first.progress.history[0].eval_accuracy;
    // Far from a random start's 10 %, so that keeping it tells.
    assert!(learned >= 0.5, "the first run learned too little to tell: {learned}");

    // A learning rate too small to move the weights: what the second run
    // scores is what it started from (a random start scores about 10 %).
    let still = Recipe { epochs: 1, lr: 1e-12, ..Recipe::default() };
    let weights = mnist_train::checkpoint::checkpoint_path(first_dir.path());
    let from_first = Recipe { init: Some(weights.clone()), ..still.clone() };
    let dir = tempfile::tempdir().unwrap();
    let started = train(&config(from_first, dir.path(), false), &train_set, &test_set, &never).unwrap();
    let kept = started.progress.history[0].eval_accuracy;
    assert!((kept - learned).abs() < 0.01, "started from {learned}, scored {kept}");

    // The same from the first run exported to ONNX, as a shipped model is
    // (with a temperature folded in, which the import takes back out).
    let weights_of_first = mnist_train::onnx::Weights::from_var_store(&first.vs, Arch::Reference, 1.5).unwrap();
    let exported = first_dir.path().join("first.onnx");
    let model = mnist_train::onnx::build_model(&weights_of_first, &Default::default()).unwrap();
    mnist_train::onnx::write(&model, &exported).unwrap();
    let from_onnx = Recipe { init: Some(exported), ..still.clone() };
    let dir = tempfile::tempdir().unwrap();
    let started = train(&config(from_onnx, dir.path(), false), &train_set, &test_set, &never).unwrap();
    let kept = started.progress.history[0].eval_accuracy;
    assert!((kept - learned).abs() < 0.01, "started from {learned} (through ONNX), scored {kept}");

    let dir = tempfile::tempdir().unwrap();
    let other_network = Recipe { arch: Arch::ThreeBlock, init: Some(weights), epochs: 1, ..Recipe::default() };
    let err = train(&config(other_network, dir.path(), false), &train_set, &test_set, &never).unwrap_err();
    assert!(err.to_string().contains("missing") || err.to_string().contains("shape"), "{err}");

    let missing = Recipe { init: Some(dir.path().join("nothing.safetensors")), epochs: 1, ..Recipe::default() };
    let err = train(&config(missing, dir.path(), false), &train_set, &test_set, &never).unwrap_err();
    assert!(err.to_string().contains("nothing.safetensors"), "{err}");
}

/// Logits of `data` from the ONNX file at `path`, through ONNX Runtime.
fn onnx_logits(path: &std::path::Path, data: &Mnist) -> Vec<f32> {
    mnist_train::runtime::logits(path, data).expect("ONNX Runtime (source scripts/env.sh)")
}

/// The exported graph must compute what libtorch computes, with the
/// temperature (and, for the three-block network, batch normalization)
/// folded in: its logits are libtorch's divided by `T`. CI checks 1,000
/// test images; `PARITY_IMAGES=10000` checks the whole set.
#[test]
fn onnx_export_matches_libtorch_in_onnx_runtime_with_the_temperature_folded_in() {
    for arch in [Arch::Reference, Arch::ThreeBlock] {
        export_matches_libtorch(arch);
    }
}

fn export_matches_libtorch(arch: Arch) {
    let _serial = one_at_a_time();
    let images: usize = std::env::var("PARITY_IMAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let (train_set, test_set, test_data) = subsets(3000, images);
    let dir = tempfile::tempdir().unwrap();
    let recipe = Recipe { arch, epochs: 1, ..Recipe::default() };
    let trained = train(&config(recipe, dir.path(), false), &train_set, &test_set, &AtomicBool::new(false)).unwrap();
    let torch_logits = logits_f32(&trained.net, &test_set).unwrap();

    for temperature in [1.0f32, 0.7] {
        let path = dir.path().join(format!("mnist-{temperature}.onnx"));
        let weights = onnx::Weights::from_var_store(&trained.vs, arch, f64::from(temperature)).unwrap();
        onnx::write(&onnx::build_model(&weights, &BTreeMap::new()).unwrap(), &path).unwrap();
        let ort_logits = onnx_logits(&path, &test_data);
        assert_eq!(ort_logits.len(), test_data.len() * 10);

        let mut max_diff = 0f32;
        for (i, (a, b)) in torch_logits.chunks(10).zip(ort_logits.chunks(10)).enumerate() {
            assert_eq!(mnist::argmax(a), mnist::argmax(b), "image {i}: argmax differs");
            for (x, y) in a.iter().zip(b) {
                max_diff = max_diff.max((x / temperature - y).abs());
            }
        }
        println!(
            "{arch:?}, T = {temperature}: parity on {} images: max |logit / T difference| = {max_diff:e}",
            test_data.len()
        );
        assert!(max_diff <= 1e-4, "{arch:?}, T = {temperature}: max |logit / T difference| {max_diff}");
    }
}

/// The whole export on a briefly trained network (the three-block one:
/// batch normalization folded, five weighted layers): the temperature comes
/// from the validation split, the int8 file runs in ONNX Runtime and
/// predicts (nearly) what the float file does, and the cards say so.
#[test]
fn export_writes_a_calibrated_float_model_and_an_int8_model_that_agree() {
    let _serial = one_at_a_time();
    let dir = default_dir();
    let mut all = Mnist::load(&dir, Split::Train).expect("MNIST (set MNIST_DIR)");
    let validation = HeldOut::new(all.split_off_last(2000), Device::Cpu);
    let train_set = TensorSet::new(&all.take(6000), Device::Cpu);
    let test = HeldOut::new(Mnist::load(&dir, Split::Test).unwrap().take(2000), Device::Cpu);
    let out = tempfile::tempdir().unwrap();
    let recipe = Recipe { arch: Arch::ThreeBlock, epochs: 1, validation_images: 2000, ..Recipe::default() };
    let trained =
        train(&config(recipe, out.path(), false), &train_set, &validation.set, &AtomicBool::new(false)).unwrap();

    let splits = Splits { train: &train_set, validation: Some(&validation), test: &test };
    let options = ExportOptions { int8: true, calibration_images: 1000, name: "strong".into() };
    let exported = export(&trained.net, &trained.vs, &trained.progress, &splits, out.path(), options).unwrap();

    let float = &exported.float;
    let calibration = float.calibration.expect("a validation split gives a temperature");
    assert!(calibration.temperature > 0.05 && calibration.temperature < 20.0, "{calibration:?}");
    assert!(calibration.validation.after.nll <= calibration.validation.before.nll + 1e-12, "{calibration:?}");
    assert!(float.validation_accuracy.is_some());
    assert!(out.path().join("reliability.png").is_file());
    assert_eq!(float.model_file, "strong.onnx");

    let int8 = exported.int8.as_ref().expect("--int8 was asked for");
    let quantization = int8.quantization.as_ref().unwrap();
    assert_eq!(quantization.calibration_images, 1000);
    assert_eq!(quantization.ranges.0.len(), 5, "a range per weighted layer: {:?}", quantization.ranges);
    // Without VNNI (AVX2 only), ONNX Runtime's u8s8 products saturate:
    // this short run's int8 model agreed on 0.977 of the test images on
    // such a CPU (2026-12-08), 0.99 and more on VNNI ones.
    let least_agreement = if int8_products_saturate() { 0.95 } else { 0.99 };
    assert!(quantization.test_argmax_agreement >= least_agreement, "{quantization:?}");
    let most_apart = if int8_products_saturate() { 0.03 } else { 0.01 };
    assert!(
        (int8.test_accuracy - float.test_accuracy).abs() <= most_apart,
        "{} vs {}",
        int8.test_accuracy,
        float.test_accuracy
    );

    // The files are what the cards describe, and the int8 file is int8.
    for card in [float, int8] {
        let bytes = std::fs::read(out.path().join(&card.model_file)).unwrap();
        assert_eq!(mnist::dataset::sha256_hex(&bytes), card.sha256, "{}", card.model_file);
        let written: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join(&card.model_file).with_extension("json")).unwrap(),
        )
        .unwrap();
        assert_eq!(written["test_accuracy"].as_f64(), Some(card.test_accuracy));
    }
    let float_size = std::fs::metadata(out.path().join(&float.model_file)).unwrap().len();
    let int8_size = std::fs::metadata(out.path().join(&int8.model_file)).unwrap().len();
    assert!(int8_size * 3 < float_size, "int8 {int8_size} bytes, float {float_size}");
}

/// Whether this CPU runs ONNX Runtime's int8 kernels without VNNI, whose
/// u8s8 products saturate (x86 with AVX2 only).
fn int8_products_saturate() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let vnni = cpuinfo.split_whitespace().any(|flag| flag == "avx512_vnni" || flag == "avx_vnni");
    cfg!(target_arch = "x86_64") && !vnni
}
