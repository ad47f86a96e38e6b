//! The simulated hypervisor's view of the guest's grant table, and the grant mappings the
//! simulated backends make (as `GNTTABOP_map_grant_ref` would, with the same checks).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::vec::Vec;
use xenia_xen::abi::{
    GTF_permit_access, GTF_reading, GTF_readonly, GTF_type_mask, GTF_writing, GrantEntryV1,
};
use xenia_xen::events::DomId;
use xenia_xen::grant::Page;
use xenia_xen::grant::{GrantRef, ENTRIES_PER_FRAME};

/// Why a backend could not map a grant (as `GNTST_*` would say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantMapError {
    /// The reference is beyond the table.
    BadRef(GrantRef),
    /// The entry does not permit access, or not to this domain, or not for writing.
    PermissionDenied(GrantRef),
}

impl core::fmt::Display for GrantMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GrantMapError::BadRef(r) => write!(f, "simulated grant map: ref {r} beyond the table"),
            GrantMapError::PermissionDenied(r) => {
                write!(
                    f,
                    "simulated grant map: ref {r} does not permit this access"
                )
            }
        }
    }
}

impl core::error::Error for GrantMapError {}

/// The guest's grant table frames, owned by the simulated hypervisor.
#[derive(Default)]
pub struct GrantTableSim {
    frames: Vec<Page>,
    /// Active mappings: (ref) -> (writable, count).
    maps: HashMap<GrantRef, (bool, u32)>,
    /// Largest table the guest may set up.
    pub max_frames: u32,
}

impl GrantTableSim {
    /// A table that may grow to `max_frames` frames.
    pub fn new(max_frames: u32) -> Self {
        GrantTableSim {
            frames: Vec::new(),
            maps: HashMap::new(),
            max_frames,
        }
    }

    /// Frames in use.
    pub fn nr_frames(&self) -> u32 {
        self.frames.len() as u32
    }

    /// `GNTTABOP_setup_table`: makes the table at least `nr` frames, returns their "mfns".
    pub fn setup(&mut self, nr: u32) -> Result<Vec<u64>, i16> {
        if nr > self.max_frames {
            return Err(-1);
        }
        while self.frames.len() < nr as usize {
            self.frames.push(Page::new().ok_or(-1i16)?);
        }
        Ok(self.frames[..nr as usize]
            .iter()
            .map(|p| xenia_xen::memory::virt_to_mfn(p.as_ptr() as usize).unwrap_or(0))
            .collect())
    }

    fn entry(&self, r: GrantRef) -> Option<*mut GrantEntryV1> {
        let frame = self.frames.get((r / ENTRIES_PER_FRAME) as usize)?;
        Some((frame.as_ptr() as *mut GrantEntryV1).wrapping_add((r % ENTRIES_PER_FRAME) as usize))
    }

    /// Maps grant `r` for backend domain `dom`; returns the granted page's address.
    pub fn map(&mut self, dom: DomId, r: GrantRef, write: bool) -> Result<*mut u8, GrantMapError> {
        let e = self.entry(r).ok_or(GrantMapError::BadRef(r))?;
        // SAFETY: e points into a table frame we own; the guest updates flags atomically.
        let flags = unsafe { AtomicU16::from_ptr(&raw mut (*e).flags) };
        let f = flags.load(Ordering::Acquire);
        // SAFETY: as above.
        let (domid, frame) = unsafe { ((*e).domid, (*e).frame) };
        if f & GTF_type_mask != GTF_permit_access
            || domid != dom
            || (write && f & GTF_readonly != 0)
        {
            return Err(GrantMapError::PermissionDenied(r));
        }
        flags.fetch_or(
            if write {
                GTF_writing | GTF_reading
            } else {
                GTF_reading
            },
            Ordering::AcqRel,
        );
        let m = self.maps.entry(r).or_insert((write, 0));
        m.0 |= write;
        m.1 += 1;
        match crate::frames::mfn_to_virt(frame as u64) {
            Some(a) => Ok(a as *mut u8),
            None => {
                self.unmap(r);
                Err(GrantMapError::PermissionDenied(r))
            }
        }
    }

    /// Undoes one [`map`](Self::map) of `r`.
    pub fn unmap(&mut self, r: GrantRef) {
        let Some(m) = self.maps.get_mut(&r) else {
            return;
        };
        m.1 -= 1;
        if m.1 == 0 {
            self.maps.remove(&r);
            if let Some(e) = self.entry(r) {
                // SAFETY: e points into a table frame we own.
                let flags = unsafe { AtomicU16::from_ptr(&raw mut (*e).flags) };
                flags.fetch_and(!(GTF_reading | GTF_writing), Ordering::AcqRel);
            }
        }
    }

    /// The table of a new domain (after a simulated restore): every entry zero and nothing
    /// mapped. The frames stay where they are (the guest maps them at the same addresses
    /// again, as it would map a new domain's frames).
    pub fn reset(&mut self) {
        self.maps.clear();
        for f in &self.frames {
            // SAFETY: the frame is a page we own.
            unsafe { core::ptr::write_bytes(f.as_ptr(), 0, xenia_xen::memory::PAGE_SIZE) };
        }
    }

    /// Grants currently mapped by backends.
    pub fn mapped(&self) -> usize {
        self.maps.len()
    }
}
