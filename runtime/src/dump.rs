//! Live introspection without a debugger: a report of what the guest is doing, printed on the
//! console when dom0 writes the domain's `data/xenia/dump` key:
//!
//! ```text
//! xenstore-write /local/domain/<domid>/data/xenia/dump 1     # in dom0; `xl console` shows it
//! ```
//!
//! The report lists the tasks (where each was spawned, whether it is ready, the event channels
//! and timers it waits on), the timers, the bound event channels, each network interface with
//! its listeners and connections, the grant table and the heap. Every line starts with
//! [`PREFIX`] and is a word followed by `key=value` fields, so scripts can pick lines out of a
//! console log; the first line is `xenia-dump: begin`, the last `xenia-dump: end`.
//!
//! A dump is cheap when not asked for (one task waiting on a xenstore watch) and never waits
//! for or panics on state that is in use: it only *tries* to borrow the executor's queues, the
//! IP stacks, the event-channel table, the grant table and the heap, and prints `busy` for
//! whatever it could not borrow. The key's value is only checked for being non-empty (nothing
//! from xenstore is trusted or printed); the guest writes it back empty when done.

use alloc::vec::Vec;
use core::fmt;

use crate::exec::TaskInfo;
#[cfg(feature = "net")]
pub(crate) use net_view::NetItem;

/// The xenstore key, relative to the domain's path, whose writes ask for a dump.
pub const KEY: &str = "data/xenia/dump";
/// The prefix of every line of a dump.
pub const PREFIX: &str = "xenia-dump:";

macro_rules! line {
    ($($arg:tt)*) => {
        crate::println!("{} {}", PREFIX, format_args!($($arg)*))
    };
}

/// Nanoseconds as seconds with milliseconds (`12.345s`).
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000 / 1_000_000
        )
    }
}

/// The task whose waker has data pointer `data`, as `task <id>` (`other` if none has).
struct Waiter<'a>(&'a [TaskInfo], usize);

impl fmt::Display for Waiter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.iter().find(|t| t.waker == self.1) {
            Some(t) => write!(f, "task-{}", t.id),
            None => f.write_str("other"),
        }
    }
}

/// Prints a dump on the console now (what a write to [`KEY`] does).
pub fn print() {
    let now = crate::time::now_ns().unwrap_or(0);
    line!("begin uptime={}", Secs(now));
    let tasks = crate::exec::task_snapshot();
    let timers = crate::exec::timer_snapshot();
    let ports = crate::services::events().map(|ev| ev.port_states());

    // Tasks, with what each waits on.
    match &tasks {
        None => line!("tasks busy"),
        Some(tasks) => {
            let ready = tasks.iter().filter(|t| t.ready).count();
            let running = tasks.iter().filter(|t| t.running).count();
            line!(
                "tasks count={} running={running} ready={ready} waiting={}",
                tasks.len(),
                tasks.len() - ready - running
            );
            for t in tasks {
                let state = if t.running {
                    "running"
                } else if t.ready {
                    "ready"
                } else {
                    "waiting"
                };
                let mut evtchn = Vec::new();
                if let Some(Some(ports)) = &ports {
                    for p in ports {
                        if p.waiter
                            .as_ref()
                            .is_some_and(|w| w.data() as usize == t.waker)
                        {
                            evtchn.push(p.port);
                        }
                    }
                }
                let next_timer = timers
                    .as_ref()
                    .and_then(|ts| ts.iter().find(|&&(_, w)| w == t.waker).map(|&(d, _)| d));
                crate::print!(
                    "{PREFIX} task id={} state={state} polls={} evtchn=",
                    t.id,
                    t.polls
                );
                if evtchn.is_empty() {
                    crate::print!("-");
                }
                for (i, p) in evtchn.iter().enumerate() {
                    crate::print!("{}{p}", if i == 0 { "" } else { "," });
                }
                match next_timer {
                    Some(d) => crate::print!(" timer_in={}", Secs(d.saturating_sub(now))),
                    None => crate::print!(" timer_in=-"),
                }
                crate::println!(" spawned={}", t.at);
            }
        }
    }

    // Timers.
    match (&timers, &tasks) {
        (None, _) => line!("timers busy"),
        (Some(ts), tasks) => {
            crate::print!("{PREFIX} timers count={}", ts.len());
            // The list is ordered by deadline: the first is the next.
            match ts.first() {
                Some(&(d, w)) => {
                    crate::print!(" next_in={}", Secs(d.saturating_sub(now)));
                    match tasks {
                        Some(tasks) => crate::println!(" wakes={}", Waiter(tasks, w)),
                        None => crate::println!(),
                    }
                }
                None => crate::println!(" next_in=-"),
            }
        }
    }

    // Event channels.
    match &ports {
        None => line!("evtchn none (no event channels)"),
        Some(None) => line!("evtchn busy"),
        Some(Some(ports)) => {
            line!("evtchn bound={}", ports.len());
            for p in ports {
                crate::print!(
                    "{PREFIX} port id={} pending={} masked={} fired={} waiter=",
                    p.port,
                    p.pending as u8,
                    p.masked as u8,
                    p.fired as u8
                );
                match (&p.waiter, &tasks) {
                    (None, _) => crate::println!("-"),
                    (Some(w), Some(tasks)) => {
                        crate::println!("{}", Waiter(tasks, w.data() as usize))
                    }
                    (Some(_), None) => crate::println!("?"),
                }
            }
        }
    }

    // Network.
    net_view::print();

    // Grants: only if something set the table up (a dump does not).
    match crate::services::grant_table_if_set_up() {
        None => line!("grants none"),
        Some(g) => match g.usage() {
            Some((entries, in_use)) => line!(
                "grants entries={entries} in_use={in_use} free={} leaked_pages={}",
                g.free_entries(),
                g.leaked_pages()
            ),
            None => line!("grants busy leaked_pages={}", g.leaked_pages()),
        },
    }

    heap();
    line!("end");
}

