//! What each subcommand does, in terms of the library.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context, Result};
use mnist::dataset::{Mnist, sha256_hex};
use mnist_train::{
    Error,
    card::ModelCard,
    checkpoint::{self, Progress},
    data::{self, TensorSet},
    device,
    eval::{Evaluation, evaluate},
    model::Net,
    onnx, plot,
    train::{TrainConfig, train},
};
use tch::{Device, nn::VarStore};

use crate::cli::{Cli, Command, ComputeArgs, DataArgs, EvalArgs, ExportArgs, TrainArgs};

/// Runs the command; the exit code is 130 when training was interrupted.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train_command(&args),
        Command::Eval(args) => eval_command(&args).map(|_| ExitCode::SUCCESS),
        Command::Export(args) => export_command(&args).map(|_| ExitCode::SUCCESS),
        Command::Download(args) => {
            mnist::download::ensure_downloaded(&args.data_dir, false)?;
            mnist::dataset::Mnist::load(&args.data_dir, mnist::dataset::Split::Train)?;
            mnist::dataset::Mnist::load(&args.data_dir, mnist::dataset::Split::Test)?;
            eprintln!("MNIST is complete and verified in {}", args.data_dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn setup_compute(compute: &ComputeArgs) -> Result<Device> {
    if let Some(threads) = compute.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        tch::set_num_threads(threads);
    }
    let device = device::resolve(compute.device)?;
    tracing::info!(device = %device::name(device), requested = %compute.device, threads = tch::get_num_threads(), "compute device");
    Ok(device)
}

fn load_data(args: &DataArgs, quiet: bool) -> Result<(Mnist, Mnist)> {
    data::load(&args.data_dir, !args.no_download, quiet)
        .with_context(|| format!("loading MNIST from {}", args.data_dir.display()))
}

fn train_command(args: &TrainArgs) -> Result<ExitCode> {
    let device = setup_compute(&args.compute)?;
    let recipe = args.recipe();
    recipe.validate()?;
    let (train_data, test_data) = load_data(&args.data, args.quiet)?;
    let train_data = match recipe.train_images {
        Some(n) => train_data.take(n),
        None => train_data,
    };
    let test_data = match args.test_images {
        Some(n) => test_data.take(n),
        None => test_data,
    };
    let train_set = TensorSet::new(&train_data, device);
    let test_set = TensorSet::new(&test_data, device);

    let stop = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C: stop now
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)...");
    })
    .context("installing the Ctrl-C handler")?;

    if !args.quiet {
        eprintln!(
            "training {} on {} images ({}), evaluating on {}, into {}",
            recipe.summary(),
            train_set.len(),
            device::name(device),
            test_set.len(),
            args.out.display()
        );
    }
    let config = TrainConfig { recipe, device, run_dir: args.out.clone(), resume: args.resume, quiet: args.quiet };
    let trained = match train(&config, &train_set, &test_set, &stop) {
        Err(Error::Interrupted { completed_epochs }) => {
            eprintln!(
                "interrupted: {completed_epochs} epoch(s) are checkpointed in {}; run the same command with --resume to continue",
                args.out.display()
            );
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
    let weights = args.out.join("weights.safetensors");
    checkpoint::save_weights(&weights, &trained.vs, &trained.progress.recipe)?;
    let eval = report(&trained.net, &test_set, &args.out, Some(&trained.progress))?;
    if !args.no_export {
        publish(&trained.vs, &eval, &trained.progress, &args.out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a run's weights onto `device`.
fn load_run(run: &Path, device: Device) -> Result<(VarStore, Net)> {
    let mut vs = VarStore::new(device);
    let net = Net::new(&vs.root());
    let weights = run.join("weights.safetensors");
    let source = if weights.is_file() { weights } else { checkpoint::checkpoint_path(run) };
    checkpoint::load_weights(&source, &mut vs).with_context(|| format!("loading weights from {}", source.display()))?;
    Ok((vs, net))
}

fn read_progress(run: &Path) -> Result<Option<Progress>> {
    let path = run.join("run.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?))
}

fn eval_command(args: &EvalArgs) -> Result<Evaluation> {
    let device = setup_compute(&args.compute)?;
    // The variables must outlive the network that uses them.
    let (_variables, net) = load_run(&args.run, device)?;
    let (_, test_data) = load_data(&args.data, false)?;
    let test_set = TensorSet::new(&test_data, device);
    let progress = read_progress(&args.run)?;
    report(&net, &test_set, &args.run, progress.as_ref())
}

/// Evaluates, prints the report and writes eval.json and the charts to `dir`.
fn report(net: &Net, test_set: &TensorSet, dir: &Path, progress: Option<&Progress>) -> Result<Evaluation> {
    let eval = evaluate(net, test_set)?;
    println!("{}", eval.report());
    let path = dir.join("eval.json");
    fs::write(&path, serde_json::to_string_pretty(&eval)?).with_context(|| format!("writing {}", path.display()))?;
    plot::confusion_matrix(&eval, &dir.join("confusion.png"))?;
    if let Some(progress) = progress.filter(|p| !p.history.is_empty()) {
        plot::training_curves(&progress.history, &progress.recipe.summary(), &dir.join("curves.png"))?;
    }
    eprintln!(
        "wrote eval.json, confusion.png{} in {}",
        if progress.is_some() { ", curves.png" } else { "" },
        dir.display()
    );
    Ok(eval)
}

fn export_command(args: &ExportArgs) -> Result<()> {
    let device = setup_compute(&args.compute)?;
    let (vs, net) = load_run(&args.run, device)?;
    let progress = read_progress(&args.run)?
        .with_context(|| format!("{} has no run.json: export needs the run's record", args.run.display()))?;
    let (_, test_data) = load_data(&args.data, false)?;
    let eval = evaluate(&net, &TensorSet::new(&test_data, device))?;
    publish(&vs, &eval, &progress, args.out_dir.as_deref().unwrap_or(&args.run))
}

/// Writes `mnist.onnx` and its card `mnist.json` to `dir`.
fn publish(vs: &VarStore, eval: &Evaluation, progress: &Progress, dir: &Path) -> Result<()> {
    let metadata = BTreeMap::from([
        ("test_accuracy".to_string(), format!("{:.4}", eval.accuracy)),
        ("recipe".to_string(), serde_json::to_string(&progress.recipe)?),
        ("epochs".to_string(), progress.completed_epochs.to_string()),
    ]);
    let model = onnx::build_model(vs, &metadata)?;
    let onnx_path = dir.join("mnist.onnx");
    onnx::write(&model, &onnx_path)?;
    let bytes = fs::read(&onnx_path).with_context(|| format!("reading back {}", onnx_path.display()))?;
    let card = ModelCard::new("mnist.onnx".into(), sha256_hex(&bytes), eval, progress);
    let card_path = dir.join("mnist.json");
    fs::write(&card_path, serde_json::to_string_pretty(&card)? + "\n")
        .with_context(|| format!("writing {}", card_path.display()))?;
    eprintln!(
        "exported {} ({:.2}% test accuracy) and {}",
        onnx_path.display(),
        eval.accuracy * 100.0,
        card_path.display()
    );
    Ok(())
}
