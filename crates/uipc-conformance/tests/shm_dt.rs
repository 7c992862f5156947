//! SHM-DT-1..5 (SPEC 2.3): `shmdt`, fragments made by `munmap`, and nattch
//! counting mappings.
//!
//! Not covered: mremap moving an attach (SHM-DT-5) — the kit has no mremap.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_PRIVATE, IPC_RMID, SHM_DEST};

const PAGE: u64 = 4096;

/// An address that is not page aligned → EINVAL.
#[test]
fn shm_dt_1_unaligned() {
    uipc_testkit::conformance!("SHM-DT-1", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shmdt(r, f + 1), Err(Errno::EINVAL));
        assert_eq!(s.shmdt(r, f + 2048), Err(Errno::EINVAL));
        assert_eq!(s.shmdt(r, f + PAGE - 1), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, f), Ok(()));
    });
}

/// Only the start of an attach (offset relation) matches: the middle of an
/// attach, an unattached address, NULL → EINVAL; a second shmdt → EINVAL.
#[test]
fn shm_dt_2_no_match() {
    uipc_testkit::conformance!("SHM-DT-2", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shmdt(r, f + PAGE), Err(Errno::EINVAL));
        assert_eq!(s.shmdt(r, f + 2 * PAGE), Err(Errno::EINVAL));
        assert_eq!(s.shmdt(r, f + 3 * PAGE), Err(Errno::EINVAL));
        assert_eq!(s.shmdt(r, 0), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shmdt(r, f), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// The first mapping at/after the address whose offset fits is the one
/// detached, even if it belongs to another segment than the one that was
/// there first; its segment's size bounds the search for more fragments.
#[test]
fn shm_dt_2_first_match_wins() {
    uipc_testkit::conformance!("SHM-DT-2/first-match", |s| {
        let r = s.root();
        let big = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let small = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, big, f, 0), Ok(f));
        assert_eq!(s.munmap(r, f, PAGE), Ok(()));
        assert_eq!(s.shmat(r, small, f, 0), Ok(f));
        // f: small (offset 0); f+PAGE..f+3*PAGE: big's fragment (offset 1).
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, small).unwrap().nattch, 0);
        assert_eq!(s.shm_stat(r, big).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, big).unwrap().nattch, 0);
    });
}

/// Two adjacent attaches of one segment: shmdt detaches only the one that
/// starts at the address.
#[test]
fn shm_dt_2_adjacent_attaches() {
    uipc_testkit::conformance!("SHM-DT-2/adjacent", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shmat(r, id, f + 2 * PAGE, 0), Ok(f + 2 * PAGE));
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.read(r, f + 2 * PAGE, 1).unwrap(), vec![0]);
        assert_eq!(s.read(r, f, 1), Err(Errno::EFAULT));
    });
}

/// One shmdt removes every fragment of a split attach.
#[test]
fn shm_dt_3_split() {
    uipc_testkit::conformance!("SHM-DT-3/split", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.munmap(r, f + PAGE, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
        assert_eq!(s.read(r, f + 2 * PAGE, 1), Err(Errno::EFAULT));
    });
}

/// With its first page unmapped, an attach is still found by its start
/// address (the remaining fragment's offset fits).
#[test]
fn shm_dt_3_first_page_gone() {
    uipc_testkit::conformance!("SHM-DT-3/first-page-gone", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.munmap(r, f, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, f + PAGE), Err(Errno::EINVAL));
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// After a complete munmap of the attach, shmdt → EINVAL.
#[test]
fn shm_dt_3_full_munmap() {
    uipc_testkit::conformance!("SHM-DT-3/full-munmap", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.munmap(r, f, 3 * PAGE), Ok(()));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!(ds.nattch, 0);
        assert_ne!(ds.dtime, 0);
        assert_eq!(s.shmdt(r, f), Err(Errno::EINVAL));
    });
}

/// Every removed fragment sets lpid and dtime and lowers nattch; the last
/// one destroys a SHM_DEST segment.
#[test]
fn shm_dt_4_fragment_accounting() {
    uipc_testkit::conformance!("SHM-DT-4", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o666).unwrap();
        let f = s.find_free(u, 4 * PAGE);
        assert_eq!(s.shmat(u, id, f, 0), Ok(f));
        assert_eq!(s.munmap(u, f + PAGE, PAGE), Ok(()));
        // The hole is a removed fragment: dtime is set, nattch still rises.
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (2, i32::try_from(s.pid(u)).unwrap()));
        assert_ne!(ds.dtime, 0);
        let g = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shmdt(r, g), Ok(()));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.nattch, ds.mode), (2, SHM_DEST | 0o666));
        assert_eq!(ds.lpid, i32::try_from(s.pid(r)).unwrap());
        assert_eq!(s.munmap(u, f + 2 * PAGE, PAGE), Ok(()));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (1, i32::try_from(s.pid(u)).unwrap()));
        assert_ne!(ds.dtime, 0);
        assert_eq!(s.shmdt(u, f), Ok(()));
        assert_eq!(s.shm_stat(r, id).map(drop), Err(Errno::EINVAL));
    });
}

/// nattch counts mappings: a hole adds one, removing a fragment or a whole
/// attach removes one, trimming an end changes nothing.
#[test]
fn shm_dt_5_nattch_counts_mappings() {
    uipc_testkit::conformance!("SHM-DT-5", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.munmap(r, f + PAGE, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.munmap(r, f + 2 * PAGE, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        // A second attach: trimming its tail or its head adds nothing.
        let g = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, g, 0), Ok(g));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.munmap(r, g + 2 * PAGE, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        assert_eq!(s.munmap(r, g, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
        // Unmapping a whole fragment removes one mapping each.
        assert_eq!(s.munmap(r, f, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.munmap(r, g + PAGE, PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}
