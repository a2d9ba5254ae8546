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
    ensure_downloaded_from(MIRRORS, dir, quiet)
}

/// [`ensure_downloaded`] from other mirrors (base URLs ending in `/`), tried
/// in order for each file.
pub fn ensure_downloaded_from(mirrors: &[&str], dir: &Path, quiet: bool) -> Result<()> {
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
        download_one(&agent, mirrors, dir, file, quiet)?;
    }
    Ok(())
}

fn download_one(agent: &ureq::Agent, mirrors: &[&str], dir: &Path, file: DataFile, quiet: bool) -> Result<()> {
    let final_path = dir.join(format!("{}.gz", file.name));
    let part_path = dir.join(format!("{}.gz.part", file.name));
    let mut attempts = Vec::new();
    for mirror in mirrors {
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

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader},
        net::TcpListener,
    };

    use super::*;
    use crate::dataset::{Mnist, Split, default_dir};

    /// How a stand-in mirror answers.
    #[derive(Clone, Copy)]
    enum Mirror {
        /// Sends the first `n` bytes, then drops the connection.
        CutAfter(usize),
        /// Sends the file with one byte changed.
        Corrupt,
        /// Sends the file.
        Good,
    }

    /// Serves every published file from the local MNIST copy the way
    /// `behaviour` says, over plain HTTP on an ephemeral port; returns the
    /// base URL.
    fn serve(behaviour: Mirror) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request_line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                while let Ok(n) = reader.read_line(&mut String::new()) {
                    if n <= 2 {
                        break; // end of headers
                    }
                }
                let name = request_line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
                let Ok(mut body) = fs::read(default_dir().join(name)) else {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                    continue;
                };
                let length = body.len();
                match behaviour {
                    Mirror::CutAfter(n) => body.truncate(n),
                    Mirror::Corrupt => {
                        // The gzip CRC or the SHA-256 of the content must catch it.
                        let middle = body.len() / 2;
                        body[middle] ^= 0x01;
                    }
                    Mirror::Good => {}
                }
                let header = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(header.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        url
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn interrupted_or_corrupt_downloads_are_never_kept() {
        if !crate::dataset::is_complete(&default_dir()) {
            panic!("the MNIST files are needed to serve them (set MNIST_DIR)");
        }
        let cut = serve(Mirror::CutAfter(1000));
        let corrupt = serve(Mirror::Corrupt);
        let dir = tempfile::tempdir().unwrap();

        let error = ensure_downloaded_from(&[&cut, &corrupt], dir.path(), true).unwrap_err().to_string();
        assert!(error.contains(&cut) && error.contains(&corrupt), "both mirrors are named: {error}");
        assert!(files_in(dir.path()).is_empty(), "nothing is left behind: {:?}", files_in(dir.path()));

        // A good mirror after the broken ones: every file arrives, verified.
        let good = serve(Mirror::Good);
        ensure_downloaded_from(&[&cut, &corrupt, &good], dir.path(), true).unwrap();
        assert_eq!(files_in(dir.path()).len(), 4, "{:?}", files_in(dir.path()));
        assert_eq!(Mnist::load(dir.path(), Split::Test).unwrap().len(), 10_000);
    }
}
