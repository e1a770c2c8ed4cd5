//! A local fake of the eds-aic 2023-09-30 HTTP API (`DescribeAndroidInstances`,
//! `DescribeRegions`), faithful where a client can tell: wire format, V3 and V1
//! signatures with the gateway's freshness rules, error bodies and statuses,
//! opaque paging tokens. Tests, the demo and benchmarks run the real client
//! against it on loopback.
//!
//! Pieces: [`generate`] builds instance `i` of a seeded fleet on demand, [`fleet`]
//! keeps the changes on top and lists pages, [`filter`] and [`token`] are the
//! request side of paging, [`auth`] verifies signatures, [`churn`] and [`faults`]
//! are the knobs tests turn, [`server`] is the HTTP face and [`cli`] the command.
//! [`fleet_file`] reads a fleet given as the API's own objects instead of a
//! generated one.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ecp_inventory::simulator::{Simulator, SimulatorConfig};
//! let sim = Simulator::new(SimulatorConfig { instances: 10_000, ..Default::default() });
//! let running = sim.start("127.0.0.1:0".parse().unwrap()).await?;
//! println!("{}", running.endpoint()); // http://127.0.0.1:PORT
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod churn;
pub mod cli;
pub mod error;
pub mod faults;
pub mod filter;
pub mod fleet;
pub mod fleet_file;
pub mod generate;
mod server;
pub mod token;

pub use churn::{ChurnReport, ChurnSpec};
pub use cli::{run_cli, SimulateArgs};
pub use faults::Faults;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use crate::api::model::RawInstance;
use crate::api::Credentials;
use auth::NonceBook;
use fleet::Fleet;
use generate::{Generator, Rng, DEFAULT_REGIONS};

pub const DEFAULT_ACCESS_KEY_ID: &str = "testAccessKeyId";
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "testAccessKeySecret";

/// The simulator's idea of "now", against which request dates are checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Clock {
    System,
    /// Frozen: replays of recorded requests verify at their recorded date.
    Fixed(DateTime<Utc>),
    /// The system clock shifted by this many seconds (a skewed server).
    OffsetSeconds(i64),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::OffsetSeconds(s) => Utc::now() + Duration::seconds(*s),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Size of the generated fleet.
    pub instances: usize,
    /// A fleet given as instance objects, their text served as it is, in this
    /// order under the default sort (newest first), instead of a generated one
    /// (`instances` is then ignored). A `Map` becomes one with `.into()`.
    pub records: Option<Vec<RawInstance>>,
    /// Same seed (and size and regions), same fleet.
    pub seed: u64,
    /// Business regions the fleet is spread over (`DescribeRegions` lists them).
    pub regions: Vec<String>,
    /// Accepted keys. STS keys (`STS.` prefix) need their `security_token`.
    pub credentials: Vec<Credentials>,
    pub clock: Clock,
    pub faults: Faults,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            instances: 1000,
            records: None,
            seed: 1,
            regions: DEFAULT_REGIONS
                .iter()
                .map(|(r, _)| (*r).to_owned())
                .collect(),
            credentials: vec![Credentials::new(
                DEFAULT_ACCESS_KEY_ID,
                DEFAULT_ACCESS_KEY_SECRET,
            )],
            clock: Clock::System,
            faults: Faults::default(),
        }
    }
}

/// Request counters, for tests and `GET /_sim/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests to the API (`/`), whatever their outcome.
    pub requests: u64,
    /// Answers with status 200, per action.
    pub ok: BTreeMap<String, u64>,
    /// Error answers, per error code (`Html502`, `MalformedJson` for those faults).
    pub errors: BTreeMap<String, u64>,
    /// Pages of `DescribeAndroidInstances` served, and the instances in them.
    pub pages: u64,
    pub instances_served: u64,
}

/// The simulator's state; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    regions: Vec<String>,
    credentials: Vec<Credentials>,
    fleet: RwLock<Fleet>,
    faults: Mutex<(Faults, Rng)>,
    clock: Mutex<Clock>,
    nonces: NonceBook,
    stats: Mutex<Stats>,
}

