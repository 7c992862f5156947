//! The System V mappings of each process: the part of a process's address
//! space the IPC model must know to count `nattch` the way Linux does —
//! per mapping (VMA), not per `shmat` call (SPEC SHM-DT-5, IMPL-2).
//!
//! Only System V shm mappings are recorded; whoever maps the memory (the
//! shim, an embedder) reports `shmat`, `shmdt`, `munmap`, `fork`, `exec`
//! and `exit` so the model can split, close and duplicate them as
//! `mm/vma.c` would.

use std::collections::BTreeMap;

use uipc_abi::PAGE_SIZE;

use crate::ids::IpcId;

/// Identifies one `shmat` call's mapping ("the file" of `vm_file`): fragments
/// of one attach share it, and so do its copies in a forked child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AttachId(pub u64);

/// Protection of a mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Prot {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Prot {
    /// `PROT_NONE`: no access.
    pub const NONE: Prot = Prot { read: false, write: false, exec: false };
    /// `PROT_READ`.
    pub const READ: Prot = Prot { read: true, write: false, exec: false };
    /// `PROT_READ | PROT_WRITE`.
    pub const READ_WRITE: Prot = Prot { read: true, write: true, exec: false };

    /// Decodes `mprotect`'s `prot` (`PROT_READ`, `PROT_WRITE`, `PROT_EXEC`,
    /// and x86's `PROT_SEM`, which sets no flag); `None` for any other bit
    /// (`arch_validate_prot()` fails those with `EINVAL`, so a call that
    /// succeeded never has them; `PROT_GROWSDOWN` fails on a System V
    /// mapping, which never grows).
    pub fn from_bits(bits: u32) -> Option<Prot> {
        const READ: u32 = 1;
        const WRITE: u32 = 2;
        const EXEC: u32 = 4;
        const SEM: u32 = 8;
        if bits & !(READ | WRITE | EXEC | SEM) != 0 {
            return None;
        }
        Some(Prot { read: bits & READ != 0, write: bits & WRITE != 0, exec: bits & EXEC != 0 })
    }
}

/// One System V shm mapping (a VMA whose `vm_ops` is `shm_vm_ops`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ShmVma {
    /// First byte (page aligned).
    pub start: u64,
    /// One past the last byte (page aligned).
    pub end: u64,
    /// The segment.
    pub id: IpcId,
    /// The attach this fragment comes from.
    pub attach: AttachId,
    /// Offset into the segment, in pages (`vm_pgoff`).
    pub pgoff: u64,
    /// Protection.
    pub prot: Prot,
    /// Write access may be granted (`VM_MAYWRITE`): false for a
    /// `SHM_RDONLY` attach, whose file is open read-only.
    pub may_write: bool,
}

impl ShmVma {
    /// Whether `[start, end)` overlaps this mapping.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }

    /// Byte offset into the segment of address `addr` (inside the mapping).
    pub fn offset_of(&self, addr: u64) -> u64 {
        self.pgoff * PAGE_SIZE + (addr - self.start)
    }
}

/// The System V mappings of one process, by start address.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Mm {
    vmas: BTreeMap<u64, ShmVma>,
}

/// What a change to the mappings did, in the kernel's order: `opened`
/// mappings (splits, copies) each add one to their segment's `nattch`;
/// `closed` mappings each remove one.
#[derive(Debug, Default)]
pub struct VmaChanges {
    /// Segments gaining a mapping (`shm_open`), once per new mapping.
    pub opened: Vec<IpcId>,
    /// Segments losing a mapping (`shm_close`), once per removed mapping.
    pub closed: Vec<IpcId>,
    /// Ranges that were unmapped.
    pub unmapped: Vec<(u64, u64)>,
}

impl Mm {
    /// Every mapping, by address.
    pub fn vmas(&self) -> impl Iterator<Item = &ShmVma> {
        self.vmas.values()
    }

