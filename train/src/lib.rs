//! `mnist-train`: trains the reference MNIST CNN with tch (libtorch),
//! evaluates it and exports it to ONNX without Python.
//!
//! The pipeline reads top to bottom: [`data`] loads MNIST into tensors,
//! [`augment`] perturbs batches, [`model`] is the reference network,
//! [`optim`] updates it (with state that checkpoints can hold),
//! [`record`] is what a run records, [`checkpoint`] saves and resumes runs,
//! [`train`] drives epochs, [`eval`] scores a model and [`plot`] draws its
//! charts. Shipping: [`calibrate`] fits the temperature on the validation
//! split, [`quantize`] measures the int8 activation ranges, [`onnx`] writes
//! the float and int8 graphs that `mnist-server` serves (and reads a float
//! one back into trainable weights, for `--init`), [`runtime`] scores
//! them in ONNX Runtime, and [`export`] puts it all together with the
//! [`card`]s.

pub mod augment;
pub mod calibrate;
pub mod card;
pub mod checkpoint;
pub mod data;
pub mod device;
mod error;
pub mod eval;
pub mod export;
pub mod lines;
pub mod model;
pub mod onnx;
pub mod optim;
pub mod plot;
pub mod quantize;
pub mod recipe;
pub mod record;
pub mod runtime;
pub mod train;

pub use error::{Error, Result};
