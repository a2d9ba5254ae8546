//! What each subcommand does, in terms of the library.

use std::{io::IsTerminal, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mnist::{
    dataset::{Mnist, Split},
    proto::v1::{GetModelInfoRequest, ListModelsRequest, ListModelsResponse, ModelInfo},
    read::Method,
};
use mnist_client::{
    bench::{self, BenchOptions, Budget},
    connect::{ServerAddress, TlsOptions},
    eval, files,
    output::{self, Annotations},
    predict::{self, Outcome, PredictOptions},
    read::{self, ReadOptions, ReadOutcome, Reader},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::cli::{
    BenchArgs, Cli, Command, DataArgs, EvalArgs, FileArgs, HealthArgs, InfoArgs, PredictArgs, ReadArgs, ReportFormat,
};

/// Runs the command and returns its exit code.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let timeout = match cli.timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => bail!("--timeout must be a positive number of seconds"),
        t => t.map(Duration::from_secs_f64),
    };
    let token = match (&cli.token_file, &cli.token) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("token file {}", path.display()))?;
            let token = text.lines().map(str::trim).find(|line| !line.is_empty());
            Some(token.with_context(|| format!("token file {} is empty", path.display()))?.to_string())
        }
        (None, token) => token.clone(),
    };
    let server = ServerAddress {
        url: cli.server.clone(),
        timeout,
        tls: TlsOptions {
            ca_cert: cli.ca_cert.clone(),
            cert: cli.cert.clone(),
            key: cli.key.clone(),
            domain: cli.tls_domain.clone(),
        },
        token,
    };
    let model = cli.model.as_str();
    if !model.is_empty()
        && matches!(cli.command, Command::Predict(_) | Command::Read(_) | Command::Eval(_) | Command::Bench(_))
    {
        check_model(&server, model).await?;
    }
    match cli.command {
        Command::Predict(args) => predict_command(&server, model, &args).await,
        Command::Read(args) => read_command(&server, model, &args).await,
        Command::Eval(args) => eval_command(&server, model, &args).await,
        Command::Bench(args) => bench_command(&server, model, &args).await,
        Command::Info(args) => info_command(&server, model, &args).await,
        Command::Health(args) => health_command(&server, &args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mnist-client", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Stops a command that names a model the server does not serve before it
/// reads a file or sends an image: NOT_FOUND names the served ones.
async fn check_model(server: &ServerAddress, model: &str) -> Result<()> {
    model_info(server, model).await.map(drop)
}

/// The served model `model` (GetModelInfo).
async fn model_info(server: &ServerAddress, model: &str) -> Result<ModelInfo> {
    let mut client = server.first_replica().await?.classifier().await?;
    let request = GetModelInfoRequest { model: model.to_string() };
    Ok(client
        .get_model_info(request)
        .await
        .map_err(|s| mnist_client::ClientError::call("GetModelInfo", s))?
        .into_inner())
}

/// The served models and their roles (ListModels).
async fn list_models(server: &ServerAddress) -> Result<ListModelsResponse> {
    let mut client = server.first_replica().await?.classifier().await?;
    let listed = client.list_models(ListModelsRequest {}).await;
    Ok(listed.map_err(|s| mnist_client::ClientError::call("ListModels", s))?.into_inner())
}

fn progress_bar(len: usize, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() || len < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("[{bar:40}] {pos}/{len} {per_sec} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn predict_command(server: &ServerAddress, model: &str, args: &PredictArgs) -> Result<ExitCode> {
    let (found, bar) = start_on_files(&args.files, args.concurrency, args.debug_preprocess.as_deref(), args.quiet)?;
    let photo_model = if model.is_empty() && !args.send_encoded { photo_model(server).await? } else { None };
    let options = PredictOptions {
        window: args.concurrency,
        send_encoded: args.send_encoded,
        debug_dir: args.debug_preprocess.clone(),
        model: model.to_string(),
        photo_model,
    };
    let mut results = predict::predict_files(server, found.images, &options, bar.clone()).await?;
    bar.finish_and_clear();
    results.extend(
        found
            .unreadable
            .into_iter()
            .map(|(path, error)| predict::FileResult { path, outcome: Outcome::Failed { error } }),
    );

    let notes = Annotations { top_k: args.top_k, min_confidence: args.min_confidence };
    print!("{}", output::render(&results, args.format, &notes));
    let failed = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed { .. })).count();
    let uncertain = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Predicted { confidence, .. } if args.min_confidence.is_some_and(|m| confidence < m)))
        .count();
    if !args.quiet {
        if let Some(dir) = &args.debug_preprocess {
            eprintln!("the 28x28 images the model saw are in {} (NNNN-<file>.png, NNNN the row)", dir.display());
        }
        let mut summary = format!("{} classified, {failed} failed", results.len() - failed);
        if found.skipped > 0 {
            summary += &format!(", {} non-image files skipped", found.skipped);
        }
        if args.min_confidence.is_some() {
            summary += &format!(", {uncertain} uncertain");
        }
        eprintln!("{summary}");
    }
    let numbers =
        results.iter().filter(|r| matches!(r.outcome, Outcome::Predicted { digits_side_by_side: Some(_), .. })).count();
    if numbers > 0 {
        eprintln!(
            "warning: {numbers} image(s) hold several digits side by side; predict reads one digit per image \
             (the largest): `mnist-client read` reads whole numbers"
        );
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn read_command(server: &ServerAddress, model: &str, args: &ReadArgs) -> Result<ExitCode> {
    let (found, bar) = start_on_files(&args.files, args.concurrency, args.debug_preprocess.as_deref(), args.quiet)?;
    let expected_digits = args.expect_digits.map(|n| n as usize);
    // The digits cut here go through Predict, which names its model: the
    // ones the server reads numbers with, unless --model names one.
    let (readers, check_model) = if args.send_encoded { (Vec::new(), None) } else { readers(server, model).await? };
    let options = ReadOptions {
        readers,
        check_model,
        window: args.concurrency,
        send_encoded: args.send_encoded,
        debug_dir: args.debug_preprocess.clone(),
        model: model.to_string(),
        expected_digits,
    };
    let mut results = read::read_files(server, found.images, &options, bar.clone()).await?;
    bar.finish_and_clear();
    results.extend(
        found
            .unreadable
            .into_iter()
            .map(|(path, error)| read::ReadResult { path, outcome: ReadOutcome::Failed { error } }),
    );
    let notes = output::ReadAnnotations { min_confidence: args.min_confidence, expected_digits };
    print!("{}", output::render_readings(&results, args.format, &notes));
    let failed = results.iter().filter(|r| matches!(r.outcome, ReadOutcome::Failed { .. })).count();
    let uncertain =
        results.iter().filter(|r| matches!(&r.outcome, ReadOutcome::Read(n) if notes.doubt(n).is_some())).count();
    if !args.quiet {
        if let Some(dir) = &args.debug_preprocess {
            eprintln!("pictures of each reading and the 28x28 digits the model saw are in {}", dir.display());
        }
        let mut summary = format!("{} read, {failed} failed", results.len() - failed);
        if found.skipped > 0 {
            summary += &format!(", {} non-image files skipped", found.skipped);
        }
        if args.min_confidence.is_some() || expected_digits.is_some() {
            summary += &format!(", {uncertain} uncertain");
        }
        eprintln!("{summary}");
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The model the server classifies photos and scans with for requests
/// naming none (`ListModelsResponse.photo_model`): files preprocessed here
/// are sent as pixels, which the server would give its default model, so
/// those that needed fitting name it, to be answered as the server answers
/// the files themselves. None from a server that does not say.
async fn photo_model(server: &ServerAddress) -> Result<Option<String>> {
    Ok(Some(list_models(server).await?.photo_model).filter(|name| !name.is_empty()))
}

/// The models that read numbers here: `model`, or when it is empty those
/// the server reads with for requests naming none (its reading model and
/// second one); each as its metadata says it reads. And the model that
/// checks their digits standing alone, as the server's readers are
/// checked (none for a named model, which reads alone).
async fn readers(server: &ServerAddress, model: &str) -> Result<(Vec<Reader>, Option<String>)> {
    let (names, check_model): (Vec<String>, _) = if model.is_empty() {
        let listed = list_models(server).await?;
        let check_model = Some(listed.check_model).filter(|n| !n.is_empty());
        let names = std::iter::once(listed.read_model)
            .chain(Some(listed.second_read_model).filter(|n| !n.is_empty()))
            .collect();
        (names, check_model)
    } else {
        (vec![model.to_string()], None)
    };
    let mut readers = Vec::with_capacity(names.len());
    for name in names {
        let method = Method::of_model(&model_info(server, &name).await?.model_metadata);
        readers.push(Reader { model: name, method });
    }
    Ok((readers, check_model))
}

/// What predict and read share before any work: the files found (at
/// least one), a progress bar over them, the debug folder created.
fn start_on_files(
    files: &FileArgs,
    concurrency: usize,
    debug_dir: Option<&std::path::Path>,
    quiet: bool,
) -> Result<(files::Collected, ProgressBar)> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let found = files::collect(&files.paths, files.recursive);
    if found.images.is_empty() && found.unreadable.is_empty() {
        bail!("no image files found in {} (skipped {} other files)", display_paths(&files.paths), found.skipped);
    }
    if let Some(dir) = debug_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let bar = progress_bar(found.images.len(), quiet);
    Ok((found, bar))
}

fn display_paths(paths: &[std::path::PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn load_test_set(data: &DataArgs) -> Result<Mnist> {
    mnist::download::ensure_downloaded(&data.data_dir, false)
        .with_context(|| format!("MNIST test set in {}", data.data_dir.display()))?;
    Mnist::load(&data.data_dir, Split::Test).with_context(|| format!("MNIST test set in {}", data.data_dir.display()))
}

async fn eval_command(server: &ServerAddress, model: &str, args: &EvalArgs) -> Result<ExitCode> {
    let mut data = load_test_set(&args.data)?;
    if let Some(limit) = args.limit {
        data = data.take(limit);
    }
    let bar = progress_bar(data.len(), args.quiet);
    let report = eval::evaluate(server, model, &data, args.concurrency.max(1), bar.clone()).await?;
    bar.finish_and_clear();
    match args.format {
        ReportFormat::Text => print!("{}", report.text()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn bench_command(server: &ServerAddress, model: &str, args: &BenchArgs) -> Result<ExitCode> {
    if args.concurrency == 0 || args.connections == 0 || args.window == 0 {
        bail!("--concurrency, --connections and --window must be at least 1");
    }
    let budget = match (args.requests, args.duration) {
        (Some(n), _) => Budget::Requests(n),
        (None, Some(d)) if d.is_finite() && d > 0.0 => Budget::Duration(Duration::from_secs_f64(d)),
        (None, Some(_)) => bail!("--duration must be a positive number of seconds"),
        (None, None) => Budget::Duration(Duration::from_secs(10)),
    };
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of images per second");
    }
    if !(args.interval.is_finite() && args.interval >= 0.01) {
        bail!("--interval must be at least 0.01 seconds");
    }
    let data = Arc::new(load_test_set(&args.data)?);
    let options = BenchOptions {
        mode: args.mode,
        concurrency: args.concurrency,
        connections: args.connections,
        window: args.window,
        budget,
        warmup: args.warmup,
        rate: args.rate,
        interval: Duration::from_secs_f64(args.interval),
        model: model.to_string(),
    };
    let report = bench::run(server, data, &options).await?;
    match args.format {
        ReportFormat::Text => print!("{}", report.text()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Every served model (ListModels), or the one `--model` names (GetModelInfo),
/// each with the requests that name no model it answers (its roles).
async fn info_command(server: &ServerAddress, model: &str, args: &InfoArgs) -> Result<ExitCode> {
    let listed = list_models(server).await?;
    let models = if model.is_empty() { listed.models.clone() } else { vec![model_info(server, model).await?] };
    match args.format {
        ReportFormat::Json => {
            let json: Vec<_> = models.iter().map(|info| info_json(info, &roles(&listed, &info.name))).collect();
            // One model asked for: its object; all of them: a list.
            let json = if model.is_empty() {
                serde_json::Value::Array(json)
            } else {
                json.into_iter().next().unwrap_or_default()
            };
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        ReportFormat::Text => {
            for (i, info) in models.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", info_text(info, &roles(&listed, &info.name)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the model `name` answers when a request names no model, from the
/// roles ListModels reports: MNIST's own form (the default model), photos
/// and scans, numbers (read), the second reading of a number, the check of
/// a digit that stands alone. Empty for a model that answers only the
/// requests naming it.
fn roles(listed: &ListModelsResponse, name: &str) -> Vec<&'static str> {
    let default = listed.models.iter().any(|m| m.is_default && m.name == name);
    [
        (default, "pixels and 28x28 images"),
        (listed.photo_model == name, "photos"),
        (listed.read_model == name, "numbers"),
        (listed.second_read_model == name, "numbers, second reading"),
        (listed.check_model == name, "numbers, digits standing alone checked"),
    ]
    .into_iter()
    .filter_map(|(plays, role)| plays.then_some(role))
    .collect()
}

fn info_json(info: &ModelInfo, roles: &[&str]) -> serde_json::Value {
    let batching = info.batching.unwrap_or_default();
    serde_json::json!({
        "name": info.name,
        "default": info.is_default,
        "answers_unnamed": roles,
        "input_shape": info.input_shape,
        "classes": info.classes,
        "model_file": info.model_file,
        "model_sha256": info.model_sha256,
        "test_accuracy": info.test_accuracy,
        "execution_provider": info.execution_provider,
        "server_version": info.server_version,
        "batching": {
            "max_batch_size": batching.max_batch_size,
            "max_queue_delay_us": batching.max_queue_delay_us,
            "max_queue_size": batching.max_queue_size,
            "max_in_flight_per_stream": batching.max_in_flight_per_stream,
        },
        "model_metadata": info.model_metadata,
    })
}

fn info_text(info: &ModelInfo, roles: &[&str]) -> String {
    let batching = info.batching.unwrap_or_default();
    let accuracy = match info.test_accuracy {
        Some(a) => format!("{:.2}%", a * 100.0),
        None => "unknown (no model card)".to_string(),
    };
    let default = if info.is_default { " (default)" } else { "" };
    let roles = if roles.is_empty() { "none (answers requests that name it)".to_string() } else { roles.join("; ") };
    format!(
        "name:               {}{default}\n\
         answers unnamed:    {roles}\n\
         model:              {} (sha256 {})\n\
         test accuracy:      {accuracy}\n\
         input shape:        {:?}\n\
         execution provider: {}\n\
         batching:           up to {} images, wait {} us, queue {}, {} in flight per stream\n\
         server version:     {}\n",
        info.name,
        info.model_file,
        info.model_sha256,
        info.input_shape,
        info.execution_provider,
        batching.max_batch_size,
        batching.max_queue_delay_us,
        batching.max_queue_size,
        batching.max_in_flight_per_stream,
        info.server_version
    )
}

async fn health_command(server: &ServerAddress, args: &HealthArgs) -> Result<ExitCode> {
    let mut client = HealthClient::new(server.first_replica().await?.channel().await?);
    let response = client
        .check(HealthCheckRequest { service: args.service.clone() })
        .await
        .map_err(|s| mnist_client::ClientError::call("Health.Check", s))?
        .into_inner();
    let status = ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown);
    println!("{}", status.as_str_name());
    Ok(if status == ServingStatus::Serving { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
