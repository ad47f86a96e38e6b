//! The executor: one vCPU, tasks woken by event channels and timers, and when nothing is ready
//! the vCPU blocks in Xen (`SCHEDOP_poll` on the bound ports until the next timer deadline),
//! so an idle guest uses no CPU.

use alloc::boxed::Box;
use alloc::collections::{BinaryHeap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cmp::Reverse;
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
    /// Its slot in [`Tasks`], reserved at spawn.
    slot: u32,
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            READY.lock().push_back((self.slot, self.id));
        }
    }
}

// Tasks are not `Send` (their futures need not be): the statics holding them are `VcpuCell`s,
// which check that only one context (the vCPU; on the host, one thread) uses them and that
// nothing re-enters them while borrowed.
//
// The tasks live in a slab: a task's slot is reserved when it is spawned (from `SLOTS`, which
// needs no borrow of the tasks) and named by its waker together with the task's id, so waking,
// taking a task out to poll it and putting it back are O(1). A slot is `None` while its task
// is being polled, and returns to `SLOTS` when the task is done; a stale wake (an old task's
// waker, its slot reused since) is told apart by the id.
#[derive(Default)]
struct Tasks(Vec<Option<Task>>);

/// Free task slots, and the count of slots ever handed out.
struct Slots {
    free: Vec<u32>,
    next: u32,
}

impl Slots {
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

static TASKS: VcpuCell<Tasks> = VcpuCell::lazy(Tasks::default);
static SPAWNED: VcpuCell<VecDeque<Task>> = VcpuCell::lazy(VecDeque::new);
static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    free: Vec::new(),
    next: 0,
});
/// Woken tasks: (slot, id).
static READY: Mutex<VecDeque<(u32, u64)>> = Mutex::new(VecDeque::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static TIMERS: Mutex<Timers> = Mutex::new(Timers::new());
static NEXT_TIMER: AtomicU64 = AtomicU64::new(1);

/// A registered timer.
struct TimerEntry {
    /// Unique among timers: tells a heap entry or a [`Sleep`] of an earlier user of the same
    /// slot apart.
    seq: u64,
    deadline: u64,
    waker: Waker,
}

/// The timers: a slab of registered timers and a min-heap of (deadline, seq, slot) over it.
///
/// Registering and firing are O(log n). A cancelled timer (its [`Sleep`] dropped first, as a
/// timeout that did not expire is) leaves its slab slot at once and its heap entry stale; stale
/// entries are skipped when they reach the top, and the heap is compacted when more than half
/// of it is stale, so it stays O(live timers) and the cost per cancel amortised O(1).
struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<Option<TimerEntry>>,
    free: Vec<u32>,
    live: usize,
}

impl Timers {
    const fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    fn entry(&mut self, slot: u32, seq: u64) -> Option<&mut TimerEntry> {
        self.slots
            .get_mut(slot as usize)?
            .as_mut()
            .filter(|e| e.seq == seq)
    }

    /// Registers a timer; returns its (slot, seq).
    fn insert(&mut self, deadline: u64, waker: Waker) -> (u32, u64) {
        let seq = NEXT_TIMER.fetch_add(1, Ordering::Relaxed);
        let entry = Some(TimerEntry {
            seq,
            deadline,
            waker,
        });
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        self.heap.push(Reverse((deadline, seq, slot)));
        (slot, seq)
    }

    /// Takes the timer out of the slab (its heap entry goes stale).
    fn remove(&mut self, slot: u32, seq: u64) -> Option<Waker> {
        self.entry(slot, seq)?;
        let entry = self.slots[slot as usize].take()?;
        self.free.push(slot);
        self.live -= 1;
        Some(entry.waker)
    }

