//! The recorder: bounded per-thread queues drained by one background thread
//! that materializes, prices and writes records in batches.
//!
//! A caller only pushes onto its own thread's ring (a write and a release
//! store, no lock), so recording never blocks on I/O and threads never
//! contend with each other. The recorder thread empties each queue when a
//! thread has pushed a batch, on every flush interval, and on [`flush`].
//! When a thread's queue is full the configured [`QueuePolicy`] applies and
//! every record it drops is counted, logged and readable from [`health`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use costtrace_core::{Environment, Record};
use std::cell::RefCell;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use crate::Error;
use crate::dispatch::{Dispatch, Event};
use crate::materialize::Materializer;
use crate::pricer::Pricer;
use crate::sink::{Sink, SinkSpec};
use crate::spool::Spool;

/// What to do with a record when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueuePolicy {
    /// Drop the new record; count and log it. Never blocks (the default).
    Drop,
    /// Wait up to the given time for room, then drop (counted).
    Block(Duration),
}

/// Recorder configuration. [`Config::from_env`] reads the environment;
/// everything can also be set in code.
///
/// ```no_run
/// let _guard = costtrace::Config::new()
///     .sink("jsonl:./costs.jsonl".parse()?)
///     .environment(costtrace::Environment::Staging)
///     .init()?;
/// # Ok::<(), costtrace::Error>(())
/// ```
pub struct Config {
    sink: SinkSpec,
    custom_sink: Option<Box<dyn Sink>>,
    environment: Environment,
    queue_capacity: usize,
    queue_bytes: usize,
    batch_size: usize,
    flush_interval: Duration,
    shutdown_timeout: Duration,
    policy: QueuePolicy,
    max_retry_records: usize,
    pricer: Option<Pricer>,
    spool_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sink's description, with any password hidden; never the raw
        // URL.
        let sink = match &self.custom_sink {
            Some(s) => s.describe(),
            None => self.sink.to_string(),
        };
        f.debug_struct("Config")
            .field("sink", &sink)
            .field("environment", &self.environment)
            .field("queue_capacity", &self.queue_capacity)
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

fn env_parse<T: std::str::FromStr>(name: &'static str, hint: &str) -> Result<Option<T>, Error> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidSetting {
                    name,
                    value: v,
                    reason: hint.to_owned(),
                })
        }
        _ => Ok(None),
    }
}

impl Config {
    /// Defaults: the default sink, `development`, a 65,536-record queue,
    /// batches of 512 written at least every 200 ms, [`QueuePolicy::Drop`].
    pub fn new() -> Config {
        Config {
            sink: SinkSpec::default_spec(),
            custom_sink: None,
            environment: Environment::Development,
            queue_capacity: 65_536,
            queue_bytes: 64 << 20,
            batch_size: 512,
            flush_interval: Duration::from_millis(200),
            shutdown_timeout: Duration::from_secs(5),
            policy: QueuePolicy::Drop,
            max_retry_records: 1_000_000,
            pricer: None,
            spool_dir: Some(std::path::PathBuf::from("costtrace-spool")),
        }
    }

    /// Reads `COSTTRACE_SINK`, `ENVIRONMENT`, `COSTTRACE_QUEUE_CAPACITY`,
    /// `COSTTRACE_BATCH_SIZE`, `COSTTRACE_FLUSH_INTERVAL_MS` and
    /// `COSTTRACE_ON_FULL` (`drop` or `block:MILLIS`). A value that cannot be
    /// understood is an error naming the variable, never a silent default.
    pub fn from_env() -> Result<Config, Error> {
        let mut c = Config::new();
        if let Ok(s) = std::env::var("COSTTRACE_SINK")
            && !s.trim().is_empty()
        {
            c.sink = s.parse()?;
        }
        c.environment = Environment::from_env()?;
        if let Ok(p) = std::env::var("COSTTRACE_PRICES")
            && !p.trim().is_empty()
        {
            c = c.prices_file(p.trim())?;
        }
        if let Ok(d) = std::env::var("COSTTRACE_SPOOL_DIR") {
            let d = d.trim();
            c.spool_dir = match d {
                "" => c.spool_dir,
                "none" | "off" => None,
                d => Some(std::path::PathBuf::from(d)),
            };
        }
        if let Some(n) = env_parse::<usize>(
            "COSTTRACE_QUEUE_CAPACITY",
            "a whole number of records, e.g. 65536",
        )? {
            c = c.queue_capacity(n);
        }
        if let Some(n) = env_parse::<usize>(
            "COSTTRACE_BATCH_SIZE",
            "a whole number of records, e.g. 512",
        )? {
            c = c.batch_size(n);
        }
        if let Some(ms) = env_parse::<u64>("COSTTRACE_FLUSH_INTERVAL_MS", "milliseconds, e.g. 200")?
        {
            c = c.flush_interval(Duration::from_millis(ms));
        }
        if let Ok(v) = std::env::var("COSTTRACE_ON_FULL") {
            let v = v.trim().to_owned();
            let bad = || Error::InvalidSetting {
                name: "COSTTRACE_ON_FULL",
                value: v.clone(),
                reason: "use drop or block:MILLIS".to_owned(),
            };
            c.policy = if v == "drop" || v.is_empty() {
                QueuePolicy::Drop
            } else if let Some(ms) = v.strip_prefix("block:") {
                QueuePolicy::Block(Duration::from_millis(ms.parse().map_err(|_| bad())?))
            } else {
                return Err(bad());
            };
        }
        Ok(c)
    }

    pub fn sink(mut self, sink: SinkSpec) -> Self {
        self.sink = sink;
        self.custom_sink = None;
        self
    }

    /// Where records go while the sink is failing (default
    /// `./costtrace-spool`, or `COSTTRACE_SPOOL_DIR`).
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// No spool: records of a failing sink are kept in memory only (bounded,
    /// overflow counted as dropped) and are lost if the process dies.
    pub fn no_spool(mut self) -> Self {
        self.spool_dir = None;
        self
    }

    /// Writes to a sink of your own.
    pub fn custom_sink(mut self, sink: impl Sink) -> Self {
        self.custom_sink = Some(Box::new(sink));
        self
    }

