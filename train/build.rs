//! Lets `mnist-train` find libtorch at run time without LD_LIBRARY_PATH, and
//! keeps the CUDA library linked when built with `--features cuda`.

use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    // Rust links with --as-needed, which drops libtorch_cuda because no symbol
    // of it is referenced directly; without it, CUDA is never available.
    if env::var_os("CARGO_FEATURE_CUDA").is_some() && target_os == "linux" {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
