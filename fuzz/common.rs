//! What the fuzz targets and the tests that replay their inputs share: the
//! decoding limits the targets run with, and the stored inputs (seeds and
//! every input that once crashed) of a target. Included by path, since the
//! fuzz crate and the workspace's tests are built separately.

#![allow(dead_code)]

use std::path::Path;

use mnist::preprocess::DecodeLimits;

/// Small limits keep each run fast; the checks are the same as the server's.
pub const LIMITS: DecodeLimits = DecodeLimits { max_encoded_bytes: 1 << 20, max_side: 2048, max_pixels: 1 << 20 };

/// Every file of `<fuzz_dir>/seeds/<target>` and `<fuzz_dir>/regressions/<target>`,
/// with its path.
pub fn stored_inputs(fuzz_dir: &Path, target: &str) -> Vec<(String, Vec<u8>)> {
    ["seeds", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz_dir.join(kind).join(target)).ok())
        .flatten()
        .map(|entry| {
            let path = entry.expect("readable fuzz input directory").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect()
}