    /// Prices from the shipped list plus the overrides in `path` (TOML or
    /// JSON; see `costtrace-pricing`). A malformed file is an error here, not
    /// a silent fallback to shipped prices.
    pub fn prices_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        self.pricer = Some(Pricer::from_file(path.as_ref())?);
        Ok(self)
    }

    /// Prices from a catalogue you built.
    pub fn catalogue(mut self, catalogue: std::sync::Arc<costtrace_pricing::Catalogue>) -> Self {
        self.pricer = Some(Pricer::new(catalogue));
        self
    }

    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = env;
        self
    }

    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Attribute bytes one thread may have queued (default 64 MiB); past it
    /// the queue counts as full, as it does at
    /// [`queue_capacity`](Config::queue_capacity) records. Bounds the memory
    /// a burst of scopes with many attributes can hold while the recorder
    /// catches up.
    pub fn queue_bytes(mut self, n: usize) -> Self {
        self.queue_bytes = n.max(1);
        self
    }

    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d.max(Duration::from_millis(1));
        self
    }

    pub fn on_full(mut self, policy: QueuePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long dropping the [`InitGuard`] waits for the queue to drain.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Installs the global recorder.
    pub fn init(self) -> Result<InitGuard, Error> {
        let mut slot = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        crate::panic::install_hook();
        crate::id::warm_up();
        let sink = match self.custom_sink {
            Some(s) => s,
            None => self.sink.open()?,
        };
        let spool = match &self.spool_dir {
            Some(dir) => Some(Spool::open(dir).map_err(|source| Error::SpoolOpen {
                dir: dir.display().to_string(),
                source,
            })?),
            None => None,
        };
        let (tx, rx) = bounded(256);
        let health = Arc::new(Health::default());
        if let Some(sp) = &spool {
            health.spooled.store(sp.records, Ordering::Relaxed);
        }
        let shared = Arc::new(Shared {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            control: tx.clone(),
            buffers: Mutex::new(Vec::new()),
            health: health.clone(),
            policy: self.policy,
            capacity: self.queue_capacity,
            max_bytes: self.queue_bytes,
            wake_at: self.batch_size.min(self.queue_capacity).max(1),
            waker: Arc::new(Waker {
                control: tx,
                pending: AtomicBool::new(false),
            }),
        });
        let worker = Worker {
            rx,
            shared: shared.clone(),
            sink,
            materializer: Materializer {
                environment: self.environment,
                pricer: self.pricer.unwrap_or_default(),
            },
            health,
            batch_size: self.batch_size,
            flush_interval: self.flush_interval,
            max_retry_records: self.max_retry_records,
            batch: Vec::with_capacity(self.batch_size),
            retry: Vec::new(),
            spool,
            spare: Vec::new(),
            backoff: Duration::ZERO,
            retry_at: None,
            forced: false,
            drops_logged: 0,
        };
        let handle = std::thread::Builder::new()
            .name("costtrace-recorder".to_owned())
            .spawn(move || worker.run())
            .map_err(Error::Thread)?;
        *slot = Some(shared.clone());
        ACTIVE.store(true, Ordering::Release);
        ACTIVE_GENERATION.store(shared.generation, Ordering::Release);
        tracing::debug!(environment = %self.environment, "costtrace recorder started");
        Ok(InitGuard {
            shared,
            thread: Some(handle),
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// Installs the global recorder configured from the environment
/// (`COSTTRACE_SINK`, `ENVIRONMENT`, …; see [`Config::from_env`]). Dropping
/// the guard flushes what is queued and stops the recorder.
///
/// ```no_run
/// fn main() -> Result<(), costtrace::Error> {
///     let _costtrace = costtrace::init()?;
///     // ... the application ...
///     Ok(())
/// }
/// ```
pub fn init() -> Result<InitGuard, Error> {
    Config::from_env()?.init()
}

static GLOBAL: RwLock<Option<Arc<Shared>>> = RwLock::new(None);
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The generation of the installed recorder (0: none), for the lock-free
/// fast path of [`dispatch_global_with`].
static ACTIVE_GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn global_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

pub(crate) fn dispatch_global(ev: Event) {
    if let Ok(g) = GLOBAL.read()
        && let Some(shared) = g.as_ref()
    {
        shared.dispatch(ev);
    }
}

/// [`dispatch_global`] for an event built where it is stored.
#[inline(always)]
pub(crate) fn dispatch_global_with(bytes: usize, make: impl FnOnce() -> Event) {
    // Fast path: this thread already has a ring with the running recorder,
    // so neither the global lock nor a reference count is touched.
    let mut make = Some(make);
    let pushed = LOCAL
        .try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            let local = l.as_mut()?;
            if local.generation != ACTIVE_GENERATION.load(Ordering::Acquire) {
                return None;
            }
            local.offer(bytes, &mut make)
        })
        .ok()
        .flatten();
    if pushed.is_none()
        && let Some(make) = make
    {
        dispatch_global(make());
    }
}

fn global() -> Option<Arc<Shared>> {
    GLOBAL.read().ok().and_then(|g| g.clone())
}

enum Msg {
    /// A thread's buffer reached the batch size.
    Wake,
    /// Answered with the number of records left only in memory.
    Flush(Sender<u64>),
    Shutdown(Sender<u64>),
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Slots in each thread's first ring (events are at most 96 bytes: 96 KiB
/// per recording thread). When it is full the thread moves on to a larger
/// ring, up to the configured queue capacity in all (see [`ThreadBuffer`]).
const RING_SLOTS: usize = 1024;

/// See [`Local::queued`].
const CALM_CHECKS: u8 = 4;

/// The recorder's side of one thread's queue.
///
/// Events travel through single-producer rings (`rtrb`): a push is a plain
/// write of the event and a release store of the ring's tail, with no
/// read-modify-write. On this 2-core machine every locked instruction costs
/// ~10 ns, and the lock this replaced took two per event.
///
/// A queue is a chain of rings. When the thread's ring is full it does not
/// wait or lock: it makes a ring twice as large (as long as the rings not yet
/// emptied by the recorder stay within the queue capacity), hands its
/// consumer to the recorder through `next`, and pushes there from then on.
/// The recorder empties each ring before it moves on to the next, so it sees
/// each thread's events in order; a ring the thread has left is finished
/// (nothing more will arrive in it), because the thread hands over the next
/// one only after its last push to the old one. Once the recorder has caught
/// up, the thread goes back to a ring of [`RING_SLOTS`]. (A locked overflow
/// vector did this job before: while the recorder was behind, every event
/// took its lock, a quarter of a scope's cost.)
///
/// The spent events the recorder hands back are freed by this thread: with
/// glibc's allocator, freeing on the recorder thread memory that this thread
/// allocated makes both threads fight over this thread's arena lock.
struct ThreadBuffer {
    /// The oldest ring not yet emptied and left. Only the recorder (and
    /// `health()`) lock this: the thread never does.
    ring: Mutex<rtrb::Consumer<Event>>,
    /// The rings the thread moved on to, oldest first. The thread locks it
    /// only when it changes rings.
    next: Mutex<VecDeque<rtrb::Consumer<Event>>>,
    /// Slots of the rings the recorder has emptied and dropped (a running
    /// total; the thread keeps the total it made).
    retired_slots: AtomicUsize,
    /// Attribute bytes of the events the recorder has taken (a running
    /// total; the thread keeps the total it pushed).
    consumed_bytes: AtomicUsize,
    /// How many times the recorder has taken from this queue (wrapping;
    /// written only by the recorder, under `ring`'s lock): room appears
    /// only then (see [`Local::full_since`]).
    takes: AtomicU32,
    /// Events the thread dropped because its queue was full. Written only by
    /// the thread (a load and a store: no locked instruction, where a shared
    /// counter cost one per dropped event); summed by `health()` and added to
    /// the shared count when the buffer is removed.
    dropped: AtomicU64,
    spent: Mutex<Vec<Event>>,
    has_spent: AtomicBool,
    /// Set by the recorder's last drain: later pushes take the general path,
    /// which finds the recorder gone.
    closed: AtomicBool,
    /// Copied from the recorder so that the fast path needs nothing else.
    policy: QueuePolicy,
    capacity: usize,
    max_bytes: usize,
    wake_at: usize,
    waker: Arc<Waker>,
}

/// The thread's side of its queue, in its thread-local.
struct Local {
    /// The recorder generation this queue belongs to.
    generation: u64,
    buf: Arc<ThreadBuffer>,
    ring: rtrb::Producer<Event>,
    /// Slots of every ring made for this queue (a running total; those of
    /// rings still in use are this minus the recorder's `retired_slots`).
    made_slots: usize,
    /// Attribute bytes of the events pushed (a running total).
    pushed_bytes: usize,
    /// Events pushed since the recorder was last woken.
    since_wake: usize,
    /// Consecutive wake-up checks that found a larger ring nearly empty.
    calm_checks: u8,
    /// Set when the queue was found full under [`QueuePolicy::Drop`]: the
    /// recorder's [`ThreadBuffer::takes`] then. Until that count changes,
    /// later events are dropped (and counted) at once, without reading the
    /// ring's head and the recorder's totals: those are lines the recorder
    /// keeps writing while it catches up, so each look was a cache miss,
    /// and an overloaded thread now sheds load for the cost of one read of
    /// a line written once per take.
    full_since: Option<u32>,
    /// The recorder's consumed-bytes total when last read.
    consumed_seen: usize,
    /// Spent events taken back from the recorder, freed two per push (see
    /// [`Local::free_some_spent`]).
    to_free: Vec<Event>,
}

/// Wakes the recorder thread when a buffer reaches the batch size.
struct Waker {
    control: Sender<Msg>,
    /// Set when a wake-up is on its way, so a burst of full buffers sends one
    /// message (and at most one futex wake), not one per event.
    pending: AtomicBool,
}

impl Waker {
    fn wake(&self) {
        if !self.pending.load(Ordering::Relaxed) && !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.control.try_send(Msg::Wake);
        }
    }
}

impl Local {
    /// Whether the ring's attribute bytes are under the bound. The
    /// recorder's running total is read only when the last one read is not
    /// enough to tell (the total only grows, so an old value over-counts):
    /// it sits on a line the recorder writes.
    #[inline]
    fn bytes_under_bound(&mut self) -> bool {
        if self.pushed_bytes.wrapping_sub(self.consumed_seen) < self.buf.max_bytes {
            return true;
        }
        self.consumed_seen = self.buf.consumed_bytes.load(Ordering::Relaxed);
        self.pushed_bytes.wrapping_sub(self.consumed_seen) < self.buf.max_bytes
    }

    /// Frees a few spent events; called on this thread's pushes so the cost
    /// is spread thinly (two per push frees faster than one push allocates).
    #[inline]
    fn free_some_spent(&mut self) {
        if self.to_free.is_empty() {
            if !self.buf.has_spent.load(Ordering::Relaxed) {
                return;
            }
            // All of them at once: one lock per handed-back batch, not one
            // per push.
            if let Ok(mut spent) = self.buf.spent.try_lock() {
                std::mem::swap(&mut *spent, &mut self.to_free);
                self.buf.has_spent.store(false, Ordering::Relaxed);
            }
        }
        for _ in 0..2 {
            if let Some(ev) = self.to_free.pop() {
                recycle(ev);
            }
        }
        // The next push frees the next two: their usage boxes, which the
        // recorder read last, are fetched now (see `crate::prefetch`).
        let left = self.to_free.len();
        for ev in self
            .to_free
            .get(left.saturating_sub(2)..)
            .unwrap_or_default()
        {
            if let Event::Usage(u) = ev {
                crate::prefetch::value::<crate::dispatch::UsageEvent>(u);
            }
        }
    }

    /// Counts a push; wakes the recorder when the queue holds `wake_at`
    /// events. `since_wake` never counts fewer than the queue holds (pushes
    /// add to both, the recorder only takes away), so the queue is measured
    /// only when the count reaches `wake_at`, and the count is then reset to
    /// what the queue really holds.
    #[inline]
    fn note_push(&mut self) {
        self.since_wake += 1;
        if self.since_wake >= self.buf.wake_at {
            self.since_wake = self.queued();
            if self.since_wake >= self.buf.wake_at {
                self.since_wake = 0;
                self.buf.waker.wake();
            }
        }
    }

    /// At most the events waiting in this thread's queue: those in its ring,
    /// plus the slots of the rings it left that the recorder has not emptied
    /// yet (an upper bound, read without a lock). Goes back to a ring of
    /// [`RING_SLOTS`] when a larger one was found nearly empty at
    /// [`CALM_CHECKS`] checks in a row: the recorder has caught up (and a
    /// backlog hovering around the small ring's size does not make a new
    /// ring at every check).
    #[cold]
    fn queued(&mut self) -> usize {
        let cap = self.ring.buffer().capacity();
        let in_ring = cap - self.ring.slots();
        let left = self.live_slots().saturating_sub(cap);
        if cap > RING_SLOTS && left == 0 && in_ring < RING_SLOTS / 4 {
            self.calm_checks += 1;
            if self.calm_checks >= CALM_CHECKS {
                self.calm_checks = 0;
                self.move_to_new_ring(RING_SLOTS);
            }
        } else {
            self.calm_checks = 0;
        }
        in_ring + left
    }

    /// Slots of the rings in use (this thread's and those the recorder has
    /// not emptied yet).
    #[inline]
    fn live_slots(&self) -> usize {
        self.made_slots
            .wrapping_sub(self.buf.retired_slots.load(Ordering::Relaxed))
    }

    /// Makes a ring of `slots`, hands it to the recorder after the current
    /// one and pushes there from now on.
    #[cold]
    fn move_to_new_ring(&mut self, slots: usize) {
        let (producer, consumer) = rtrb::RingBuffer::new(slots);
        // Handed over after the last push to the old ring: the recorder
        // finds it only once the old ring is finished.
        match self.buf.next.lock() {
            Ok(mut next) => next.push_back(consumer),
            Err(_) => return,
        }
        self.made_slots = self.made_slots.wrapping_add(slots);
        self.ring = producer;
    }

    /// The fast path of [`dispatch_global_with`]: pushes the event, or
    /// under [`QueuePolicy::Drop`] drops it (counted) when the queue is
    /// full. `None` (with `make` left in place) sends the caller to the
    /// general path.
    #[inline(always)]
    fn offer(&mut self, bytes: usize, make: &mut Option<impl FnOnce() -> Event>) -> Option<()> {
        if let Some(takes) = self.full_since {
            if self.buf.takes.load(Ordering::Acquire) == takes {
                // Still full: the recorder has not taken from this queue
                // since it was found full, and nothing else frees room.
                self.discard(make.take()?());
                return Some(());
            }
            self.full_since = None;
        }
        if self.push_fast(bytes, make).is_some() {
            return Some(());
        }
        // The ring is full (or the bound reached): under the drop policy
        // that is settled here, without the global lock.
        if self.buf.policy != QueuePolicy::Drop || self.buf.closed.load(Ordering::Relaxed) {
            return None;
        }
        let ev = make.take()?();
        // Read before the push: a take after it makes the next event look
        // again.
        let takes = self.buf.takes.load(Ordering::Acquire);
        if let Err(ev) = self.push(ev) {
            self.buf.waker.wake();
            self.full_since = Some(takes);
            self.discard(ev);
        }
        Some(())
    }

    /// Drops `ev` because the queue is full: counted, and freed here.
    #[inline]
    fn discard(&self, ev: Event) {
        self.buf.count_drop();
        recycle(ev);
    }

    /// Builds and pushes the event (whose [`Event::heap_bytes`] are
    /// `bytes`) when the queue is open and its ring has room; `None` (with
    /// `make` left in place) sends the caller to the general path.
    #[inline(always)]
    fn push_fast(&mut self, bytes: usize, make: &mut Option<impl FnOnce() -> Event>) -> Option<()> {
        self.free_some_spent();
        if self.ring.is_full()
            || !self.bytes_under_bound()
            || self.buf.closed.load(Ordering::Relaxed)
        {
            return None;
        }
        // Built in its slot: `Producer::push` took the event by value, and
        // copying it in with wide loads over the narrow stores that had just
        // built it stalled until every earlier store had completed (see
        // `crate::prefetch`). The first two `?` never return in practice
        // (the ring has room, checked above, and this thread is its only
        // producer), and either leaves `make` in place for the general path;
        // `make` is always there (`offer` passes it in).
        let mut chunk = self.ring.write_chunk_uninit(1).ok()?;
        let (first, _) = chunk.as_mut_slices();
        let slot = first.first_mut()?;
        let make = make.take()?;
        slot.write(make());
        // The next slot (past the end of the ring it is only a wasted hint).
        let next = std::ptr::from_ref(slot).wrapping_add(1);
        crate::prefetch::lines(next.cast(), std::mem::size_of::<Event>());
        #[allow(unsafe_code)]
        // SAFETY: the chunk's one slot was initialized just above.
        unsafe {
            chunk.commit_all()
        };
        self.pushed_bytes = self.pushed_bytes.wrapping_add(bytes);
        self.note_push();
        Some(())
    }

    /// Pushes onto the ring, moving on to a larger one when it is full;
    /// gives the event back when the queue is full (its capacity or its
    /// byte bound reached) or closed.
    fn push(&mut self, ev: Event) -> Result<(), Event> {
        self.free_some_spent();
        if self.buf.closed.load(Ordering::Relaxed) || !self.bytes_under_bound() {
            return Err(ev);
        }
        let bytes = ev.heap_bytes();
        self.pushed_bytes = self.pushed_bytes.wrapping_add(bytes);
        let ev = match self.ring.push(ev) {
            Ok(()) => None,
            Err(rtrb::PushError::Full(ev)) => Some(ev),
        };
        if let Some(ev) = ev {
            let cap = self.ring.buffer().capacity();
            let room = self.buf.capacity.saturating_sub(self.live_slots());
            if room == 0 {
                self.pushed_bytes = self.pushed_bytes.wrapping_sub(bytes);
                return Err(ev);
            }
            self.move_to_new_ring(cap.saturating_mul(2).min(room));
            if let Err(rtrb::PushError::Full(ev)) = self.ring.push(ev) {
                // Not reachable: the new ring is empty.
                self.pushed_bytes = self.pushed_bytes.wrapping_sub(bytes);
                return Err(ev);
            }
        }
        self.note_push();
        Ok(())
    }
}

impl ThreadBuffer {
    /// Counts an event this buffer's own thread dropped. Only counts: see
    /// [`drop_event`].
    #[inline]
    fn count_drop(&self) {
        let n = self.dropped.load(Ordering::Relaxed);
        self.dropped.store(n + 1, Ordering::Relaxed);
    }

    /// Events waiting in the thread's rings.
    fn queued(&self) -> usize {
        let ring = self.ring.lock().map_or(0, |r| r.slots());
        ring + self
            .next
            .lock()
            .map_or(0, |n| n.iter().map(rtrb::Consumer::slots).sum())
    }

    /// Moves every waiting event into `into`, oldest first: each ring is
    /// emptied before the next, and a ring the thread has left is read once
    /// more before it is dropped (the thread hands over the next ring only
    /// after its last push to the old one).
    fn take_all(&self, into: &mut Vec<Event>, close: bool) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        if close {
            self.closed.store(true, Ordering::Relaxed);
        }
        let mut bytes = 0usize;
        loop {
            read_ring(&mut ring, into, &mut bytes);
            let next = match self.next.lock() {
                Ok(mut n) => n.pop_front(),
                Err(_) => None,
            };
            let Some(next) = next else {
                break;
            };
            read_ring(&mut ring, into, &mut bytes);
            let left = std::mem::replace(&mut *ring, next);
            self.retired_slots
                .fetch_add(left.buffer().capacity(), Ordering::Relaxed);
        }
        let total = self.consumed_bytes.load(Ordering::Relaxed);
        self.consumed_bytes
            .store(total.wrapping_add(bytes), Ordering::Relaxed);
        // After the room is made: a thread that sees the new count finds it.
        let takes = self.takes.load(Ordering::Relaxed);
        self.takes.store(takes.wrapping_add(1), Ordering::Release);
    }

    /// The thread's side is gone (it exited) and nothing waits here.
    fn abandoned_and_empty(&self) -> bool {
        self.ring.lock().is_ok_and(|r| {
            // `is_abandoned` reads the ring's reference count without
            // ordering; the fence makes the producer's last pushes (before
            // it dropped its end) visible to the emptiness check.
            r.is_abandoned() && {
                std::sync::atomic::fence(Ordering::Acquire);
                r.is_empty()
            }
        }) && self.next.lock().is_ok_and(|n| n.is_empty())
    }
}

/// Moves the events waiting in `ring` into `into`, adding their attribute
/// bytes to `bytes`.
fn read_ring(ring: &mut rtrb::Consumer<Event>, into: &mut Vec<Event>, bytes: &mut usize) {
    let n = ring.slots();
    if n > 0
        && let Ok(chunk) = ring.read_chunk(n)
    {
        into.extend(chunk.into_iter().inspect(|ev| *bytes += ev.heap_bytes()));
    }
}

/// Counts a record dropped because its thread's queue was full. Only counts:
/// the recorder thread logs drops ([`Worker::log_drops`]), so that the
/// application thread never runs a `tracing` subscriber's code here — this
/// runs inside costtrace's thread-local state (ending a scope), where a
/// subscriber that reads the costtrace context would find it unavailable.
fn drop_event(health: &Health) {
    health.dropped.fetch_add(1, Ordering::Relaxed);
}

/// Frees a spent event on its own thread, keeping its attribute vector (or
/// its usage allocation) for the next scope (or usage) recorded here.
fn recycle(ev: Event) {
    match ev {
        Event::ScopeDone(d) => {
            if let Some(b) = d.attrs.into_buf() {
                crate::context::recycle_attrs(b);
            }
            if let Some(p) = d.parent {
                crate::context::recycle_frame(p);
            }
        }
        Event::ScopeEnd { frame, .. } => crate::context::recycle_frame(frame),
        Event::Usage(u) => crate::usage::recycle_event(u),
        Event::Record(_) => {}
    }
}

thread_local! {
    /// This thread's queue to the recorder.
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

struct Shared {
    generation: u64,
    control: Sender<Msg>,
    buffers: Mutex<Vec<Arc<ThreadBuffer>>>,
    health: Arc<Health>,
    policy: QueuePolicy,
    /// Events one thread may have pending.
    capacity: usize,
    /// Attribute bytes one thread may have pending.
    max_bytes: usize,
    wake_at: usize,
    waker: Arc<Waker>,
}

impl Shared {
    fn register(&self) -> Local {
        self.register_with(RING_SLOTS)
    }

    /// A queue with a ring of `slots` (at most the capacity).
    fn register_with(&self, slots: usize) -> Local {
        let slots = slots.min(self.capacity).max(1);
        let (producer, consumer) = rtrb::RingBuffer::new(slots);
        let buf = Arc::new(ThreadBuffer {
            ring: Mutex::new(consumer),
            next: Mutex::new(VecDeque::new()),
            retired_slots: AtomicUsize::new(0),
            consumed_bytes: AtomicUsize::new(0),
            takes: AtomicU32::new(0),
            dropped: AtomicU64::new(0),
            spent: Mutex::new(Vec::new()),
            has_spent: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            policy: self.policy,
            capacity: self.capacity,
            max_bytes: self.max_bytes,
            wake_at: self.wake_at,
            waker: self.waker.clone(),
        });
        if let Ok(mut all) = self.buffers.lock() {
            all.push(buf.clone());
        }
        Local {
            generation: self.generation,
            buf,
            ring: producer,
            made_slots: slots,
            pushed_bytes: 0,
            since_wake: 0,
            calm_checks: 0,
            full_since: None,
            consumed_seen: 0,
            to_free: Vec::new(),
        }
    }

    /// Runs `f` on this thread's queue, registering one on first use. During
    /// thread teardown (thread-locals gone) a fresh queue is registered each
    /// time (and removed by the recorder once drained).
    fn with_local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        let mut f = Some(f);
        let r = LOCAL.try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            if l.as_ref().is_none_or(|x| x.generation != self.generation) {
                *l = Some(self.register());
            }
            let local = l.as_mut()?;
            Some(f.take()?(local))
        });
        match (r, f) {
            (Ok(Some(r)), _) => r,
            // No thread-local (teardown) or it is in use: a one-event queue,
            // drained and removed by the recorder like an exited thread's.
            (_, Some(f)) => f(&mut self.register_with(1)),
            (_, None) => unreachable!("the closure either ran or is still here"),
        }
    }

    fn wake(&self) {
        self.waker.wake();
    }

    fn drop_event(&self) {
        drop_event(&self.health);
    }

    fn queued(&self) -> u64 {
        let all = match self.buffers.lock() {
            Ok(a) => a.clone(),
            Err(_) => return 0,
        };
        all.iter().map(|b| b.queued() as u64).sum()
    }

    /// Records dropped so far: the shared count and those the threads
    /// counted on their own queues.
    fn dropped(&self) -> u64 {
        // Under the buffers' lock: a removed buffer's count moves to the
        // shared one under it too, so it is counted once.
        let all = self.buffers.lock();
        let own = all.as_ref().map_or(0, |all| {
            all.iter()
                .map(|b| b.dropped.load(Ordering::Relaxed))
                .sum::<u64>()
        });
        self.health.dropped.load(Ordering::Relaxed) + own
    }
}

