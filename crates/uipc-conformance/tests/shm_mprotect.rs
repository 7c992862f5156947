//! SHM-DT-5 with `mprotect` (SPEC 2.3): nattch counts mappings, and a
//! protection change of part of an attach splits it, unless the changed
//! part can join the neighbouring fragment of the same attach (a boundary
//! moves: no new mapping). A mapping changed in whole never merges away
//! (`shm_vm_ops` has a `close` hook), so changing a fragment back keeps
//! the count. `shmdt` still removes every fragment.
//!
//! Also the `mprotect` half of SHM-AT-8: a `SHM_RDONLY` attach refuses
//! write access (`EACCES`), takes `PROT_EXEC` without `SHM_EXEC`.
//!
//! Not covered: an `mprotect` that fails part-way over a hole (the kernel
//! keeps the changes made before the hole; docs/deviations.md).
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_PRIVATE};

const PAGE: u64 = 4096;
const R: i32 = 1;
const RW: i32 = 3;

/// The middle of an attach: two splits (+2); changing it back merges
/// nothing; shmdt removes the three fragments.
#[test]
fn shm_dt_5_mprotect_middle() {
    uipc_testkit::conformance!("SHM-DT-5/mprotect-middle", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 4 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 5 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.mprotect(r, f + PAGE, 2 * PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        assert_eq!(s.write(r, f + PAGE, b"x"), Err(Errno::EFAULT));
        assert_eq!(s.write(r, f, b"y"), Ok(()));
        assert_eq!(s.write(r, f + 3 * PAGE, b"z"), Ok(()));
        assert_eq!(s.read(r, f + 2 * PAGE, 1), Ok(vec![0]));
        // Back to read-write: the fragment is changed in whole, no merge.
        assert_eq!(s.mprotect(r, f + PAGE, 2 * PAGE, RW), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        assert_eq!(s.write(r, f + PAGE, b"x"), Ok(()));
        // The same protection again changes nothing.
        assert_eq!(s.mprotect(r, f, 4 * PAGE, RW), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// Growing a changed prefix page by page: the first change splits, the
/// next ones move the boundary into the prefix (merge left); a change at
/// the tail splits, then the page between joins the tail (merge right).
#[test]
fn shm_dt_5_mprotect_merges_with_neighbours() {
    uipc_testkit::conformance!("SHM-DT-5/mprotect-merge", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 6 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 7 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.mprotect(r, f, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.mprotect(r, f + PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.write(r, f + PAGE, b"x"), Err(Errno::EFAULT));
        assert_eq!(s.mprotect(r, f + 5 * PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        assert_eq!(s.mprotect(r, f + 4 * PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        // Only [f+2P, f+4P) is still writable; making it read-only changes
        // a whole fragment: no merge, no split.
        assert_eq!(s.write(r, f + 3 * PAGE, b"w"), Ok(()));
        assert_eq!(s.mprotect(r, f + 2 * PAGE, 2 * PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        // A range over several fragments, each changed in whole.
        assert_eq!(s.mprotect(r, f, 6 * PAGE, RW), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        assert_eq!(s.write(r, f + 5 * PAGE, b"v"), Ok(()));
        // The last page of the fragment [f+2P, f+4P): its right neighbour
        // has another protection, so one split.
        assert_eq!(s.mprotect(r, f + 3 * PAGE, PAGE, 0), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 4);
        assert_eq!(s.read(r, f + 3 * PAGE, 1), Err(Errno::EFAULT));
        // The first page of [f+4P, f+6P) joins it (merge left): no split.
        assert_eq!(s.mprotect(r, f + 4 * PAGE, PAGE, 0), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 4);
        assert_eq!(s.read(r, f + 4 * PAGE, 1), Err(Errno::EFAULT));
        assert_eq!(s.read(r, f + 5 * PAGE, 1), Ok(vec![b'v']));
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// Two attaches side by side never merge (different files); a change over
/// both splits each; fork copies every fragment.
#[test]
fn shm_dt_5_mprotect_two_attaches_and_fork() {
    uipc_testkit::conformance!("SHM-DT-5/mprotect-two", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 5 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shmat(r, id, f + 2 * PAGE, 0), Ok(f + 2 * PAGE));
        assert_eq!(s.mprotect(r, f + 2 * PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 3);
        // f+P (first attach, RW) next to f+2P (second attach, now R).
        assert_eq!(s.mprotect(r, f + PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 4);
        let c = s.fork(r);
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 8);
        assert_eq!(s.write(c, f + PAGE, b"c"), Err(Errno::EFAULT));
        assert_eq!(s.mprotect(c, f + PAGE, 2 * PAGE, RW), Ok(()));
        assert_eq!(s.write(c, f + PAGE, b"c"), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 8);
        assert_eq!(s.shmdt(c, f + 2 * PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 6);
        s.exit(c);
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 4);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shmdt(r, f + 2 * PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// The argument checks, in the kernel's order; a failed call changes
/// nothing.
#[test]
fn shm_dt_5_mprotect_errors() {
    uipc_testkit::conformance!("SHM-DT-5/mprotect-errors", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 3 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.mprotect(r, f + 1, PAGE, R), Err(Errno::EINVAL));
        assert_eq!(s.mprotect(r, f + 1, 0, R), Err(Errno::EINVAL));
        assert_eq!(s.mprotect(r, f, 0, 0x10), Ok(()));
        assert_eq!(s.mprotect(r, f, PAGE, 0x10), Err(Errno::EINVAL));
        assert_eq!(s.mprotect(r, f + 2 * PAGE, PAGE, R), Err(Errno::ENOMEM));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.write(r, f, b"still writable"), Ok(()));
        // PROT_SEM (x86) sets no flag: read-only, the same as PROT_READ.
        assert_eq!(s.mprotect(r, f, PAGE, R | 8), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.mprotect(r, f + PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.shmdt(r, f), Ok(()));
    });
}

/// SHM-AT-8: a read-only attach cannot be made writable (`EACCES`);
/// `PROT_EXEC` needs no `SHM_EXEC`. A range that starts in a read-write
/// attach is changed there before the read-only one refuses.
#[test]
fn shm_at_8_mprotect_read_only_attach() {
    uipc_testkit::conformance!("SHM-AT-8/mprotect", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 5 * PAGE);
        let g = f + 2 * PAGE;
        assert_eq!(s.shmat(r, id, g, uipc_abi::SHM_RDONLY), Ok(g));
        assert_eq!(s.mprotect(r, g, 2 * PAGE, RW), Err(Errno::EACCES));
        assert_eq!(s.mprotect(r, g + PAGE, PAGE, 2), Err(Errno::EACCES));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.mprotect(r, g + PAGE, PAGE, R | 4), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.write(r, g, b"no"), Err(Errno::EFAULT));
        // A read-write attach just below, its upper page made read-only.
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.mprotect(r, f + PAGE, PAGE, R), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 4);
        assert_eq!(s.write(r, f + PAGE, b"ro"), Err(Errno::EFAULT));
        assert_eq!(s.mprotect(r, f + PAGE, 2 * PAGE, RW), Err(Errno::EACCES));
        assert_eq!(s.write(r, f + PAGE, b"rw"), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 4);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shmdt(r, g), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}