/// A simulator serving on a socket. Dropping it stops the server too.
pub struct RunningSimulator {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT`, the endpoint to point a client at.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Simulator {
        let fleet = match config.records {
            Some(records) => Fleet::from_records(
                Generator::new(config.seed, config.regions.clone(), records.len()),
                records,
            ),
            None => Fleet::new(
                Generator::new(config.seed, config.regions.clone(), config.instances),
                config.instances,
            ),
        };
        let rng = Rng::new(config.faults.seed);
        Simulator {
            inner: Arc::new(Inner {
                seed: config.seed,
                regions: config.regions,
                credentials: config.credentials,
                fleet: RwLock::new(fleet),
                faults: Mutex::new((config.faults, rng)),
                clock: Mutex::new(config.clock),
                nonces: NonceBook::default(),
                stats: Mutex::new(Stats::default()),
            }),
        }
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a tokio task.
    pub async fn start(&self, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(self.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        tracing::debug!(%addr, "simulator listening");
        Ok(RunningSimulator { addr, stop, task })
    }

    /// Applies churn now; returns the ids changed per kind.
    pub fn churn(&self, spec: &ChurnSpec) -> ChurnReport {
        let now = self.now();
        churn::apply(&mut self.fleet_mut(), spec, now)
    }

    /// Replaces the fault knobs and restarts their RNG from `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let rng = Rng::new(faults.seed);
        *self.inner.faults.lock().expect("faults") = (faults, rng);
    }

    pub fn faults(&self) -> Faults {
        self.inner.faults.lock().expect("faults").0.clone()
    }

    /// Every live instance's JSON, oldest first, exactly as the API serves it.
    pub fn fleet(&self) -> Vec<Value> {
        let fleet = self.fleet_ref();
        fleet
            .live_indices()
            .filter_map(|i| fleet.json(i).map(Value::Object))
            .collect()
    }

    pub fn instance_count(&self) -> usize {
        self.fleet_ref().live_count() as usize
    }

    /// The JSON of the instance with this `AndroidInstanceId`.
    pub fn instance(&self, id: &str) -> Option<Value> {
        let fleet = self.fleet_ref();
        fleet
            .find(id)
            .and_then(|i| fleet.json(i))
            .map(Value::Object)
    }

    /// Edits one instance's raw JSON (to inject bad data: drop a field, send
    /// `"Cpu": "four"`, a number as a string...). The result is served as is.
    /// Returns false when no live instance has this id.
    pub fn edit_instance(&self, id: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> bool {
        let mut fleet = self.fleet_mut();
        let Some(index) = fleet.find(id) else {
            return false;
        };
        let Some(mut json) = fleet.json(index) else {
            return false;
        };
        edit(&mut json);
        fleet.replace(index, json);
        true
    }

    /// Brings back an instance that churn deleted (a phone that reappears, as after
    /// a failed release). Returns false when no deleted instance has this id.
    pub fn restore_instance(&self, id: &str) -> bool {
        self.fleet_mut().undelete(id)
    }

    /// The ids of the first `n` live instances, oldest first (handy for edits).
    pub fn instance_ids(&self, n: usize) -> Vec<String> {
        let fleet = self.fleet_ref();
        fleet
            .live_indices()
            .take(n)
            .filter_map(|i| fleet.json(i))
            .filter_map(|j| {
                j.get("AndroidInstanceId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }

    pub fn set_clock(&self, clock: Clock) {
        *self.inner.clock.lock().expect("clock") = clock;
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.lock().expect("clock").now()
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats.lock().expect("stats").clone()
    }

    pub fn regions(&self) -> Vec<String> {
        self.inner.regions.clone()
    }

    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    fn fleet_ref(&self) -> std::sync::RwLockReadGuard<'_, Fleet> {
        self.inner.fleet.read().expect("fleet lock")
    }

    fn fleet_mut(&self) -> std::sync::RwLockWriteGuard<'_, Fleet> {
        self.inner.fleet.write().expect("fleet lock")
    }
}