impl Dispatch for Shared {
    fn dispatch(&self, ev: Event) {
        let mut pending = match self.with_local(|l| l.push(ev)) {
            Ok(()) => return,
            Err(ev) => ev,
        };
        // The queue is full: wake the recorder, then wait or drop.
        let deadline = match self.policy {
            QueuePolicy::Drop => None,
            QueuePolicy::Block(t) => Some(deadline_after(t)),
        };
        loop {
            self.wake();
            match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_micros(50)),
                _ => {
                    self.drop_event();
                    recycle(pending);
                    return;
                }
            }
            match self.with_local(|l| l.push(pending)) {
                Ok(()) => return,
                Err(ev) => pending = ev,
            }
        }
    }
}

#[derive(Default)]
struct Health {
    written: AtomicU64,
    dropped: AtomicU64,
    failed_writes: AtomicU64,
    retry_pending: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    rejected: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The recorder's own health, readable from code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderHealth {
    /// Records waiting in the queue.
    pub queued: u64,
    /// Records written to the sink.
    pub written: u64,
    /// Records dropped because the queue was full (or the recorder stopped).
    pub dropped: u64,
    /// Failed write attempts (each kept its batch for a retry).
    pub failed_writes: u64,
    /// Records kept in memory after a failed write (no spool, or the spool
    /// could not be written), waiting to be written again.
    pub retry_pending: u64,
    /// Records in the local spool, waiting for the sink to recover.
    pub spooled: u64,
    /// Records replayed from the spool since start.
    pub replayed: u64,
    /// Records the sink refused for good (e.g. one record too large for the
    /// server): logged by id and not retried, so that they cannot hold up
    /// the records after them. Not counted in `written`.
    pub rejected: u64,
    /// The latest write error, if any.
    pub last_error: Option<String>,
}

