//! One debugging session: the `gdbstub` state machine, kept across the guest's stops, and the
//! stop loop that runs in the trap handler while GDB has the guest.

use super::memory::Memory;
use super::regs::{TrapRegs, RFLAGS_TF};
use super::target::{Guest, Resume};
use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{GdbStub, SingleThreadStopReason};

/// Why the guest stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// An `int3` of a breakpoint GDB set (the reported `rip` is the breakpoint's address).
    Breakpoint,
    /// A single step finished.
    Step,
    /// Any other debug trap (an `int3` in the code, the stop at boot, a panic): SIGTRAP.
    Trap,
    /// GDB asked to interrupt the running guest (Ctrl-C): SIGINT.
    Interrupt,
}

/// What arrived from GDB while the guest runs ([`Session::poll_running`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing that needs a stop.
    Nothing,
    /// GDB sent Ctrl-C (the byte is consumed).
    Interrupt,
    /// A new GDB is talking to a detached stub: stop, and read what it sent in the stop loop.
    Attach,
}

/// What the guest does after a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// GDB resumed it (continue or step).
    Resume(Resume),
    /// GDB went away (detach, kill, or a broken connection): breakpoints are removed and the
    /// guest runs on; a later stop waits for a new GDB.
    Detached,
}

/// A session: the stub's state machine, the guest view, and the packet buffer.
pub struct Session<M: Memory, C: ConnectionExt> {
    guest: Guest<M>,
    machine: Option<GdbStubStateMachine<'static, Guest<M>, C>>,
}

/// Why a session could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The packet buffer is too small for `gdbstub`.
    Buffer,
    /// The connection refused to start.
    Connection,
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SessionError::Buffer => f.write_str("gdb: the packet buffer is unusable"),
            SessionError::Connection => f.write_str("gdb: the connection could not start"),
        }
    }
}

impl core::error::Error for SessionError {}

impl<M: Memory, C: ConnectionExt> Session<M, C> {
    /// A session speaking on `conn`, with `buffer` for packets (GDB is told its size).
    pub fn new(mem: M, conn: C, buffer: &'static mut [u8]) -> Result<Self, SessionError> {
        let mut guest = Guest::new(mem);
        let stub = GdbStub::<Guest<M>, C>::builder(conn)
            .with_packet_buffer(buffer)
            .build()
            .map_err(|_| SessionError::Buffer)?;
        let machine = stub
            .run_state_machine(&mut guest)
            .map_err(|_| SessionError::Connection)?;
        Ok(Session {
            guest,
            machine: Some(machine),
        })
    }

    /// The guest view (breakpoints, memory).
    pub fn guest(&self) -> &Guest<M> {
        &self.guest
    }

    /// Classifies a debug trap: vector 3 at `rip` just past one of our breakpoints, or
    /// vector 1 while single-stepping. For a breakpoint, moves `rip` back onto it.
    pub fn classify(&self, regs: &mut TrapRegs) -> Stop {
        match regs.vector {
            3 if regs.rip > 0 && self.guest.has_breakpoint(regs.rip - 1) => {
                regs.rip -= 1;
                Stop::Breakpoint
            }
            1 if regs.rflags & RFLAGS_TF != 0 => Stop::Step,
            _ => Stop::Trap,
        }
    }

