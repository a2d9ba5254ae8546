//! ONNX Runtime's thread count follows the CPUs the process may use (its
//! affinity here; a container's CPU quota likewise), not the machine's
//! cores, when those are fewer.

#![cfg(target_os = "linux")]

mod common;

use mnist_server::{
    backend::{OnnxBackend, RuntimeOptions},
    config::Device,
};

#[test]
fn intra_op_threads_default_to_the_cpus_this_process_may_use() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("SKIPPED: one CPU here, so a one-CPU affinity changes nothing");
        return;
    }
    // As `taskset -c 0` would: this thread (which builds the session, so
    // whose mask ONNX Runtime's threads inherit) may run on CPU 0 only.
    // SAFETY: the set is a plain bitmask owned by this frame; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
    }
    let options = RuntimeOptions { device: Device::Cpu, intra_threads: 0, spinning: false, sessions: 1 };
    assert_eq!(options.intra_op_threads(), Some(1));
    let (_backend, _) = OnnxBackend::load(&common::shipped_model(), &options).unwrap();
    let intra_op_threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim() == "ort-intra-op"
        })
        .count();
    // One thread in all: the caller's, so no pool thread.
    assert_eq!(intra_op_threads, 0, "ONNX Runtime started threads for CPUs this process may not use");
}
