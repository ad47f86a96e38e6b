//! The introspection dump against the simulated host: a guest listens on port 80, a peer
//! connects, the simulated dom0 writes `data/xenia/dump`, and the console shows a report that
//! lists the listener and the connection. The runtime's console is the process's stdout on
//! the host, so the test runs the guest in a child process (this same test binary) and reads
//! what it printed. One test: the runtime boots once a process.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use xenia::net::{self, IpConfig, TcpListener};
use xenia_sim::netback::{Netback, VifConfig};
use xenia_sim::peer::PeerDevice;
use xenia_sim::{Backend, Host};

const CHILD: &str = "XENIA_DUMP_SIM_CHILD";
const TEST: &str = "dump_lists_the_listener_and_its_connection";

/// 10.0.0.1: once `go` is set, connects from port 40000 to the guest's port 80 and holds the
/// connection open.
struct Client {
    dev: PeerDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    go: Rc<Cell<bool>>,
    connecting: bool,
}

impl Backend for Client {
    fn step(&mut self, host: &mut Host) -> bool {
        let now = Instant::from_micros((host.now_ns() / 1000) as i64);
        let before = (
            self.dev.netback().pending_to_guest(),
            self.dev.netback().stats().tx_frames,
        );
        if self.go.get() && !self.connecting {
            self.connecting = true;
            let s = self.sockets.get_mut::<tcp::Socket>(self.tcp);
            s.connect(
                self.iface.context(),
                (IpAddress::v4(10, 0, 0, 2), 80),
                40000,
            )
            .unwrap();
        }
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        (
            self.dev.netback().pending_to_guest(),
            self.dev.netback().stats().tx_frames,
        ) != before
    }
}

fn client(nb: Netback, go: Rc<Cell<bool>>) -> Client {
    let mut dev = PeerDevice::new(nb);
    let iface = dev.interface(5);
    let mut sockets = SocketSet::new(vec![]);
    let tcp = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    ));
    Client {
        dev,
        iface,
        sockets,
        tcp,
        go,
        connecting: false,
    }
}

/// The guest: serves port 80, takes one connection, then dom0 asks for two dumps.
fn guest() {
    let sim = xenia_sim::runtime::boot();
    let nb = Netback::new(&sim, VifConfig::new(0));
    let go = Rc::new(Cell::new(false));
    sim.add_backend(Box::new(client(nb, go.clone())));
    let key = "/local/domain/1/data/xenia/dump";
    let sim2 = sim.clone();
    // __run_app starts the runtime's own tasks (the dump's watcher among them), as #[xenia::main] does.
    xenia::block_on(xenia::__run_app(async move {
        net::open(
            0,
            IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        let listener = TcpListener::bind(80).unwrap();
        go.set(true);
        let conn = xenia::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the client connects in time")
            .unwrap();
        xenia::sleep(Duration::from_millis(50)).await;
        // The guest created the key, empty.
        assert_eq!(sim2.xenstored().borrow_mut().read_string(key).unwrap(), "");
        println!("child: asking for a dump");
        sim2.xenstored().borrow_mut().write(key, "1").unwrap();
        xenia::sleep(Duration::from_millis(100)).await;
        // It wrote the key back empty (and that write did not start another dump).
        assert_eq!(sim2.xenstored().borrow_mut().read_string(key).unwrap(), "");
        println!("child: asking again");
        sim2.xenstored().borrow_mut().write(key, "now").unwrap();
        xenia::sleep(Duration::from_millis(100)).await;
        drop(conn);
        println!("child: done");
    }));
}

#[test]
fn dump_lists_the_listener_and_its_connection() {
    if std::env::var_os(CHILD).is_some() {
        return guest();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the guest failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let ask = lines
        .iter()
        .position(|l| l.ends_with("child: asking for a dump"))
        .unwrap();
    let again = lines
        .iter()
        .position(|l| l.ends_with("child: asking again"))
        .unwrap();
    let dump: Vec<&str> = lines[ask..again]
        .iter()
        .copied()
        .filter(|l| l.starts_with("xenia-dump: "))
        .collect();
    let has = |prefix: &str| dump.iter().any(|l| l.starts_with(prefix));
    assert!(
        dump.first()
            .unwrap()
            .starts_with("xenia-dump: begin uptime="),
        "{dump:#?}"
    );
    assert_eq!(*dump.last().unwrap(), "xenia-dump: end", "{dump:#?}");
    // The listener and the connection, with its peer.
    assert!(has("xenia-dump: listener port=80 "), "{dump:#?}");
    assert!(
        has("xenia-dump: tcp state=ESTABLISHED local=10.0.0.2:80 remote=10.0.0.1:40000 "),
        "{dump:#?}"
    );
    assert!(
        has("xenia-dump: vif index=0 mac=00:16:3e:00:00:01 ipv4=10.0.0.2/24 "),
        "{dump:#?}"
    );
    // Tasks: the running one is the dump's watcher, the app waits on a timer, the stack's
    // driver was spawned in the stack; every task has a spawn location.
    assert!(has("xenia-dump: tasks count="), "{dump:#?}");
    let tasks: Vec<&&str> = dump
        .iter()
        .filter(|l| l.starts_with("xenia-dump: task id="))
        .collect();
    assert!(tasks.len() >= 4, "{tasks:#?}");
    assert!(
        tasks
            .iter()
            .any(|l| l.contains("state=running") && l.contains("spawned=runtime/src/lib.rs:")),
        "{tasks:#?}"
    );
    assert!(
        tasks.iter().any(|l| l.contains("state=waiting")
            && !l.contains("timer_in=-")
            && l.contains("spawned=runtime/tests/dump_sim.rs:")),
        "the app's task sleeps: {tasks:#?}"
    );
    assert!(
        tasks
            .iter()
            .any(|l| l.contains("spawned=runtime/src/net/stack.rs:")),
        "{tasks:#?}"
    );
    // Event channels: the xenstore port and the vif's, one of them waited on by a task.
    assert!(has("xenia-dump: evtchn bound="), "{dump:#?}");
    assert!(
        dump.iter()
            .any(|l| l.starts_with("xenia-dump: port id=") && l.contains("waiter=task-")),
        "{dump:#?}"
    );
    assert!(has("xenia-dump: timers count="), "{dump:#?}");
    let grants = dump
        .iter()
        .find(|l| l.starts_with("xenia-dump: grants entries="))
        .unwrap();
    assert!(
        !grants.contains("in_use=0 "),
        "the vif's rings and buffers are granted: {grants}"
    );
    assert!(grants.ends_with("leaked_pages=0"), "{grants}");
    assert!(has("xenia-dump: heap "), "{dump:#?}");
    // Nothing says busy: the dump runs as a task, when nothing else is borrowed.
    assert!(!dump.iter().any(|l| l.contains("busy")), "{dump:#?}");

    // One dump per request: the second write printed exactly one more.
    let begins = lines
        .iter()
        .filter(|l| l.starts_with("xenia-dump: begin"))
        .count();
    let ends = lines.iter().filter(|l| **l == "xenia-dump: end").count();
    assert_eq!((begins, ends), (2, 2), "{stdout}");
    let done = lines
        .iter()
        .position(|l| l.ends_with("child: done"))
        .unwrap();
    assert!(
        lines[again..done]
            .iter()
            .any(|l| l.starts_with("xenia-dump: begin")),
        "{stdout}"
    );
}
