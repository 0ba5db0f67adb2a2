//! The Python surface: the `gproxy_mp._native` module and its one class, `Engine`.
//!
//! Thin by design: argument conversion, fd ownership, and the GIL released (`detach`)
//! around the one call that waits (joining the runtime thread). Counters are read here from
//! atomics; nothing in here runs per call.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::balance::Balancer;
use crate::engine::{Options, Running, Shared};
use crate::health::Verdict;
use crate::locality::Placement;
use crate::stats::{CODE_NAMES, LATENCY_BUCKETS};
use crate::tls;
use crate::verdicts::{Change, Checks};

type Calls = Vec<(String, &'static str, String, &'static str, u64)>;
type AccessRecords = Vec<(String, String, &'static str, f64)>;
/// A health verdict as the adapter reads it: (condition or None, why).
type PyVerdict = (Option<&'static str>, String);
type Changes = Vec<(String, Option<PyVerdict>, PyVerdict)>;

fn py_verdict(verdict: Verdict) -> PyVerdict {
    (verdict.condition.map(|c| c.name()), verdict.why)
}

#[pyclass(frozen, module = "gproxy_mp._native")]
struct Engine {
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{what}: {value} is not a duration in seconds")))
}

fn take_fd(fd: RawFd, what: &str) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "{what}: {fd} is not a file descriptor"
        )));
    }
    // SAFETY: the caller hands over an open descriptor it duplicated for the engine and
    // never uses or closes again (documented in the stub); from here on it is owned once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Engine {
    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[allow(clippy::too_many_arguments)] // keyword-only from Python: one per option
    #[pyo3(signature = (*, target, max_concurrent_streams, connect_timeout,
                        max_connection_age=None, max_connection_age_grace=None,
                        balancer="round-robin", method_label=false, access_log=false,
                        health_check=None, health_check_interval=5.0))]
    fn new(
        target: String,
        max_concurrent_streams: u32,
        connect_timeout: f64,
        max_connection_age: Option<f64>,
        max_connection_age_grace: Option<f64>,
        balancer: &str,
        method_label: bool,
        access_log: bool,
        health_check: Option<String>,
        health_check_interval: f64,
    ) -> PyResult<Engine> {
        let interval = seconds(health_check_interval, "health_check_interval")?;
        if interval.is_zero() {
            return Err(PyValueError::new_err(
                "health_check_interval: must be above 0",
            ));
        }
        let options = Options {
            target,
            balancer: Balancer::from_name(balancer).ok_or_else(|| {
                PyValueError::new_err(format!("balancer: {balancer:?} is not a balancer"))
            })?,
            max_concurrent_streams,
            connect_timeout: seconds(connect_timeout, "connect_timeout")?,
            max_connection_age: max_connection_age
                .map(|age| seconds(age, "max_connection_age"))
                .transpose()?,
            max_connection_age_grace: max_connection_age_grace
                .map(|grace| seconds(grace, "max_connection_age_grace"))
                .transpose()?,
            method_label,
            access_log,
            health_checks: health_check.map(|service| Checks::new(service, interval)),
        };
        Ok(Engine {
            shared: Arc::new(Shared::new(options)),
            running: Mutex::new(None),
        })
    }

    /// Serve on `listener_fds` (bound and listening, one per address of the listen host; the
    /// engine owns them from now on) on a new runtime thread; `wake_fd` (a pipe's write end,
    /// also owned) is closed when it ends.
    fn start(&self, listener_fds: Vec<RawFd>, wake_fd: RawFd) -> PyResult<()> {
        let mut running = self.running();
        if running.is_some() {
            return Err(PyRuntimeError::new_err("the engine is already started"));
        }
        let listeners = listener_fds
            .into_iter()
            .map(|fd| take_fd(fd, "listener_fds"))
            .collect::<PyResult<Vec<_>>>()?;
        let wake = take_fd(wake_fd, "wake_fd")?;
        let started = Running::start(self.shared.clone(), listeners, wake)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the engine: {e}")))?;
        *running = Some(started);
        Ok(())
    }

    /// Replace the endpoint set: (`host:port`, locality name, ring) each; returns how many
    /// are new.
    fn set_endpoints(&self, endpoints: Vec<(String, String, u32)>) -> PyResult<usize> {
        let placed = endpoints
            .into_iter()
            .map(|(address, locality, ring)| {
                let placement = Placement::from_parts(&locality, ring).ok_or_else(|| {
                    PyValueError::new_err(format!("{address}: {locality:?} is not a locality"))
                })?;
                Ok((address, placement))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let added = self.shared.endpoints.replace(&placed, &self.shared.stats);
        if let Some(running) = self.running().as_ref() {
            for backend in &added {
                running
                    .handle
                    .spawn(self.shared.clone().welcome(backend.clone()));
            }
        }
        Ok(added.len())
    }

    fn endpoint_count(&self) -> usize {
        self.shared.endpoints.load().len()
    }

    fn active_calls(&self) -> i64 {
        self.shared.stats.active_calls()
    }

    /// (calls as (backend, code, method, locality, count), latency buckets, duration sum,
    /// retries by reason).
    fn stats(&self) -> (Calls, Vec<u64>, f64, Vec<(&'static str, u64)>) {
        let snapshot = self.shared.stats.snapshot();
        (
            snapshot.calls,
            snapshot.buckets,
            snapshot.duration_sum,
            snapshot.retries,
        )
    }

    /// The access log records queued since the last call, as (method, backend, code,
    /// seconds), oldest first, and how many were dropped meanwhile; ([], 0) when the log is
    /// off.
    fn access_records(&self) -> (AccessRecords, u64) {
        let Some(log) = &self.shared.access else {
            return (Vec::new(), 0);
        };
        let (records, dropped) = log.drain();
        let records = records
            .into_iter()
            .map(|r| {
                let code = CODE_NAMES[usize::from(r.code.min(16))];
                (r.method, r.backend, code, r.seconds)
            })
            .collect();
        (records, dropped)
    }

    /// Use this listener TLS material (PEM) for new connections from now on; `client_ca`:
    /// require client certificates issued by it. Before `start`: the listener speaks TLS.
    /// ValueError (the material in use is kept): rustls refused it, and why.
    #[pyo3(signature = (cert, key, client_ca=None))]
    fn set_listener_tls(&self, cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> PyResult<()> {
        let config = tls::server_config(cert, key, client_ca).map_err(PyValueError::new_err)?;
        self.shared.tls.listener.store(Some(config));
        Ok(())
    }

    /// Use this TLS material (PEM) for backend connections from now on (open ones are left to
    /// finish their calls and close; new calls get new connections): `ca` the CAs
    /// backends' certificates chain to, `cert` and `key` a client certificate (both or
    /// neither), `server_name` the name to verify (None: each backend's host). ValueError
    /// (the material in use is kept): rustls refused it, and why.
    #[pyo3(signature = (ca, cert=None, key=None, server_name=None))]
    fn set_backend_tls(
        &self,
        ca: &[u8],
        cert: Option<&[u8]>,
        key: Option<&[u8]>,
        server_name: Option<&str>,
    ) -> PyResult<()> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(PyValueError::new_err("cert and key go together")),
        };
        let config =
            tls::backend_config(ca, identity, server_name).map_err(PyValueError::new_err)?;
        let renewing = self
            .shared
            .tls
            .backend
            .swap(Some(Arc::new(config)))
            .is_some();
        if renewing {
            for backend in self.shared.endpoints.load().iter() {
                backend.renew();
            }
        }
        Ok(())
    }

    /// TLS handshakes that failed so far: (listener, backend).
    fn tls_failures(&self) -> (u64, u64) {
        self.shared.tls.failures()
    }

    /// Backends (`host:port`) of the current set not counted healthy, and why.
    fn unhealthy(&self) -> Vec<(String, &'static str)> {
        let now = Instant::now();
        self.shared
            .endpoints
            .load()
            .iter()
            .filter_map(|b| b.condition(now).map(|why| (b.address.clone(), why)))
            .collect()
    }

    /// Each backend's health-check condition (None: passes, or not checked yet), in the
    /// current set's order; empty without `--health-check`.
    fn health(&self) -> Vec<Option<&'static str>> {
        if self.shared.health_checks.is_none() {
            return Vec::new();
        }
        let table = self.shared.endpoints.load();
        table
            .iter()
            .map(|b| b.health.condition().map(|c| c.name()))
            .collect()
    }

    /// The health verdicts that changed since the last call, oldest first, as (backend,
    /// verdict before (None: first check), verdict now), and how many more were dropped.
    fn health_changes(&self) -> (Changes, u64) {
        let Some(checks) = &self.shared.health_checks else {
            return (Vec::new(), 0);
        };
        let (changes, dropped) = checks.take_changes();
        let changes = changes
            .into_iter()
            .map(|(address, Change { before, after })| {
                (address, before.map(py_verdict), py_verdict(after))
            })
            .collect();
        (changes, dropped)
    }

    /// With health checks: from now on write a byte to `wake_fd` (a nonblocking pipe's write
    /// end, the engine's from now on) when a verdict change is queued and none was waiting,
    /// so the worker reads `health_changes` at once. Without: it is closed.
    fn wake_on_health_changes(&self, wake_fd: RawFd) -> PyResult<()> {
        let wake = take_fd(wake_fd, "wake_fd")?;
        if let Some(checks) = &self.shared.health_checks {
            checks.wake_with(wake.into());
        }
        Ok(())
    }

    /// Stop accepting, GOAWAY every connection, let calls finish for `timeout` seconds, then
    /// cancel the rest and end the runtime. Returns at once.
    fn drain(&self, timeout: f64) -> PyResult<()> {
        let timeout = seconds(timeout, "timeout")?;
        if let Some(running) = self.running().as_ref() {
            running.drain(timeout);
        }
        Ok(())
    }

    /// Cancel every call, end the runtime and join its thread (the GIL released meanwhile).
    fn stop(&self, py: Python<'_>) {
        let taken = self.running().take();
        if let Some(mut running) = taken {
            running.stop();
            let running = py.detach(move || {
                running.join();
                running
            });
            *self.running() = Some(running);
        }
    }

    /// How the runtime ended: (True, what) after a drain or stop, (False, why) when it
    /// failed; None while it runs or before it started.
    fn outcome(&self) -> Option<(bool, String)> {
        let running = self.running();
        match running.as_ref()?.outcome()? {
            Ok(what) => Some((true, what)),
            Err(why) => Some((false, why)),
        }
    }
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Engine>()?;
    module.add("LATENCY_BUCKETS", LATENCY_BUCKETS.to_vec())?;
    Ok(())
}