/// The global recorder's health; `None` when none is installed.
pub fn health() -> Option<RecorderHealth> {
    let s = global()?;
    let h = &s.health;
    Some(RecorderHealth {
        queued: s.queued(),
        written: h.written.load(Ordering::Relaxed),
        dropped: s.dropped(),
        failed_writes: h.failed_writes.load(Ordering::Relaxed),
        retry_pending: h.retry_pending.load(Ordering::Relaxed),
        spooled: h.spooled.load(Ordering::Relaxed),
        replayed: h.replayed.load(Ordering::Relaxed),
        rejected: h.rejected.load(Ordering::Relaxed),
        last_error: h.last_error.lock().ok().and_then(|e| e.clone()),
    })
}

/// Writes everything queued so far to the sink, or to the spool when the
/// sink fails, waiting at most `timeout`.
///
/// [`Error::NotDelivered`] when some records could be put neither in the sink
/// nor in the spool (the sink fails and there is no spool, or the spool
/// cannot be written): they are kept in memory and retried, but would be
/// lost if the process ended now.
pub fn flush_timeout(timeout: Duration) -> Result<(), Error> {
    let s = global().ok_or(Error::NotInitialized)?;
    match request(&s.control, Msg::Flush, timeout)? {
        0 => Ok(()),
        records => Err(Error::NotDelivered { records }),
    }
}

