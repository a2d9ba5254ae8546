//! The Open Inference Protocol's request parsing, gRPC and HTTP, then the
//! preparation of every image it carried (see `check_oip_request`).

#![no_main]

#[path = "../common.rs"]
mod common;
#[path = "../oip.rs"]
mod oip;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oip::check_oip_request(data, &common::LIMITS);
});
