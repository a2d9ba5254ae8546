//! `mnist-client`: talks to `mnist-server` over gRPC.
//!
//! [`connect`] opens a channel, [`replicas`] says which servers `--server`
//! names, [`files`] finds the images to send, [`pipeline`] streams them over
//! every replica with a bounded window and failover, [`predict`], [`read`],
//! [`eval`] and [`bench`](mod@bench) are the subcommands' logic, and [`output`] renders results
//! for people (table) and scripts (JSON, CSV).

pub mod bench;
pub mod connect;
mod error;
pub mod eval;
pub mod files;
pub mod output;
pub mod pipeline;
pub mod predict;
pub mod read;
pub mod replicas;

pub use error::ClientError;