/// Writes everything queued so far, waiting at most five seconds; see
/// [`flush_timeout`].
pub fn flush() -> Result<(), Error> {
    flush_timeout(Duration::from_secs(5))
}

/// `now + d`, or a time far enough ahead to stand for "never" when that
/// overflows (`Duration::MAX` asks to wait for ever).
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn request(
    tx: &Sender<Msg>,
    make: fn(Sender<u64>) -> Msg,
    timeout: Duration,
) -> Result<u64, Error> {
    let deadline = deadline_after(timeout);
    let (ack_tx, ack_rx) = bounded(1);
    tx.send_deadline(make(ack_tx), deadline)
        .map_err(|_| Error::FlushTimeout(timeout))?;
    ack_rx
        .recv_deadline(deadline)
        .map_err(|_| Error::FlushTimeout(timeout))
}

/// Keeps the global recorder installed; dropping it flushes (within the
/// shutdown timeout) and uninstalls it.
#[must_use = "the recorder stops when the guard is dropped; bind it: `let _guard = costtrace::init()?;`"]
pub struct InitGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for InitGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitGuard").finish_non_exhaustive()
    }
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        {
            let mut slot = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.shared)) {
                *slot = None;
                ACTIVE.store(false, Ordering::Release);
                ACTIVE_GENERATION.store(0, Ordering::Release);
            }
        }
        match request(&self.shared.control, Msg::Shutdown, self.shutdown_timeout) {
            Ok(left) => {
                if left > 0 {
                    tracing::error!("costtrace: {}", Error::NotDelivered { records: left });
                }
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                // Pushed after the last drain: counted, never lost silently.
                let late = self.shared.queued();
                if late > 0 {
                    self.shared
                        .health
                        .dropped
                        .fetch_add(late, Ordering::Relaxed);
                    tracing::warn!(
                        dropped = late,
                        "costtrace dropped records made while the recorder was stopping"
                    );
                }
            }
            Err(e) => tracing::error!("costtrace: {e}"),
        }
    }
}