    /// Hands the stopped guest to GDB until it resumes or goes away; `regs` is the trap frame,
    /// updated with what GDB wrote (and the trap flag for a step).
    pub fn stop(&mut self, regs: &mut TrapRegs, why: Stop) -> Outcome {
        self.guest.regs = *regs;
        let reason = match why {
            Stop::Breakpoint => SingleThreadStopReason::SwBreak(()),
            Stop::Step => SingleThreadStopReason::DoneStep,
            Stop::Trap => SingleThreadStopReason::Signal(Signal::SIGTRAP),
            Stop::Interrupt => SingleThreadStopReason::Signal(Signal::SIGINT),
        };
        let Some(mut m) = self.machine.take() else {
            return self.detached(regs);
        };
        // Report the stop if GDB is waiting for one (it resumed us last time); when the stub is
        // idle (no GDB yet, or a new one) GDB asks with `?`.
        if let GdbStubStateMachine::Running(r) = m {
            m = match r.report_stop(&mut self.guest, reason) {
                Ok(m) => m,
                Err(_) => return self.detached(regs),
            };
        }
        loop {
            m = match m {
                GdbStubStateMachine::Idle(mut idle) => {
                    let byte = match idle.borrow_conn().read() {
                        Ok(b) => b,
                        Err(_) => return self.detached(regs),
                    };
                    match idle.incoming_data(&mut self.guest, byte) {
                        Ok(m) => m,
                        Err(_) => return self.detached(regs),
                    }
                }
                GdbStubStateMachine::CtrlCInterrupt(c) => {
                    // Already stopped: answer the interrupt with the stop we are in.
                    match c.interrupt_handled(&mut self.guest, Some(reason)) {
                        Ok(m) => m,
                        Err(_) => return self.detached(regs),
                    }
                }
                GdbStubStateMachine::Disconnected(d) => {
                    self.machine = Some(d.return_to_idle());
                    return self.detached(regs);
                }
                GdbStubStateMachine::Running(r) => {
                    let how = self.guest.take_resume().unwrap_or(Resume::Continue);
                    self.machine = Some(r.into());
                    *regs = self.guest.regs;
                    return Outcome::Resume(how);
                }
            };
        }
    }

    /// Looks at what GDB sent while the guest runs, without blocking: with GDB waiting for a
    /// stop, Ctrl-C asks for one and other bytes (stray acks) are dropped; with the stub
    /// detached, a packet or Ctrl-C is a new GDB, which needs a stop to be served.
    pub fn poll_running(&mut self) -> Incoming {
        match self.machine.as_mut() {
            Some(GdbStubStateMachine::Running(r)) => loop {
                match r.borrow_conn().peek() {
                    Ok(Some(b)) => {
                        let _ = r.borrow_conn().read();
                        if b == 0x03 {
                            return Incoming::Interrupt;
                        }
                    }
                    _ => return Incoming::Nothing,
                }
            },
            // Detached: a packet (or Ctrl-C) is a new GDB; the acks the old one sent after
            // its detach are dropped.
            Some(GdbStubStateMachine::Idle(i)) => loop {
                match i.borrow_conn().peek() {
                    Ok(Some(b'$')) => return Incoming::Attach,
                    Ok(Some(b)) => {
                        let _ = i.borrow_conn().read();
                        if b == 0x03 {
                            return Incoming::Attach;
                        }
                    }
                    _ => return Incoming::Nothing,
                }
            },
            _ => Incoming::Nothing,
        }
    }

