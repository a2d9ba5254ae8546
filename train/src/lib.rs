//! `mnist-train`: trains the reference MNIST CNN with tch (libtorch),
//! evaluates it and exports it to ONNX without Python.
//!
//! The pipeline reads top to bottom: [`data`] loads MNIST into tensors,
//! [`augment`] perturbs batches, [`model`] is the reference network,
//! [`optim`] updates it (with state that checkpoints can hold),
//! [`checkpoint`] saves and resumes runs, [`train`] drives epochs,
//! [`eval`] scores a model, [`plot`] draws the curves, and [`onnx`] exports
//! the graph that `mnist-server` serves.

pub mod augment;
pub mod card;
pub mod checkpoint;
pub mod data;
pub mod device;
mod error;
pub mod eval;
pub mod model;
pub mod onnx;
pub mod optim;
pub mod plot;
pub mod recipe;
pub mod train;

pub use error::{Error, Result};