struct Worker {
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    sink: Box<dyn Sink>,
    materializer: Materializer,
    health: Arc<Health>,
    batch_size: usize,
    flush_interval: Duration,
    max_retry_records: usize,
    batch: Vec<Record>,
    retry: Vec<Record>,
    spool: Option<Spool>,
    /// An empty vector with capacity that a thread's rings are read into.
    spare: Vec<Event>,
    /// The current back-off after sink failures (zero: the sink works).
    backoff: Duration,
    /// While the sink is failing: no attempt before this instant; batches go
    /// straight to the spool, so a slow or hanging sink costs one timeout
    /// per back-off period, not one per batch.
    retry_at: Option<Instant>,
    /// An explicit `flush()` is running: it may try the sink once even
    /// during the back-off.
    forced: bool,
    /// The dropped-records total last logged.
    drops_logged: u64,
}

/// The first back-off after a sink failure; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Worker {
    /// Logs records dropped since the last log: the first drop, then each
    /// time the total passes another 10,000, so that a flood of drops cannot
    /// flood the log.
    fn log_drops(&mut self) {
        let n = self.shared.dropped();
        if n > self.drops_logged
            && (self.drops_logged == 0 || n / 10_000 > self.drops_logged / 10_000)
        {
            tracing::warn!(
                dropped_total = n,
                "costtrace dropped records: a queue was full (RecorderHealth::dropped)"
            );
            self.drops_logged = n;
        }
    }

    fn run(mut self) {
        // Records spooled by this or a dead process before: replay first.
        self.replay_spool();
        let mut next_tick = deadline_after(self.flush_interval);
        loop {
            match self.rx.recv_deadline(next_tick) {
                Ok(Msg::Wake) => self.drain(),
                Ok(Msg::Flush(ack)) => {
                    // One attempt even during the back-off: the caller asked.
                    self.forced = true;
                    self.drain();
                    self.replay_spool();
                    self.write();
                    self.flush_sink();
                    self.forced = false;
                    let _ = ack.send(self.in_memory_only());
                }
                Ok(Msg::Shutdown(ack)) => {
                    // During the back-off the last records go straight to
                    // the spool: a hanging sink must not outlast the
                    // guard's shutdown timeout with records only in memory.
                    self.drain_final();
                    self.replay_spool();
                    self.write();
                    self.flush_sink();
                    let _ = ack.send(self.in_memory_only());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    crate::id::refresh_clock();
                    self.drain();
                    self.replay_spool();
                    self.write();
                    self.flush_sink();
                    next_tick = deadline_after(self.flush_interval);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain_final();
                    self.write();
                    self.flush_sink();
                    return;
                }
            }
        }
    }

    /// Takes every thread's pending events, materializes them and writes full
    /// batches. Buffers of threads that have exited are dropped once empty.
    fn drain(&mut self) {
        self.drain_buffers(false);
    }

    /// The last drain: also closes every queue, so that later pushes find
    /// the recorder gone. A push that passed the `closed` check just before
    /// lands after the first pass: a second pass takes it, and whatever
    /// arrives later still is counted as dropped when the guard has joined
    /// this thread ([`InitGuard`]'s drop).
    fn drain_final(&mut self) {
        self.drain_buffers(true);
        self.drain_buffers(false);
    }

    fn drain_buffers(&mut self, close: bool) {
        self.shared.waker.pending.store(false, Ordering::Release);
        let buffers = match self.shared.buffers.lock() {
            Ok(b) => b.clone(),
            Err(_) => return,
        };
        let mut gone = false;
        for buf in &buffers {
            let mut taken = std::mem::take(&mut self.spare);
            // The thread exited before the take: once this drain is done,
            // nothing more can arrive.
            let exited = Arc::strong_count(buf) == 2;
            buf.take_all(&mut taken, close);
            self.settle(buf, &mut taken, exited);
            gone |= exited;
            if exited && let Ok(mut spent) = buf.spent.lock() {
                spent.clear();
            }
            self.spare = taken;
        }
        drop(buffers);
        if gone && let Ok(mut all) = self.shared.buffers.lock() {
            all.retain(|b| {
                let keep = Arc::strong_count(b) > 1 || !b.abandoned_and_empty();
                if !keep {
                    // The thread is gone: its count moves to the shared one.
                    self.health
                        .dropped
                        .fetch_add(b.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                keep
            });
        }
        self.log_drops();
    }

    /// Materializes `taken` (events of `buf`'s thread) and hands the spent
    /// ones back to that thread to free, unless it has exited or is not
    /// keeping up (then they are freed here). Leaves `taken` empty.
    fn settle(&mut self, buf: &ThreadBuffer, taken: &mut Vec<Event>, exited: bool) {
        if taken.is_empty() {
            return;
        }
        for ev in taken.iter() {
            if let Some(r) = self.materializer.record(ev) {
                self.batch.push(r);
            }
            if self.batch.len() >= self.batch_size {
                self.write();
            }
        }
        // Events that hold nothing allocated elsewhere are dropped here:
        // handing them back would only cost the caller a copy.
        taken.retain(|ev| !matches!(ev, Event::ScopeDone(d) if d.owns_no_memory()));
        if !exited
            && !taken.is_empty()
            && let Ok(mut spent) = buf.spent.lock()
            && spent.len() < 4 * self.batch_size.max(1024)
        {
            spent.append(taken);
            buf.has_spent.store(true, Ordering::Relaxed);
        }
        taken.clear();
    }

    /// Whether the sink may be tried now (not backing off after a failure,
    /// or an explicit flush).
    fn may_try_sink(&self) -> bool {
        self.forced || self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// The sink failed: back off (1 s, doubling up to 30 s).
    fn sink_failed(&mut self) {
        self.forced = false;
        self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        self.retry_at = Some(deadline_after(self.backoff));
    }

    fn sink_worked(&mut self) {
        self.backoff = Duration::ZERO;
        self.retry_at = None;
    }

    fn flush_sink(&mut self) {
        if self.may_try_sink() {
            let _ = self.sink.flush();
        }
    }

    /// Records neither in the sink nor in the spool.
    fn in_memory_only(&self) -> u64 {
        (self.retry.len() + self.batch.len()) as u64
    }

    fn note_error(&self, msg: String) {
        self.health.failed_writes.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("costtrace could not write records: {msg}");
        if let Ok(mut le) = self.health.last_error.lock() {
            *le = Some(msg);
        }
    }

    /// Writes `records` to the sink; a panic in the sink is an error.
    fn sink_write(&mut self, records: &[Record]) -> Result<(), String> {
        let sink = &mut self.sink;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.write(records)))
            .unwrap_or_else(|_| Err(crate::sink::SinkError::new("the sink panicked")))
            .map_err(|e| format!("{}: {e}", self.sink.describe()));
        let rejected = self.take_rejected();
        if res.is_ok() {
            self.health.written.fetch_add(
                (records.len() as u64).saturating_sub(rejected),
                Ordering::Relaxed,
            );
        }
        res
    }

    /// Counts the records the sink refused for good; returns how many.
    fn take_rejected(&mut self) -> u64 {
        let sink = &mut self.sink;
        let n = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.take_rejected()))
            .unwrap_or(0);
        if n > 0 {
            self.health.rejected.fetch_add(n, Ordering::Relaxed);
        }
        n
    }

    /// Replays the spool if it holds anything; true when it is empty after.
    fn replay_spool(&mut self) -> bool {
        if self.spool.as_ref().is_none_or(|s| s.is_empty()) {
            return true;
        }
        if !self.may_try_sink() {
            return false; // still backing off
        }
        let Some(spool) = self.spool.as_mut() else {
            return true;
        };
        let sink = &mut self.sink;
        let batch_size = self.batch_size;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spool.replay(sink.as_mut(), batch_size)
        }))
        .unwrap_or_else(|_| Err(crate::sink::SinkError::new("the sink panicked")));
        let left = spool.records;
        self.health.spooled.store(left, Ordering::Relaxed);
        let rejected = self.take_rejected();
        match res {
            Ok(n) => {
                self.health.replayed.fetch_add(n, Ordering::Relaxed);
                self.health
                    .written
                    .fetch_add(n.saturating_sub(rejected), Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(records = n, "costtrace replayed the spool");
                }
                self.sink_worked();
                true
            }
            Err(e) => {
                self.note_error(format!("{} (spool replay): {e}", self.sink.describe()));
                self.sink_failed();
                false
            }
        }
    }

    /// Puts records in the spool (durably), or keeps them in memory when
    /// there is no spool or it cannot be written.
    fn spool_or_keep(&mut self, mut records: Vec<Record>) {
        if let Some(spool) = self.spool.as_mut() {
            match spool.append(&records) {
                Ok(()) => {
                    self.health.spooled.store(spool.records, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    let msg = format!("spool: {e}");
                    self.note_error(msg);
                }
            }
        }
        self.retry.append(&mut records);
        if self.retry.len() > self.max_retry_records {
            let excess = self.retry.len() - self.max_retry_records;
            self.retry.drain(..excess);
            self.health
                .dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        self.health
            .retry_pending
            .store(self.retry.len() as u64, Ordering::Relaxed);
    }

    fn write(&mut self) {
        if !self.retry.is_empty() {
            let mut retry = std::mem::take(&mut self.retry);
            retry.append(&mut self.batch);
            self.batch = retry;
            self.health.retry_pending.store(0, Ordering::Relaxed);
        }
        if self.batch.is_empty() {
            return;
        }
        // Keep order: while older records wait in the spool, new ones queue
        // behind them. While backing off after a failure, they go straight
        // to the spool too.
        if !self.replay_spool() || !self.may_try_sink() {
            let batch = std::mem::take(&mut self.batch);
            self.spool_or_keep(batch);
            return;
        }
        let mut start = 0;
        while start < self.batch.len() {
            let end = (start + self.batch_size).min(self.batch.len());
            let chunk = std::mem::take(&mut self.batch);
            let res = self.sink_write(&chunk[start..end]);
            self.batch = chunk;
            if let Err(msg) = res {
                self.note_error(msg);
                self.sink_failed();
                let rest = self.batch.split_off(start);
                self.batch.clear();
                self.spool_or_keep(rest);
                return;
            }
            start = end;
        }
        self.batch.clear();
        self.sink_worked();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(capacity: usize, wake_at: usize) -> (Shared, Receiver<Msg>) {
        let (tx, rx) = bounded(1024);
        let shared = Shared {
            generation: 0,
            control: tx.clone(),
            buffers: Mutex::new(Vec::new()),
            health: Arc::new(Health::default()),
            policy: QueuePolicy::Drop,
            capacity,
            max_bytes: usize::MAX / 2,
            wake_at,
            waker: Arc::new(Waker {
                control: tx,
                pending: AtomicBool::new(false),
            }),
        };
        (shared, rx)
    }

    /// A usage event numbered `n` (its id).
    fn event(n: u64) -> Event {
        Event::Usage(Box::new(crate::dispatch::UsageEvent {
            id: uuid::Uuid::from_u128(u128::from(n)),
            micros: 0,
            frame: None,
            usage: crate::Usage::llm("openai", "gpt-4o"),
        }))
    }

    fn number(ev: &Event) -> u64 {
        match ev {
            Event::Usage(u) => u.id.as_u128() as u64,
            _ => u64::MAX,
        }
    }

    fn take(buf: &ThreadBuffer) -> Vec<u64> {
        let mut v = Vec::new();
        buf.take_all(&mut v, false);
        v.iter().map(number).collect()
    }

    #[test]
    fn a_full_ring_moves_on_to_larger_ones_up_to_the_capacity_in_order() {
        let (shared, _rx) = shared(5_000, usize::MAX);
        let mut local = shared.register();
        // 1,024 + 2,048 + 1,928 slots: exactly the capacity.
        for i in 0..5_000 {
            assert!(local.push(event(i)).is_ok(), "event {i}");
        }
        assert_eq!(local.ring.buffer().capacity(), 1_928);
        assert_eq!(local.buf.next.lock().unwrap().len(), 2);
        assert_eq!(local.buf.queued(), 5_000);
        // Past the capacity: given back, nothing else lost.
        assert_eq!(local.push(event(5_000)).map_err(|e| number(&e)), Err(5_000));
        // The recorder takes the rings oldest first, each emptied in full.
        assert_eq!(take(&local.buf), (0..5_000).collect::<Vec<_>>());
        assert_eq!(local.buf.queued(), 0);
        assert!(local.buf.next.lock().unwrap().is_empty());
        assert_eq!(local.live_slots(), 1_928);
        // Room again: the current ring, then a new one within the capacity.
        for i in 5_001..8_001 {
            assert!(local.push(event(i)).is_ok(), "event {i}");
        }
        assert_eq!(local.live_slots(), 5_000);
        assert_eq!(take(&local.buf), (5_001..8_001).collect::<Vec<_>>());
    }

    #[test]
    fn events_pushed_while_the_recorder_takes_stay_in_order() {
        // Enough ring changes for a take to race with a push many times.
        const N: u64 = 1_000_000;
        let (shared, _rx) = shared(50_000, usize::MAX);
        let mut local = shared.register();
        let buf = local.buf.clone();
        let done = Arc::new(AtomicBool::new(false));
        let pushed_all = done.clone();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                let finished = pushed_all.load(Ordering::Acquire);
                let got = take(&buf);
                if finished && got.is_empty() {
                    return seen;
                }
                seen.extend(got);
                std::thread::yield_now();
            }
        });
        let mut i = 0u64;
        while i < N {
            if local.push(event(i)).is_ok() {
                i += 1;
            } else {
                std::thread::yield_now();
            }
        }
        done.store(true, Ordering::Release);
        let seen = reader.join().unwrap();
        assert_eq!(seen.len() as u64, N);
        assert!(seen.iter().copied().eq(0..N), "out of order");
    }

    #[test]
    fn a_full_queue_drops_without_looking_until_the_recorder_takes() {
        let (shared, _rx) = shared(1_024, usize::MAX);
        let mut local = shared.register();
        let offer = |local: &mut Local, i: u64| {
            local
                .offer(0, &mut Some(move || event(i)))
                .expect("settled on the fast path");
        };
        let dropped = |local: &Local| local.buf.dropped.load(Ordering::Relaxed);
        for i in 0..1_024 {
            offer(&mut local, i);
        }
        assert_eq!(dropped(&local), 0);
        // Full: dropped and counted, and so is everything after it until
        // the recorder takes.
        for i in 1_024..1_100 {
            offer(&mut local, i);
        }
        assert_eq!(dropped(&local), 76);
        assert_eq!(local.full_since, Some(0));
        assert_eq!(take(&local.buf), (0..1_024).collect::<Vec<_>>());
        // Taken: the next event looks again and finds room.
        offer(&mut local, 2_000);
        assert_eq!(local.full_since, None);
        assert_eq!(take(&local.buf), [2_000]);
        assert_eq!(dropped(&local), 76);
    }

    #[test]
    fn a_large_ring_is_left_for_a_small_one_once_the_recorder_caught_up() {
        let (shared, _rx) = shared(65_536, 100);
        let mut local = shared.register();
        for i in 0..10_000 {
            assert!(local.push(event(i)).is_ok());
        }
        let large = local.ring.buffer().capacity();
        assert!(large > RING_SLOTS);
        assert_eq!(take(&local.buf).len(), 10_000);
        // Wake-up checks (every 100 pushes) find the large ring nearly
        // empty; it is left only after several in a row.
        let mut next = 10_000;
        for round in 1..=u64::from(CALM_CHECKS) {
            for _ in 0..100 {
                assert!(local.push(event(next)).is_ok());
                next += 1;
            }
            let expected = if round < u64::from(CALM_CHECKS) {
                large
            } else {
                RING_SLOTS
            };
            assert_eq!(local.ring.buffer().capacity(), expected, "round {round}");
            assert_eq!(take(&local.buf).len(), 100);
        }
        assert_eq!(local.live_slots(), RING_SLOTS);
        // A busy check in between starts the count again.
        for i in next..next + 3_000 {
            assert!(local.push(event(i)).is_ok());
        }
        assert!(local.ring.buffer().capacity() > RING_SLOTS);
        assert_eq!(take(&local.buf).len(), 3_000);
    }
}
