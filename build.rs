//! Generates the gRPC code of `proto/` (`mnist.v1` and the Open Inference
//! Protocol's `inference`) with a vendored `protoc`, so that
//! building needs no system protobuf compiler.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut prost_config = prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        // Reflection serves this set, so grpcurl and ghz need no .proto file.
        .file_descriptor_set_path(out_dir.join("mnist_descriptor.bin"))
        .compile_with_config(
            prost_config,
            &[PathBuf::from("proto/mnist/v1/classifier.proto"), PathBuf::from("proto/inference/grpc_service.proto")],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
