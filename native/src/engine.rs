//! The engine's lifecycle: one tokio current_thread runtime on a thread of its own.
//!
//! `Engine::start` builds the runtime on the new thread (never at import time: a runtime
//! must not exist in a process that may still fork) and returns at once; Python keeps the
//! main thread and its signal handlers. The runtime serves until `drain` or `stop` say:
//! drain = stop accepting, GOAWAY every connection, wait for the calls in flight up to the
//! timeout, then cancel the rest; stop = cancel now. When the runtime thread ends, for
//! whatever reason, it records how (`outcome`) and closes the worker's wake-up pipe, so the
//! worker's event loop learns of it without a thread or a poll and without this thread ever
//! touching Python (it may end while the interpreter finalises).

use std::net::TcpListener as StdListener;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::access::AccessLog;
use crate::backend::Backend;
use crate::balance::Balancer;
use crate::checker::run_checks;
use crate::endpoints::Endpoints;
use crate::retry::Budget;
use crate::server::{Phase, accept_loop};
use crate::stats::{CallCounts, Stats};
use crate::tls::Tls;
use crate::verdicts::Checks;

/// After a drain timed out (or a stop), how long cancelled calls get to unwind.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// What every task of the engine reads.
pub struct Shared {
    pub target: String,
    pub endpoints: Endpoints,
    pub stats: Stats,
    /// The counters of calls that reached no backend.
    pub no_backend: Arc<CallCounts>,
    budget: Mutex<Budget>,
    pub connect_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub max_connection_age: Option<Duration>,
    pub max_connection_age_grace: Option<Duration>,
    /// `--metrics-method-label`: count calls by method too.
    pub method_label: bool,
    /// `--access-log`: a record of each call for the worker to log.
    pub access: Option<AccessLog>,
    /// `--health-check` (None: off).
    pub health_checks: Option<Arc<Checks>>,
    /// Both sides' TLS configurations in use (None: plaintext), and handshake failures.
    pub tls: Tls,
}

pub struct Options {
    pub target: String,
    pub balancer: Balancer,
    pub connect_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub max_connection_age: Option<Duration>,
    pub max_connection_age_grace: Option<Duration>,
    pub method_label: bool,
    pub access_log: bool,
    pub health_checks: Option<Checks>,
}

impl Shared {
    pub fn new(options: Options) -> Shared {
        let stats = Stats::default();
        Shared {
            no_backend: stats.counts_for(""),
            stats,
            target: options.target,
            endpoints: Endpoints::new(options.balancer),
            budget: Mutex::default(),
            connect_timeout: options.connect_timeout,
            max_concurrent_streams: options.max_concurrent_streams,
            max_connection_age: options.max_connection_age,
            max_connection_age_grace: options.max_connection_age_grace,
            method_label: options.method_label,
            access: options.access_log.then(AccessLog::default),
            health_checks: options.health_checks.map(Arc::new),
            tls: Tls::default(),
        }
    }

    /// What a backend new to the set runs until it leaves the set: a connection kept open
    /// (connected ahead of its first call and reconnected when it ends, as the grpcio plane's
    /// channels do) and, with `--health-check`, its checks.
    pub async fn welcome(self: Arc<Self>, backend: Arc<Backend>) {
        match &self.health_checks {
            None => backend.keep_connected(&self).await,
            Some(checks) => {
                let checked = run_checks(backend.clone(), checks.clone(), &self);
                tokio::join!(backend.keep_connected(&self), checked);
            }
        }
    }

    pub fn budget(&self) -> MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Control {
    Drain(Duration),
    Stop,
}

/// A started engine, as the Python object holds it.
pub struct Running {
    control: mpsc::UnboundedSender<Control>,
    pub handle: tokio::runtime::Handle,
    thread: Option<JoinHandle<()>>,
    outcome: Arc<Mutex<Option<Result<String, String>>>>,
}

impl Running {
    pub fn start(
        shared: Arc<Shared>,
        listeners: Vec<OwnedFd>,
        wake: OwnedFd,
    ) -> std::io::Result<Running> {
        let listeners = listeners
            .into_iter()
            .map(|fd| {
                let listener = StdListener::from(fd);
                listener.set_nonblocking(true)?; // tokio-rs/tokio#5595
                Ok(listener)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("gproxy-engine")
            .build()?;
        let handle = runtime.handle().clone();
        let (control, commands) = mpsc::unbounded_channel();
        let outcome = Arc::new(Mutex::new(None));
        let recorded = outcome.clone();
        let thread = std::thread::Builder::new()
            .name("gproxy-engine".into())
            .spawn(move || {
                let result = runtime.block_on(serve(shared, listeners, commands));
                drop(runtime); // ends backend connections and whatever else still runs
                *recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                drop(wake); // EOF on the worker's pipe: it looks at `outcome`
            })?;
        Ok(Running {
            control,
            handle,
            thread: Some(thread),
            outcome,
        })
    }

    pub fn drain(&self, timeout: Duration) {
        let _ = self.control.send(Control::Drain(timeout));
    }

    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    /// Join the runtime thread once it has ended (after `outcome` is set).
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// How the runtime ended: Ok(what happened) after a drain or stop, Err(why) otherwise;
    /// None while it runs.
    pub fn outcome(&self) -> Option<Result<String, String>> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(
    shared: Arc<Shared>,
    listeners: Vec<StdListener>,
    mut commands: mpsc::UnboundedReceiver<Control>,
) -> Result<String, String> {
    let listeners = listeners
        .into_iter()
        .map(tokio::net::TcpListener::from_std)
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("cannot serve on the listener: {e}"))?;
    for backend in shared.endpoints.load().iter() {
        tokio::spawn(shared.clone().welcome(backend.clone()));
    }
    let (phase, phases) = watch::channel(Phase::Serving);
    let (tracker, mut tracked) = mpsc::channel::<()>(1);
    let mut accepting = tokio::spawn(accept_loop(shared.clone(), listeners, phases, tracker));
    let drain_timeout = tokio::select! {
        command = commands.recv() => match command {
            Some(Control::Drain(timeout)) => Some(timeout),
            Some(Control::Stop) | None => None,
        },
        ended = &mut accepting => {
            let _ = phase.send(Phase::Cancelling);
            let _ = tokio::time::timeout(CANCEL_GRACE, tracked.recv()).await;
            return Err(match ended {
                Ok(Err(why)) => why,
                Ok(Ok(())) => "the listener stopped accepting".into(),
                Err(e) => format!("the accepting task ended: {e}"),
            });
        }
    };
    let mut said = String::from("stopped");
    if let Some(timeout) = drain_timeout {
        let _ = phase.send(Phase::Draining);
        let stop = async {
            loop {
                if let Some(Control::Stop) | None = commands.recv().await {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tracked.recv() => said = "drained".into(),
            _ = tokio::time::sleep(timeout) => {
                said = format!("drain timeout reached; cancelling {} calls", shared.stats.active_calls());
            }
            _ = stop => said = format!("stopped while draining; cancelling {} calls", shared.stats.active_calls()),
        }
    }
    let _ = phase.send(Phase::Cancelling);
    let _ = tokio::time::timeout(CANCEL_GRACE, tracked.recv()).await;
    Ok(said)
}
