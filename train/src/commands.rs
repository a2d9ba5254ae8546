//! What each subcommand does, in terms of the library.

use std::{
    fs,
    path::Path,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context, Result};
use mnist::dataset::Mnist;
use mnist_train::{
    Error, checkpoint,
    data::{self, TensorSet},
    device,
    eval::{Evaluation, evaluate},
    export::{self, HeldOut, Splits},
    lines::LineSet,
    model::Net,
    plot,
    recipe::Recipe,
    record::{EvalSplit, Progress},
    train::{TrainConfig, train, train_lines},
};
use tch::{Device, nn::VarStore};

use crate::cli::{Cli, Command, ComputeArgs, DataArgs, EvalArgs, ExportArgs, ShipArgs, TrainArgs};

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
    let (train_data, validation_data) = split_validation(train_data, &recipe);
    let train_data = match recipe.train_images {
        Some(n) => train_data.take(n),
        None => train_data,
    };
    let test_data = match args.test_images {
        Some(n) => test_data.take(n),
        None => test_data,
    };
    let train_data = match &recipe.reading_set {
        Some(dir) => data::with_reading_set(train_data, dir)
            .with_context(|| format!("loading the reading set from {}", dir.display()))?,
        None => train_data,
    };
    let train_set = TensorSet::new(&train_data, device);
    let test = HeldOut::new(test_data, device);
    let validation = validation_data.map(|v| HeldOut::new(v, device));
    let (eval_split, eval_set) = match &validation {
        Some(v) => (EvalSplit::Validation, &v.set),
        None => (EvalSplit::Test, &test.set),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C: stop now
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)...");
    })
    .context("installing the Ctrl-C handler")?;

    if !args.quiet && recipe.line_set.is_empty() {
        eprintln!(
            "training {} on {} images ({}), evaluating on {} {} images, into {}",
            recipe.summary(),
            train_set.len(),
            device::name(device),
            eval_set.len(),
            eval_split.name(),
            args.out.display()
        );
    }
    let recipe_line_set = recipe.line_set.clone();
    let config =
        TrainConfig { recipe, device, run_dir: args.out.clone(), resume: args.resume, eval_split, quiet: args.quiet };
    let result = match recipe_line_set.as_slice() {
        [] => train(&config, &train_set, eval_set, &stop),
        dirs => {
            let lines = LineSet::load(dirs, "train", device).context("loading the line sets' training strips")?;
            let held_out =
                LineSet::load(dirs, "validation", device).context("loading the line sets' validation strips")?;
            if !args.quiet {
                eprintln!(
                    "training {} on {} strips of numbers ({}), evaluating on {} validation strips, into {}",
                    config.recipe.summary(),
                    lines.len(),
                    device::name(device),
                    held_out.len(),
                    args.out.display()
                );
            }
            train_lines(&config, &lines, &held_out, &stop)
        }
    };
    let trained = match result {
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
    report(&trained.net, &test.set, &args.out, Some(&trained.progress))?;
    if !args.no_export {
        let splits = Splits { train: &train_set, validation: validation.as_ref(), test: &test };
        publish(&trained.net, &trained.vs, &trained.progress, &splits, &args.out, &args.ship)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Holds the recipe's validation images out of the training files: the
/// training images that remain, and the held-out ones (`None` when the
/// recipe holds out none).
fn split_validation(mut train_data: Mnist, recipe: &Recipe) -> (Mnist, Option<Mnist>) {
    if recipe.validation_images == 0 {
        return (train_data, None);
    }
    let validation = train_data.split_off_last(recipe.validation_images);
    (train_data, Some(validation))
}

/// Loads a run's weights onto `device`.
fn load_run(run: &Path, device: Device) -> Result<(VarStore, Net)> {
    let mut vs = VarStore::new(device);
    // The run's record names its network; runs made before it did trained the reference.
    let arch = read_progress(run)?.map(|progress| progress.recipe.arch).unwrap_or_default();
    let net = Net::new(&vs.root(), arch);
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
        plot::training_curves(
            &progress.history,
            progress.eval_split.name(),
            &progress.recipe.summary(),
            &dir.join("curves.png"),
        )?;
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
    let (train_data, test_data) = load_data(&args.data, false)?;
    // The same held-out images the run validated on: its recipe says how many.
    let (train_data, validation_data) = split_validation(train_data, &progress.recipe);
    let train_set = TensorSet::new(&train_data, device);
    let test = HeldOut::new(test_data, device);
    let validation = validation_data.map(|v| HeldOut::new(v, device));
    let splits = Splits { train: &train_set, validation: validation.as_ref(), test: &test };
    publish(&net, &vs, &progress, &splits, args.out_dir.as_deref().unwrap_or(&args.run), &args.ship)
}

/// Exports the models and cards to `dir` and says what was written.
fn publish(net: &Net, vs: &VarStore, progress: &Progress, splits: &Splits, dir: &Path, ship: &ShipArgs) -> Result<()> {
    let exported = export::export(net, vs, progress, splits, dir, ship.options())?;
    let card = &exported.float;
    eprintln!("exported {} ({:.2}% test accuracy)", dir.join(&card.model_file).display(), card.test_accuracy * 100.0);
    if let Some(calibration) = &card.calibration {
        eprintln!(
            "  temperature {:.4} fitted on {} validation images: test ECE {:.2}% -> {:.2}%, test NLL {:.4} -> {:.4}",
            calibration.temperature,
            calibration.validation_images,
            calibration.test.before.ece * 100.0,
            calibration.test.after.ece * 100.0,
            calibration.test.before.nll,
            calibration.test.after.nll,
        );
    }
    if let Some(int8) = &exported.int8 {
        let agreement = int8.quantization.as_ref().map_or(0.0, |q| q.test_argmax_agreement);
        eprintln!(
            "exported {} ({:.2}% test accuracy in ONNX Runtime, same digit as the float model on {:.2}% of test images)",
            dir.join(&int8.model_file).display(),
            int8.test_accuracy * 100.0,
            agreement * 100.0
        );
    }
    Ok(())
}
