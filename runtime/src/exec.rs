//! The executor: one vCPU, tasks woken by event channels and timers, and when nothing is ready
//! the vCPU blocks in Xen (`SCHEDOP_poll` on the bound ports until the next timer deadline),
//! so an idle guest uses no CPU.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::panic::Location;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use spin::Mutex;
use xenia_xen::single::VcpuCell;

use crate::time::Instant;

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A task: its future and whether it is queued to run.
struct Task {
    future: BoxFuture,
    waker: Arc<TaskWaker>,
    /// Where it was spawned (for the introspection dump).
    at: &'static Location<'static>,
    /// Times it was polled.
    polls: u64,
}

struct TaskWaker {
    id: u64,
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            READY.lock().push_back(self.id);
        }
    }
}

// Tasks are not `Send` (their futures need not be): the statics holding them are `VcpuCell`s,
// which check that only one context (the vCPU; on the host, one thread) uses them and that
// nothing re-enters them while borrowed.
#[derive(Default)]
struct Tasks(BTreeMap<u64, Task>);

static TASKS: VcpuCell<Tasks> = VcpuCell::lazy(Tasks::default);
static SPAWNED: VcpuCell<VecDeque<(u64, Task)>> = VcpuCell::lazy(VecDeque::new);
static READY: Mutex<VecDeque<u64>> = Mutex::new(VecDeque::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static TIMERS: Mutex<BTreeMap<(u64, u64), Waker>> = Mutex::new(BTreeMap::new());
static NEXT_TIMER: AtomicU64 = AtomicU64::new(1);
/// The task being polled (for the introspection dump): its id, spawn location, waker data
/// and polls.
type Current = Option<(u64, &'static Location<'static>, usize, u64)>;
static CURRENT: Mutex<Current> = Mutex::new(None);

/// A handle to a spawned task's result.
pub struct JoinHandle<T> {
    slot: Arc<Mutex<JoinSlot<T>>>,
}

struct JoinSlot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.slot.lock();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished (its result not yet taken).
    pub fn is_finished(&self) -> bool {
        self.slot.lock().value.is_some()
    }
}

/// Starts a task that runs concurrently with the caller.
///
/// The caller's location is recorded and shown in the introspection dump ([`crate::dump`]).
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let slot = Arc::new(Mutex::new(JoinSlot {
        value: None,
        waker: None,
    }));
    let out = slot.clone();
    let at = Location::caller();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let waker = Arc::new(TaskWaker {
        id,
        queued: AtomicBool::new(true),
    });
    let task = Task {
        future: Box::pin(async move {
            let v = future.await;
            let mut s = out.lock();
            s.value = Some(v);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }),
        waker,
        at,
        polls: 0,
    };
    SPAWNED.borrow_mut().push_back((id, task));
    READY.lock().push_back(id);
    JoinHandle { slot }
}

/// Runs `future` to completion, running spawned tasks meanwhile.
#[track_caller]
pub fn block_on<F: Future + 'static>(future: F) -> F::Output
where
    F::Output: 'static,
{
    let handle = spawn(future);
    let done = handle.slot.clone();
    loop {
        run_ready();
        if let Some(v) = done.lock().value.take() {
            return v;
        }
        idle();
    }
}

fn run_ready() {
    loop {
        {
            let mut spawned = SPAWNED.borrow_mut();
            let mut tasks = TASKS.borrow_mut();
            while let Some((id, t)) = spawned.pop_front() {
                tasks.0.insert(id, t);
            }
        }
        let Some(id) = READY.lock().pop_front() else {
            return;
        };
        // Take the task out while it runs, so it can spawn and wake freely.
        let Some(mut task) = TASKS.borrow_mut().0.remove(&id) else {
            continue;
        };
        task.waker.queued.store(false, Ordering::Release);
        task.polls += 1;
        let waker = Waker::from(task.waker.clone());
        let mut cx = Context::from_waker(&waker);
        *CURRENT.lock() = Some((id, task.at, waker.data() as usize, task.polls));
        let pending = task.future.as_mut().poll(&mut cx).is_pending();
        *CURRENT.lock() = None;
        if pending {
            TASKS.borrow_mut().0.insert(id, task);
        }
    }
}