    /// Removes the timer `key` of a [`Sleep`] that no longer waits, and compacts the heap if
    /// most of it is stale.
    fn cancel(&mut self, slot: u32, seq: u64) {
        if self.remove(slot, seq).is_some() && self.heap.len() > 64 + 2 * self.live {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, seq, slot))| {
                matches!(&slots[*slot as usize], Some(e) if e.seq == *seq)
            });
        }
    }

    /// The earliest live deadline (dropping stale entries from the top).
    fn next_deadline(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, seq, slot))) = self.heap.peek() {
            if self.entry(slot, seq).is_some() {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the wakers of the timers whose deadline is at or before `now`.
    fn expired(&mut self, now: u64, out: &mut Vec<Waker>) {
        while let Some(&Reverse((deadline, seq, slot))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            out.extend(self.remove(slot, seq));
        }
    }
}
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
    let task_slot = SLOTS.lock().take();
    let waker = Arc::new(TaskWaker {
        id,
        slot: task_slot,
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
    SPAWNED.borrow_mut().push_back(task);
    READY.lock().push_back((task_slot, id));
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
            while let Some(t) = spawned.pop_front() {
                let slot = t.waker.slot as usize;
                if tasks.0.len() <= slot {
                    tasks.0.resize_with(slot + 1, || None);
                }
                tasks.0[slot] = Some(t);
            }
        }
        let Some((slot, id)) = READY.lock().pop_front() else {
            return;
        };
        // Take the task out while it runs, so it can spawn and wake freely.
        let Some(mut task) = TASKS
            .borrow_mut()
            .0
            .get_mut(slot as usize)
            .and_then(|t| t.take_if(|t| t.waker.id == id))
        else {
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
            TASKS.borrow_mut().0[slot as usize] = Some(task);
        } else {
            drop(task);
            SLOTS.lock().free.push(slot);
        }
    }
}

fn fire_timers(now: u64) -> usize {
    let mut expired = Vec::new();
    TIMERS.lock().expired(now, &mut expired);
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
    let deadline = TIMERS.lock().next_deadline();
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
    /// Its timer's (slot, seq) once registered.
    key: Option<(u32, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::time::now_ns().unwrap_or(u64::MAX) >= self.deadline {
            if let Some((slot, seq)) = self.key.take() {
                TIMERS.lock().cancel(slot, seq);
            }
            return Poll::Ready(());
        }
        let mut timers = TIMERS.lock();
        // Still registered: only the waker may have changed.
        if let Some(entry) = self.key.and_then(|(slot, seq)| timers.entry(slot, seq)) {
            entry.waker.clone_from(cx.waker());
            return Poll::Pending;
        }
        // Not yet registered, or fired (and polled again before its deadline by this clock).
        self.key = Some(timers.insert(self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((slot, seq)) = self.key.take() {
            TIMERS.lock().cancel(slot, seq);
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
    for t in tasks.0.iter().flatten().chain(spawned.iter()) {
        out.push(TaskInfo {
            id: t.waker.id,
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
    let mut out: Vec<(u64, usize)> = (timers.slots.iter().flatten())
        .map(|e| (e.deadline, e.waker.data() as usize))
        .collect();
    drop(timers);
    out.sort_unstable();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::task::Wake;

    struct Count(core::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_and_skip_cancelled() {
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut t = Timers::new();
        let a = t.insert(30, waker.clone());
        let b = t.insert(10, waker.clone());
        let c = t.insert(20, waker.clone());
        assert_eq!(t.next_deadline(), Some(10));
        t.cancel(b.0, b.1);
        // The cancelled timer's heap entry is stale: skipped.
        assert_eq!(t.next_deadline(), Some(20));
        let mut out = Vec::new();
        t.expired(25, &mut out);
        assert_eq!(out.len(), 1);
        assert!(t.entry(c.0, c.1).is_none(), "fired timer left the slab");
        // A reused slot does not answer to the old key.
        let d = t.insert(40, waker.clone());
        assert!(d.0 == b.0 || d.0 == c.0, "a freed slot is reused");
        assert!(t.entry(b.0, b.1).is_none() && t.entry(c.0, c.1).is_none());
        t.cancel(b.0, b.1);
        t.cancel(c.0, c.1);
        assert!(
            t.entry(d.0, d.1).is_some(),
            "stale cancel removed a new timer"
        );
        out.clear();
        t.expired(u64::MAX, &mut out);
        assert_eq!(out.len(), 2);
        assert!(t.entry(a.0, a.1).is_none());
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.live, 0);
    }

    #[test]
    fn cancelled_timers_do_not_pile_up() {
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count);
        let mut t = Timers::new();
        let keep = t.insert(5, waker.clone());
        // Like a timeout per request that never expires: registered, then dropped.
        for i in 0..100_000u64 {
            let (slot, seq) = t.insert(1_000_000 + i, waker.clone());
            t.cancel(slot, seq);
            assert!(t.heap.len() <= 64 + 2 * t.live + 1, "heap {}", t.heap.len());
        }
        assert!(t.slots.len() <= 2);
        assert_eq!(t.next_deadline(), Some(5));
        t.cancel(keep.0, keep.1);
        assert_eq!(t.next_deadline(), None);
    }
}
