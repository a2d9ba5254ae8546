//! Fetches missing MNIST files from public mirrors.
//!
//! Each file goes to `NAME.gz.part` first and is renamed into place only after
//! its decompressed content matched the published SHA-256, so an interrupted
//! or corrupted download is never mistaken for a good file later.

use std::{
    fs,
    io::{self, Read, Write},
    path::Path,
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    Error, Result,
    dataset::{DataFile, all_files, locate, read_verified},
};

/// Mirrors of the original gzipped files, tried in order.
pub const MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
];

/// Downloads every MNIST file missing from `dir` (creating it), with a
/// progress bar on stderr unless `quiet`. Files already present are left
/// alone; they are verified when loaded.
pub fn ensure_downloaded(dir: &Path, quiet: bool) -> Result<()> {
    let missing: Vec<DataFile> = all_files().into_iter().filter(|f| locate(dir, *f).is_err()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(300)))
        .build()
        .into();
    for file in missing {
        download_one(&agent, dir, file, quiet)?;
    }
    Ok(())
}

fn download_one(agent: &ureq::Agent, dir: &Path, file: DataFile, quiet: bool) -> Result<()> {
    let final_path = dir.join(format!("{}.gz", file.name));
    let part_path = dir.join(format!("{}.gz.part", file.name));
    let mut attempts = Vec::new();
    for mirror in MIRRORS {
        let url = format!("{mirror}{}.gz", file.name);
        match fetch(agent, &url, &part_path, quiet) {
            Ok(()) => match read_verified(&part_path, file.sha256) {
                Ok(_) => {
                    return fs::rename(&part_path, &final_path)
                        .map_err(|source| Error::Io { path: final_path.clone(), source });
                }
                Err(e) => attempts.push(format!("{url}: {e}")),
            },
            Err(e) => attempts.push(format!("{url}: {e}")),
        }
        let _ = fs::remove_file(&part_path);
    }
    Err(Error::Download { name: file.name, attempts: attempts.join("; ") })
}

fn fetch(agent: &ureq::Agent, url: &str, dest: &Path, quiet: bool) -> std::result::Result<(), String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let total =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total.unwrap_or(0)) };
    bar.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    let mut reader = response.body_mut().as_reader();
    let mut out = fs::File::create(dest).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        bar.inc(n as u64);
    }
    out.sync_all().map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(())
}
