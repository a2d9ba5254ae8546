//! The protocol fronts: each translates its messages into the [`core`]'s
//! images and predictions back, and nothing more.
//!
//! - [`classifier`]: `mnist.v1.Classifier` over gRPC, the service's own API,
//!   with [`reader`] translating its `Read` calls (handwritten numbers);
//! - [`inference`]: the Open Inference Protocol (KServe v2, Triton) over
//!   gRPC, on the same port;
//! - [`http`]: the Open Inference Protocol's REST API, on `--http-addr`;
//! - [`web`]: the web page on the same port, and the small JSON API it calls.
//!
//! [`oip`] holds what the two Open Inference Protocol fronts share (tensor
//! names, shapes and data types, the model's metadata and configuration),
//! and `stream` the read-admit-answer loop of both gRPC streaming calls.
//!
//! [`core`]: crate::core

pub mod body;
pub mod classifier;
pub mod http;
pub mod inference;
pub mod oip;
pub mod reader;
mod stream;
pub mod web;

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// tonic enforces `grpc-timeout` as well, from the moment the request
/// arrived, and answers CANCELLED when its timer fires while the handler is
/// still waiting. Ending our own wait this much earlier (tokio's timer
/// granularity) lets the handler answer first, with the DEADLINE_EXCEEDED
/// that gRPC clients expect.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// A gRPC call's deadline, from the `grpc-timeout` header that gRPC clients
/// send when a deadline is set (less [`DEADLINE_MARGIN`]).
fn deadline(metadata: &MetadataMap) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    Some(Instant::now() + parse_grpc_timeout(value)?.saturating_sub(DEADLINE_MARGIN))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    // Header values reach here as visible ASCII, but the check makes the
    // byte split below safe for any string (found by the request fuzzer).
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        // Regression (fuzz/regressions/request): a multi-byte character
        // across the unit's position used to panic in `split_at`.
        assert_eq!(parse_grpc_timeout("1\u{62c}"), None);
        assert_eq!(parse_grpc_timeout("\u{1f600}"), None);
    }
}