    /// GDB is gone: put the code back and run on.
    fn detached(&mut self, regs: &mut TrapRegs) -> Outcome {
        self.guest.remove_all_breakpoints();
        let _ = self.guest.take_resume();
        *regs = self.guest.regs;
        regs.rflags &= !RFLAGS_TF;
        Outcome::Detached
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gdb::memory::Memory;
    use crate::gdb::target::INT3;
    use gdbstub::conn::Connection;
    use std::collections::VecDeque;
    use std::string::String;
    use std::vec::Vec;
    use std::{format, vec};

    /// One RW page at 0x1000; everything else is unmapped.
    struct Page(Vec<u8>);

    impl Memory for Page {
        fn accessible(&self, addr: u64, _write: bool) -> bool {
            (0x1000..0x2000).contains(&addr)
        }
        fn read_byte(&self, addr: u64) -> u8 {
            self.0[(addr - 0x1000) as usize]
        }
        fn write_byte(&mut self, addr: u64, byte: u8) {
            self.0[(addr - 0x1000) as usize] = byte;
        }
    }

    /// GDB's side: bytes queued for the stub, and what the stub wrote. Reading past the
    /// queue fails, as a broken connection does.
    #[derive(Default)]
    struct Wire {
        input: VecDeque<u8>,
        output: Vec<u8>,
    }

    impl Connection for Wire {
        type Error = ();
        fn write(&mut self, byte: u8) -> Result<(), ()> {
            self.output.push(byte);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), ()> {
            Ok(())
        }
    }

    impl ConnectionExt for Wire {
        fn read(&mut self) -> Result<u8, ()> {
            self.input.pop_front().ok_or(())
        }
        fn peek(&mut self) -> Result<Option<u8>, ()> {
            Ok(self.input.front().copied())
        }
    }

    fn packet(body: &str) -> String {
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        format!("${body}#{sum:02x}")
    }

    /// The stub's replies (packet bodies, run-length encoding expanded), without the acks.
    fn replies(out: &[u8]) -> Vec<String> {
        let s = String::from_utf8_lossy(out);
        s.split('$')
            .skip(1)
            .map(|p| {
                let mut body = String::new();
                let mut chars = p.split('#').next().unwrap_or("").chars();
                while let Some(c) = chars.next() {
                    if c == '*' {
                        let last = body.chars().last().expect("a run repeats something");
                        let n = chars.next().expect("run length") as usize - 29;
                        body.extend(std::iter::repeat_n(last, n));
                    } else {
                        body.push(c);
                    }
                }
                body
            })
            .collect()
    }

    fn session() -> Session<Page, Wire> {
        let mem = Page((0..0x1000).map(|i| (i % 251) as u8).collect());
        let buf: &'static mut [u8] = vec![0u8; 4096].leak();
        Session::new(mem, Wire::default(), buf).expect("session")
    }

    fn wire(s: &mut Session<Page, Wire>) -> &mut Wire {
        match s.machine.as_mut().expect("machine") {
            GdbStubStateMachine::Idle(i) => i.borrow_conn(),
            GdbStubStateMachine::Running(r) => r.borrow_conn(),
            GdbStubStateMachine::CtrlCInterrupt(c) => c.borrow_conn(),
            GdbStubStateMachine::Disconnected(d) => d.borrow_conn(),
        }
    }

    fn send(s: &mut Session<Page, Wire>, packets: &[&str]) {
        let w = wire(s);
        w.output.clear();
        for p in packets {
            w.input.extend(packet(p).bytes());
        }
    }

    #[test]
    fn registers_memory_and_breakpoints_over_the_protocol() {
        let mut s = session();
        let mut regs = TrapRegs {
            rax: 0x1122_3344_5566_7788,
            rsp: 0x1800,
            rip: 0x1020,
            rflags: 0x202,
            vector: 3,
            ..TrapRegs::default()
        };
        send(
            &mut s,
            &["?", "g", "m1000,4", "m3000,4", "Z0,1010,1", "m1010,1", "c"],
        );
        let why = s.classify(&mut regs);
        assert_eq!(why, Stop::Trap, "an int3 that is not one of ours");
        assert_eq!(s.stop(&mut regs, why), Outcome::Resume(Resume::Continue));
        let r = replies(&wire(&mut s).output);
        assert!(r[0].starts_with("T05") || r[0].starts_with("S05"), "{r:?}");
        // g: rax first, little-endian; rsp is the 8th register.
        assert!(r[1].starts_with("8877665544332211"), "{}", r[1]);
        assert_eq!(&r[1][7 * 16..8 * 16], "0018000000000000");
        assert_eq!(&r[1][16 * 16..17 * 16], "2010000000000000", "rip");
        assert_eq!(r[2], "00010203", "valid memory");
        assert!(
            r[3].starts_with('E'),
            "unmapped memory is an error reply: {}",
            r[3]
        );
        assert_eq!(r[4], "OK", "breakpoint set");
        assert_eq!(
            r[5], "10",
            "reads show the original byte under a breakpoint"
        );
        assert_eq!(s.guest().memory().0[0x10], INT3, "the int3 is in memory");

        // The guest runs into it: rip is past the int3.
        let mut regs = TrapRegs {
            rip: 0x1011,
            vector: 3,
            rflags: 0x202,
            ..TrapRegs::default()
        };
        send(&mut s, &["z0,1010,1", "s"]);
        let why = s.classify(&mut regs);
        assert_eq!(why, Stop::Breakpoint);
        assert_eq!(regs.rip, 0x1010, "rip moved back onto the breakpoint");
        assert_eq!(s.stop(&mut regs, why), Outcome::Resume(Resume::Step));
        let r = replies(&wire(&mut s).output);
        assert!(r[0].starts_with("T05") && r[0].contains("swbreak"), "{r:?}");
        assert_eq!(r[1], "OK", "breakpoint removed");
        assert_eq!(
            s.guest().memory().0[0x10],
            0x10,
            "the original byte is back"
        );
        assert_ne!(regs.rflags & RFLAGS_TF, 0, "step sets the trap flag");

        // The step's trap; then GDB goes away (the wire breaks): the guest runs on.
        regs.vector = 1;
        send(&mut s, &["Z0,1020,1"]);
        let why = s.classify(&mut regs);
        assert_eq!(why, Stop::Step);
        assert_eq!(s.stop(&mut regs, why), Outcome::Detached);
        assert_eq!(regs.rflags & RFLAGS_TF, 0, "no trap flag after a detach");
        assert_eq!(
            s.guest().memory().0[0x20],
            0x20,
            "breakpoints removed on detach"
        );
    }

    #[test]
    fn ctrl_c_while_running_and_a_new_gdb_after_detach_ask_for_stops() {
        let mut s = session();
        let mut regs = TrapRegs {
            vector: 3,
            ..TrapRegs::default()
        };
        send(&mut s, &["c"]);
        assert_eq!(
            s.stop(&mut regs, Stop::Trap),
            Outcome::Resume(Resume::Continue)
        );
        assert_eq!(s.poll_running(), Incoming::Nothing);
        wire(&mut s).input.extend(b"+\x03");
        assert_eq!(s.poll_running(), Incoming::Interrupt);
        assert!(
            wire(&mut s).input.is_empty(),
            "the ack and Ctrl-C are consumed"
        );
        send(&mut s, &["D"]);
        assert_eq!(s.stop(&mut regs, Stop::Interrupt), Outcome::Detached);
        let r = replies(&wire(&mut s).output);
        assert!(
            r[0].starts_with("T02") || r[0].starts_with("S02"),
            "SIGINT: {r:?}"
        );
        wire(&mut s).input.extend(b"+");
        assert_eq!(s.poll_running(), Incoming::Nothing, "the old GDB's ack");
        assert!(wire(&mut s).input.is_empty());
        send(&mut s, &["?"]);
        assert_eq!(s.poll_running(), Incoming::Attach);
        assert!(
            !wire(&mut s).input.is_empty(),
            "the new GDB's bytes stay for the stop"
        );
    }

    #[test]
    fn register_writes_keep_the_flags_xen_owns() {
        use gdbstub::arch::Registers;
        use gdbstub_arch::x86::reg::X86_64CoreRegs;
        let mut s = session();
        let mut regs = TrapRegs {
            rflags: 0x202,
            vector: 3,
            cs: 0xe033,
            ..TrapRegs::default()
        };
        let mut want = X86_64CoreRegs::default();
        want.regs[0] = 0x2a;
        want.rip = 0x1234;
        want.eflags = 0x1; // CF set, IF cleared
        want.segments.cs = 0x10;
        let mut hex = String::from("G");
        want.gdb_serialize(|b| hex.push_str(&format!("{:02x}", b.unwrap_or(0))));
        send(&mut s, &[&hex, "c"]);
        assert_eq!(
            s.stop(&mut regs, Stop::Trap),
            Outcome::Resume(Resume::Continue)
        );
        assert_eq!(replies(&wire(&mut s).output)[0], "OK");
        assert_eq!((regs.rax, regs.rip), (0x2a, 0x1234));
        assert_eq!(regs.rflags, 0x203, "CF taken, IF kept");
        assert_eq!(regs.cs, 0xe033, "segments are Xen's");
    }
}