    /// The mapping containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&ShmVma> {
        let (_, v) = self.vmas.range(..=addr).next_back()?;
        (addr < v.end).then_some(v)
    }

    /// Whether any mapping overlaps `[start, end)`.
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        self.vmas.values().any(|v| v.overlaps(start, end))
    }

    /// Records a new mapping.
    pub fn insert(&mut self, vma: ShmVma) {
        self.vmas.insert(vma.start, vma);
    }

    /// `munmap(start, end - start)` as `do_vmi_align_munmap()` does it: a
    /// mapping cut at `start` or `end` is split first (each split opens one
    /// new mapping), then every mapping inside the range is closed.
    pub fn unmap(&mut self, start: u64, end: u64) -> VmaChanges {
        let mut ch = VmaChanges::default();
        let hit: Vec<ShmVma> = self.vmas.values().filter(|v| v.overlaps(start, end)).copied().collect();
        for v in hit {
            self.vmas.remove(&v.start);
            if v.start < start {
                // __split_vma() at `start`: the part below stays mapped.
                self.insert(ShmVma { end: start, ..v });
                ch.opened.push(v.id);
            }
            if v.end > end {
                self.insert(ShmVma { start: end, pgoff: v.pgoff + (end - v.start) / PAGE_SIZE, ..v });
                ch.opened.push(v.id);
            }
            let lo = v.start.max(start);
            let hi = v.end.min(end);
            ch.closed.push(v.id);
            ch.unmapped.push((lo, hi));
        }
        ch
    }

    /// `mprotect(start, end - start, prot)` as `mm/mprotect.c:mprotect_fixup()`
    /// and `mm/vma.c:vma_modify()` do it, mapping by mapping in address
    /// order: a mapping whose protection already is `prot` is left alone;
    /// otherwise the changed part first tries to merge into the adjacent
    /// mapping of the same attach (same file, contiguous offset, already
    /// `prot`) — which only moves a boundary — and, failing that, is split
    /// off at the range's edges (each split opens one new mapping). A
    /// merge that would delete a mapping never happens: `shm_vm_ops` has a
    /// `close` hook (`can_merge_remove_vma()`), so a mapping changed in
    /// whole keeps its bounds.
    ///
    /// # References
    ///  - Linux 6.12 `mm/vma.c`: `vma_merge_existing_range()`,
    ///    `can_vma_merge_left()`, `can_vma_merge_right()`, `vma_modify()`
    ///
    /// The second value is true when a mapping refused `prot` (write access
    /// to a read-only attach: mprotect(2)'s `EACCES`); the mappings before
    /// it stay changed, as `do_mprotect_pkey()` leaves them.
    pub fn protect(&mut self, start: u64, end: u64, prot: Prot) -> (VmaChanges, bool) {
        let mut ch = VmaChanges::default();
        let mut cursor = start;
        while cursor < end {
            // The next mapping overlapping [cursor, end), as it is now
            // (an earlier step may have moved its start).
            let Some(v) = self.vmas.values().find(|v| v.overlaps(cursor, end)).copied() else { break };
            let (s, e) = (v.start.max(cursor), v.end.min(end));
            cursor = e;
            // do_mprotect_pkey(): "(newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS"
            // → EACCES, checked for each mapping before it is changed.
            if prot.write && !v.may_write {
                return (ch, true);
            }
            if v.prot == prot {
                continue;
            }
            let pgoff_at = |addr: u64| v.pgoff + (addr - v.start) / PAGE_SIZE;
            let (left_side, right_side) = (s == v.start, e == v.end);
            if left_side != right_side {
                if left_side {
                    // can_vma_merge_left(): prev ends at s, same file and
                    // protection, its offsets run on into ours.
                    let prev = self.vmas.values().find(|p| p.end == s).copied();
                    if let Some(p) = prev.filter(|p| {
                        p.attach == v.attach && p.prot == prot && p.pgoff + (p.end - p.start) / PAGE_SIZE == v.pgoff
                    }) {
                        self.vmas.remove(&v.start);
                        self.insert(ShmVma { end: e, ..p });
                        self.insert(ShmVma { start: e, pgoff: pgoff_at(e), ..v });
                        continue;
                    }
                } else {
                    // can_vma_merge_right(): next starts at e, same file and
                    // protection, our offsets run on into its.
                    let next = self.vmas.get(&e).copied();
                    if let Some(n) = next.filter(|n| n.attach == v.attach && n.prot == prot && n.pgoff == pgoff_at(e)) {
                        self.vmas.remove(&n.start);
                        self.insert(ShmVma { end: s, ..v });
                        self.insert(ShmVma { start: s, pgoff: pgoff_at(s), ..n });
                        continue;
                    }
                }
            }
            self.vmas.remove(&v.start);
            if v.start < s {
                // split_vma() at s: the part below keeps its protection.
                self.insert(ShmVma { end: s, ..v });
                ch.opened.push(v.id);
            }
            if v.end > e {
                self.insert(ShmVma { start: e, pgoff: pgoff_at(e), ..v });
                ch.opened.push(v.id);
            }
            self.insert(ShmVma { start: s, end: e, pgoff: pgoff_at(s), prot, ..v });
        }
        (ch, false)
    }

    /// `shmdt(addr)` as `ipc/shm.c:ksys_shmdt()` does it: the first mapping
    /// at or above `addr` whose distance from `addr` equals its offset into
    /// its segment is unmapped, then every further fragment of the same
    /// attach within the segment's rounded size that satisfies the same
    /// relation. `None` if the first search finds nothing (EINVAL).
    pub fn detach(&mut self, addr: u64, segsz_of: impl Fn(IpcId) -> u64) -> Option<VmaChanges> {
        let matches = |v: &ShmVma| (v.start - addr) / PAGE_SIZE == v.pgoff;
        let first = *self.vmas.range(addr..).map(|(_, v)| v).find(|v| matches(v))?;
        let size = segsz_of(first.id).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let mut ch = VmaChanges::default();
        let mut take = |mm: &mut Mm, v: ShmVma| {
            mm.vmas.remove(&v.start);
            ch.closed.push(v.id);
            ch.unmapped.push((v.start, v.end));
        };
        take(self, first);
        let rest: Vec<ShmVma> =
            self.vmas.range(first.end..).map(|(_, v)| *v).take_while(|v| v.end - addr <= size).collect();
        for v in rest {
            if matches(&v) && v.attach == first.attach {
                take(self, v);
            }
        }
        Some(ch)
    }

    /// Removes every mapping (exec, exit), in address order.
    pub fn clear(&mut self) -> VmaChanges {
        let mut ch = VmaChanges::default();
        for (_, v) in std::mem::take(&mut self.vmas) {
            ch.closed.push(v.id);
            ch.unmapped.push((v.start, v.end));
        }
        ch
    }
}