fn fire_timers(now: u64) -> usize {
    let mut expired = alloc::vec::Vec::new();
    {
        let mut timers = TIMERS.lock();
        while let Some(entry) = timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            expired.push(entry.remove());
        }
    }
    let n = expired.len();
    for w in expired {
        w.wake();
    }
    n
}

/// Nothing is ready: deliver events and expired timers, or block until one comes.
fn idle() {
    let now = crate::time::now_ns().unwrap_or(0);
    let woke = fire_timers(now) + crate::services::events().map_or(0, |ev| ev.scan());
    if woke > 0 || !READY.lock().is_empty() {
        return;
    }
    let deadline = TIMERS.lock().first_key_value().map(|(k, _)| k.0);
    match crate::services::events() {
        // On Xen, or on the host against the simulator: block in the (simulated) hypervisor.
        Some(ev) => {
            let _ = ev.block(crate::time::to_xen_ns(deadline.unwrap_or(0)));
        }
        #[cfg(target_os = "none")]
        None => xenia_xen::sched::yield_now(),
        #[cfg(not(target_os = "none"))]
        None => {
            let wait = deadline.map(|d| d.saturating_sub(now)).unwrap_or(1_000_000);
            std::thread::sleep(Duration::from_nanos(wait.min(10_000_000)));
        }
    }
}

/// Future of [`sleep`] and [`sleep_until`].
pub struct Sleep {
    deadline: u64,
    key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::time::now_ns().unwrap_or(u64::MAX) >= self.deadline {
            if let Some(k) = self.key.take() {
                TIMERS.lock().remove(&k);
            }
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = *self
            .key
            .get_or_insert_with(|| (deadline, NEXT_TIMER.fetch_add(1, Ordering::Relaxed)));
        TIMERS.lock().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            TIMERS.lock().remove(&k);
        }
    }
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: deadline.as_nanos(),
        key: None,
    }
}

/// Waits for `duration`.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// The error of [`timeout`]: the time ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timed out")
    }
}

impl core::error::Error for Elapsed {}

/// Runs `future` for at most `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = core::pin::pin!(future);
    let mut timer = core::pin::pin!(sleep(duration));
    core::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    })
    .await
}

/// Lets other ready tasks run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A task as the introspection dump sees it.
pub(crate) struct TaskInfo {
    pub id: u64,
    pub at: &'static Location<'static>,
    pub polls: u64,
    /// Queued to run (woken, not yet polled).
    pub ready: bool,
    /// Being polled now (the task that asked for the snapshot).
    pub running: bool,
    /// Its waker's data pointer, to match wakers registered elsewhere to it.
    pub waker: usize,
}

/// The tasks (`None` if the executor's state is borrowed right now: never waits or panics).
pub(crate) fn task_snapshot() -> Option<Vec<TaskInfo>> {
    let tasks = TASKS.try_borrow().ok()?;
    let spawned = SPAWNED.try_borrow().ok()?;
    let mut out = Vec::new();
    if let Some((id, at, waker, polls)) = CURRENT.try_lock().and_then(|c| *c) {
        out.push(TaskInfo {
            id,
            at,
            polls,
            ready: false,
            running: true,
            waker,
        });
    }
    for (&id, t) in tasks.0.iter().chain(spawned.iter().map(|(id, t)| (id, t))) {
        out.push(TaskInfo {
            id,
            at: t.at,
            polls: t.polls,
            ready: t.waker.queued.load(Ordering::Acquire),
            running: false,
            waker: Arc::as_ptr(&t.waker) as usize,
        });
    }
    // Ids are unique: an unstable sort gives the same order with less code.
    out.sort_unstable_by_key(|t| t.id);
    Some(out)
}

/// The timers: deadline (ns of system time) and the data pointer of the waker each wakes
/// (`None` if the timer list is locked right now).
pub(crate) fn timer_snapshot() -> Option<Vec<(u64, usize)>> {
    let timers = TIMERS.try_lock()?;
    Some(
        timers
            .iter()
            .map(|(k, w)| (k.0, w.data() as usize))
            .collect(),
    )
}
