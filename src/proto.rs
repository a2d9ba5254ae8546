//! Code generated from `proto/` by `build.rs`: the `mnist.v1` service and
//! messages, the Open Inference Protocol's `inference` package, and
//! `google.rpc.Status` for per-item errors in streams. The modules mirror
//! the proto packages, as the generated code expects.

/// The `mnist` proto packages.
pub mod mnist {
    /// The `mnist.v1` package: `Classifier` client and server, and its messages.
    pub mod v1 {
        tonic::include_proto!("mnist.v1");
    }
}

/// The `inference` proto package: the Open Inference Protocol (KServe v2,
/// Triton) service `GRPCInferenceService`, its messages and the part of
/// Triton's model configuration that the server fills in.
pub mod inference {
    tonic::include_proto!("inference");
}

/// The `google` proto packages.
pub mod google {
    /// The `google.rpc` package: only `Status`, used in `PredictResponse.error`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub use self::{google::rpc::Status as RpcStatus, mnist::v1};

/// Encoded `FileDescriptorSet` of every proto file, served by gRPC reflection
/// so that grpcurl, ghz and Postman work without a local copy of the protos.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mnist_descriptor");

/// Fully qualified name of the classifier service, as health checks name it.
pub const CLASSIFIER_SERVICE: &str = "mnist.v1.Classifier";

/// Fully qualified name of the Open Inference Protocol service.
pub const INFERENCE_SERVICE: &str = "inference.GRPCInferenceService";