#[cfg(target_os = "none")]
fn heap() {
    match crate::mm::heap_counters() {
        Some(c) => line!(
            "heap in_use={} free={} claimed={} allocations={} fragments={}",
            c.allocated_bytes,
            c.available_bytes,
            c.claimed_bytes,
            c.allocation_count,
            c.fragment_count
        ),
        None => line!("heap busy"),
    }
}

#[cfg(not(target_os = "none"))]
fn heap() {
    // On the host the process's allocator serves the runtime.
    line!("heap none (host allocator)");
}

/// Watches [`KEY`] and prints a dump each time dom0 writes something non-empty there, then
/// writes it back empty. The runtime runs this next to the app (see [`crate::main`]).
pub(crate) async fn watcher() {
    let Some(xs) = crate::services::xenstore_if_up() else {
        return;
    };
    // Create the key so an operator finds it (`xenstore-ls`); dom0 may write it either way.
    if let Err(e) = xs.write(KEY, "").await {
        log::warn!("dump: cannot create {KEY}: {e}");
    }
    let mut watch = match xs.watch(KEY, "xenia-dump").await {
        Ok(w) => w,
        Err(e) => {
            log::warn!("dump: cannot watch {KEY}: {e}");
            return;
        }
    };
    // A watch fires once when set, then on every write (ours included: they read empty).
    while let Some(Ok(_)) = watch.next_event().await {
        match xs.read_optional(KEY).await {
            Ok(Some(v)) if !v.trim_ascii().is_empty() => {
                print();
                let _ = xs.write(KEY, "").await;
            }
            _ => {}
        }
    }
}

/// The network part of a dump: each vif with its listeners and sockets.
#[cfg(feature = "net")]
mod net_view {
    use super::PREFIX;
    use core::fmt;
    use smoltcp::wire::{IpEndpoint, Ipv4Cidr};

    /// What the network stacks show the dump (see `net::Stack::dump_view`).
    pub(crate) enum NetItem {
        /// The stack list (`None`) or the stack of vif `n` was borrowed.
        Busy(Option<u32>),
        /// An interface.
        Vif {
            index: u32,
            mac: [u8; 6],
            ipv4: Option<Ipv4Cidr>,
            sockets: usize,
            polls: u64,
            ring_broken: bool,
        },
        /// A TCP listener.
        Listener {
            port: u16,
            listening: usize,
            half_open: usize,
            queued: usize,
            live: usize,
        },
        /// A TCP socket that is not listening.
        Tcp {
            state: smoltcp::socket::tcp::State,
            local: Option<IpEndpoint>,
            remote: Option<IpEndpoint>,
            send_queue: usize,
            recv_queue: usize,
        },
        /// A bound UDP socket.
        Udp { port: u16 },
    }

    /// An optional endpoint (`-` when absent).
    struct Endpoint(Option<IpEndpoint>);

    impl fmt::Display for Endpoint {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(e) => write!(f, "{e}"),
                None => f.write_str("-"),
            }
        }
    }

    /// Prints every vif the network stacks know (`net none` if there is none).
    pub(super) fn print() {
        let mut vifs = 0;
        crate::net::Stack::dump_view(&mut |item| match item {
            NetItem::Busy(None) => line!("net busy"),
            NetItem::Busy(Some(i)) => {
                vifs += 1;
                line!("vif index={i} busy");
            }
            NetItem::Vif {
                index,
                mac,
                ipv4,
                sockets,
                polls,
                ring_broken,
            } => {
                vifs += 1;
                crate::print!(
                    "{PREFIX} vif index={index} mac={} ipv4=",
                    xenia_netfront::format_mac(&mac)
                );
                match ipv4 {
                    Some(c) => crate::print!("{c}"),
                    None => crate::print!("-"),
                }
                crate::println!(
                    " sockets={sockets} polls={polls} ring={}",
                    if ring_broken { "broken" } else { "ok" }
                );
            }
            NetItem::Listener {
                port,
                listening,
                half_open,
                queued,
                live,
            } => line!(
                "listener port={port} listening={listening} half_open={half_open} queued={queued} \
                 accepted={live}"
            ),
            NetItem::Tcp {
                state,
                local,
                remote,
                send_queue,
                recv_queue,
            } => line!(
                "tcp state={state} local={} remote={} sendq={send_queue} recvq={recv_queue}",
                Endpoint(local),
                Endpoint(remote)
            ),
            NetItem::Udp { port } => line!("udp port={port}"),
        });
        if vifs == 0 {
            line!("net none");
        }
    }
}

/// Without the `net` feature there is no network stack to show.
#[cfg(not(feature = "net"))]
mod net_view {
    use super::PREFIX;

    /// Prints `net none`.
    pub(super) fn print() {
        line!("net none");
    }
}
