//! gproxy-mp's native data plane: a worker's call forwarding in Rust (`gproxy_mp._native`).
//!
//! The Python surface is one class, `Engine`, driven by the worker's plane adapter
//! (`gproxy_mp/worker/planes/native.py`): start on a listener fd, replace the endpoint set,
//! read counters, drain, stop. Everything decided per call is plain Rust, unit-tested with
//! `cargo test`: header filtering (`headers`), deadlines (`deadline`), the pick (`balance`),
//! retries and their budget (`retry`), counters (`stats`), health-check answers and verdicts
//! (`health`, `verdicts`), TLS configurations from PEM (`tls`). No call ever takes the GIL.
//!
//! Panics: the release and dev profiles build with `panic = "abort"`. A panic anywhere in the
//! engine ends the worker process at once (SIGABRT, with Rust's panic message on stderr) and
//! the supervisor replaces it, as for any crashed worker; nothing is left half-running, and a
//! panicking task can never be swallowed silently by tokio.

pub mod access;
pub mod backend;
pub mod balance;
pub mod body;
pub mod call;
pub mod checker;
pub mod deadline;
pub mod endpoints;
pub mod engine;
pub mod headers;
pub mod health;
pub mod intake;
pub mod locality;
pub mod python;
pub mod retry;
pub mod server;
pub mod stats;
pub mod status;
pub mod tls;
pub mod verdicts;
