//! The guest as a `gdbstub` target: one thread (the vCPU), its registers from the trap frame,
//! checked memory access, software breakpoints (`int3`), continue and single step.

use super::memory::{self, Memory};
use super::regs::{TrapRegs, RFLAGS_TF};
use gdbstub::common::Signal;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;

/// The `int3` instruction.
pub const INT3: u8 = 0xcc;

/// How many software breakpoints may be set at once.
pub const MAX_BREAKPOINTS: usize = 32;

/// `EFAULT`: the reply to a memory access at an address the guest does not map.
const EFAULT: u8 = 14;
/// `ENOSPC`: the reply when every breakpoint slot is taken.
const ENOSPC: u8 = 28;

/// How the guest goes on when GDB lets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Run until the next breakpoint.
    Continue,
    /// Run one instruction (the trap flag), then stop again.
    Step,
}

/// A fatal target error (none today: every failure is a reply to GDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetFault {}

impl core::fmt::Display for TargetFault {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {}
    }
}

impl core::error::Error for TargetFault {}

/// A software breakpoint: the address and the byte `int3` replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Breakpoint {
    addr: u64,
    saved: u8,
}

/// The stopped guest, as GDB sees it.
pub struct Guest<M: Memory> {
    /// The registers of the stop (written back to the trap frame on resume).
    pub regs: TrapRegs,
    mem: M,
    breakpoints: [Option<Breakpoint>; MAX_BREAKPOINTS],
    resume: Option<Resume>,
}

impl<M: Memory> Guest<M> {
    /// A guest with no breakpoints whose memory is `mem`.
    pub fn new(mem: M) -> Self {
        Guest {
            regs: TrapRegs::default(),
            mem,
            breakpoints: [None; MAX_BREAKPOINTS],
            resume: None,
        }
    }

    /// Takes how GDB said to go on (`None` while GDB has not said).
    pub fn take_resume(&mut self) -> Option<Resume> {
        self.resume.take()
    }

    /// Whether a breakpoint of ours is set at `addr`.
    pub fn has_breakpoint(&self, addr: u64) -> bool {
        self.breakpoints.iter().flatten().any(|b| b.addr == addr)
    }

    /// Removes every breakpoint, restoring the original bytes (when GDB goes away).
    pub fn remove_all_breakpoints(&mut self) {
        for slot in &mut self.breakpoints {
            if let Some(b) = slot.take() {
                memory::write(&mut self.mem, b.addr, &[b.saved]);
            }
        }
    }

    /// The memory view (for tests).
    pub fn memory(&self) -> &M {
        &self.mem
    }
}

impl<M: Memory> Target for Guest<M> {
    type Arch = X86_64_SSE;
    type Error = TargetFault;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Memory> SingleThreadBase for Guest<M> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        self.regs.to_gdb(regs);
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        self.regs.set_from_gdb(regs);
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        match memory::read(&self.mem, start, data) {
            0 if !data.is_empty() => Err(TargetError::Errno(EFAULT)),
            n => {
                // GDB must not see our int3 bytes (it asks to read code it disassembles).
                for b in self.breakpoints.iter().flatten() {
                    if let Some(off) = b.addr.checked_sub(start) {
                        if off < n as u64 {
                            data[off as usize] = b.saved;
                        }
                    }
                }
                Ok(n)
            }
        }
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        if memory::write(&mut self.mem, start, data) {
            // Keep our breakpoints in place; what GDB wrote under one becomes its saved byte.
            for b in self.breakpoints.iter_mut().flatten() {
                if let Some(off) = b.addr.checked_sub(start) {
                    if off < data.len() as u64 {
                        b.saved = data[off as usize];
                        memory::write(&mut self.mem, b.addr, &[INT3]);
                    }
                }
            }
            Ok(())
        } else {
            Err(TargetError::Errno(EFAULT))
        }
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Memory> SingleThreadResume for Guest<M> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.regs.rflags &= !RFLAGS_TF;
        self.resume = Some(Resume::Continue);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Memory> SingleThreadSingleStep for Guest<M> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.regs.rflags |= RFLAGS_TF;
        self.resume = Some(Resume::Step);
        Ok(())
    }
}

impl<M: Memory> Breakpoints for Guest<M> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Memory> SwBreakpoint for Guest<M> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.has_breakpoint(addr) {
            return Ok(true);
        }
        let Some(slot) = self.breakpoints.iter().position(Option::is_none) else {
            return Err(TargetError::Errno(ENOSPC));
        };
        let mut saved = [0u8];
        if memory::read(&self.mem, addr, &mut saved) != 1
            || !memory::write(&mut self.mem, addr, &[INT3])
        {
            return Err(TargetError::Errno(EFAULT));
        }
        self.breakpoints[slot] = Some(Breakpoint {
            addr,
            saved: saved[0],
        });
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(slot) = self
            .breakpoints
            .iter_mut()
            .find(|b| b.is_some_and(|b| b.addr == addr))
        else {
            return Ok(false);
        };
        let b = slot.take().expect("found above");
        if memory::write(&mut self.mem, b.addr, &[b.saved]) {
            Ok(true)
        } else {
            Err(TargetError::Errno(EFAULT))
        }
    }
}
