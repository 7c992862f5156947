//! SHM-AT-1..10 (SPEC 2.2): `shmat`.
//!
//! Not covered here: the `mprotect` half of SHM-AT-8 (in shm_mprotect.rs),
//! SHM-AT-7's EINTR (a fatal signal during the mm lock), SHM-AT-5's EIDRM
//! (a race with teardown), SHM-AT-11 (`/proc/<pid>/maps`, a documented gap).
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_PRIVATE, IPC_RMID, SHM_DEST, SHM_RDONLY, SHM_REMAP, SHM_RND};

const PAGE: u64 = 4096;

/// `shmid < 0` → EINVAL.
#[test]
fn shm_at_1_negative_id() {
    uipc_testkit::conformance!("SHM-AT-1", |s| {
        let r = s.root();
        s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmat(r, -1, 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, i32::MIN, 0, SHM_RDONLY), Err(Errno::EINVAL));
    });
}

/// SHM_RND rounds down to SHMLBA; without it an unaligned address is EINVAL.
#[test]
fn shm_at_2_rnd() {
    uipc_testkit::conformance!("SHM-AT-2/rnd", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f + 1, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, id, f + PAGE - 1, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, id, f + PAGE - 1, SHM_RND), Ok(f));
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shmat(r, id, f + PAGE + 1, SHM_RND), Ok(f + PAGE));
        assert_eq!(s.shmdt(r, f + PAGE), Ok(()));
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
    });
}

/// SHM_REMAP needs an address: NULL, or an address SHM_RND rounds to 0, is
/// EINVAL — checked before the lookup and the permission check.
#[test]
fn shm_at_2_remap_needs_address() {
    uipc_testkit::conformance!("SHM-AT-2/remap-null", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let f = s.find_free(u, 2 * PAGE);
        assert_eq!(s.shmat(r, id, 0, SHM_REMAP), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, id, 100, SHM_RND | SHM_REMAP), Err(Errno::EINVAL));
        assert_eq!(s.shmat(u, id, 0, SHM_REMAP), Err(Errno::EINVAL));
        assert_eq!(s.shmat(u, id, f + 1, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(u, id, 0, 0), Err(Errno::EACCES));
        assert_eq!(s.shmat(u, id, f, 0), Err(Errno::EACCES));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// SHM_RND below SHMLBA without SHM_REMAP asks for address 0: root (with
/// CAP_SYS_RAWIO) gets it, a user is refused by mmap_min_addr (EPERM).
/// Host-dependent: needs `vm.mmap_min_addr` > 0.
#[test]
fn shm_at_2_rnd_to_zero() {
    let min_addr = std::fs::read_to_string("/proc/sys/vm/mmap_min_addr").unwrap_or_default();
    if min_addr.trim() == "0" || min_addr.is_empty() {
        eprintln!("SKIP SHM-AT-2/rnd-zero: vm.mmap_min_addr is 0 here");
        return;
    }
    uipc_testkit::conformance!("SHM-AT-2/rnd-zero", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, PAGE, 0o666).unwrap();
        assert_eq!(s.shmat(u, id, 100, SHM_RND), Err(Errno::EPERM));
        assert_eq!(s.shmat(r, id, 100, SHM_RND), Ok(0));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, 0), Ok(()));
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 0);
    });
}

/// Explicit, page-aligned addresses are used as given (MAP_FIXED); two
/// attaches of one segment share memory.
#[test]
fn shm_at_2_explicit_address() {
    uipc_testkit::conformance!("SHM-AT-2/explicit", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shmat(r, id, f + 2 * PAGE, 0), Ok(f + 2 * PAGE));
        assert_eq!(s.write(r, f + PAGE, b"twin"), Ok(()));
        assert_eq!(s.read(r, f + 3 * PAGE, 4).unwrap(), b"twin");
        assert_eq!(s.shm_stat(r, id).unwrap().nattch, 2);
    });
}

/// Lookup: a nonexistent or removed id → EINVAL.
#[test]
fn shm_at_3_lookup() {
    uipc_testkit::conformance!("SHM-AT-3", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmat(r, id + 1, 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, id + (1 << 15), 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        assert_eq!(s.shmat(r, id, 0, 0), Err(Errno::EINVAL));
    });
}

/// Permission → EACCES, and a refused attach changes nothing.
#[test]
fn shm_at_4_permission() {
    uipc_testkit::conformance!("SHM-AT-4", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(r, IPC_PRIVATE, PAGE, 0o604).unwrap();
        assert_eq!(s.shmat(u, id, 0, 0), Err(Errno::EACCES));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid, ds.atime), (0, 0, 0));
        assert!(s.shmat(u, id, 0, SHM_RDONLY).is_ok());
    });
}

/// A segment marked SHM_DEST can still be attached by id.
#[test]
fn shm_at_5_attach_dest() {
    uipc_testkit::conformance!("SHM-AT-5", |s| {
        let r = s.root();
        let id = s.shmget(r, 0x5a7, PAGE, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.write(r, a, b"still here"), Ok(()));
        assert_eq!(s.shmctl(r, id, IPC_RMID), Ok(0));
        let b = s.shmat(r, id, 0, SHM_RDONLY).unwrap();
        assert_eq!(s.read(r, b, 10).unwrap(), b"still here");
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.key, ds.mode, ds.nattch), (0, SHM_DEST | 0o600, 2));
        assert_eq!(s.shmdt(r, a), Ok(()));
        assert_eq!(s.shmdt(r, b), Ok(()));
        assert_eq!(s.shmat(r, id, 0, 0), Err(Errno::EINVAL));
    });
}

/// An explicit address overlapping a mapping → EINVAL; SHM_REMAP replaces
/// the range (the replaced part of the old attach is unmapped).
#[test]
fn shm_at_6_overlap_and_remap() {
    uipc_testkit::conformance!("SHM-AT-6/overlap", |s| {
        let r = s.root();
        let a = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let b = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, a, f, 0), Ok(f));
        assert_eq!(s.shmat(r, b, f + PAGE, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, b, f + PAGE, SHM_RND), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(r, b).unwrap().nattch, 0);
        assert_eq!(s.write(r, f + PAGE, b"A"), Ok(()));
        assert_eq!(s.shmat(r, b, f + PAGE, SHM_REMAP), Ok(f + PAGE));
        assert_eq!(s.read(r, f + PAGE, 1).unwrap(), vec![0]);
        // a's attach lost its tail (a trim, not a split): still one mapping.
        assert_eq!(s.shm_stat(r, a).unwrap().nattch, 1);
        assert_eq!(s.shm_stat(r, b).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, f), Ok(()));
        assert_eq!(s.shm_stat(r, a).unwrap().nattch, 0);
        assert_eq!(s.shm_stat(r, b).unwrap().nattch, 1);
        assert_eq!(s.shmdt(r, f + PAGE), Ok(()));
        assert_eq!(s.shm_stat(r, b).unwrap().nattch, 0);
    });
}

/// Wrap-around of `addr + segsz` → EINVAL (without SHM_REMAP); an address
/// the mmap layer refuses → ENOMEM (SHM-AT-7). The wrap test uses segsz,
/// not the page-rounded size.
#[test]
fn shm_at_6_wrap() {
    uipc_testkit::conformance!("SHM-AT-6/wrap", |s| {
        let r = s.root();
        let page = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let small = s.shmget(r, IPC_PRIVATE, 100, 0o600).unwrap();
        let top = u64::MAX - PAGE + 1;
        assert_eq!(s.shmat(r, page, top, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmat(r, page, top, SHM_REMAP), Err(Errno::ENOMEM));
        assert_eq!(s.shmat(r, small, top, 0), Err(Errno::ENOMEM));
        assert_eq!(s.shm_stat(r, page).unwrap().nattch, 0);
    });
}

/// mmap failure is returned as is: an address beyond the user address
/// space → ENOMEM, and the segment is unchanged.
#[test]
fn shm_at_7_mmap_failure() {
    uipc_testkit::conformance!("SHM-AT-7", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmat(r, id, 1 << 60, 0), Err(Errno::ENOMEM));
        assert_eq!(s.shmat(r, id, 1 << 60, SHM_REMAP), Err(Errno::ENOMEM));
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.nattch, ds.atime, ds.lpid), (0, 0, 0));
    });
}

/// The mapping covers whole pages: bytes past segsz up to the page end are
/// accessible and shared; the next page is not mapped. SHM_RDONLY mappings
/// refuse writes.
#[test]
fn shm_at_8_page_rounding_and_rdonly() {
    uipc_testkit::conformance!("SHM-AT-8", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 100, 0o600).unwrap();
        let f = s.find_free(r, 4 * PAGE);
        assert_eq!(s.shmat(r, id, f, 0), Ok(f));
        assert_eq!(s.shmat(r, id, f + 2 * PAGE, SHM_RDONLY), Ok(f + 2 * PAGE));
        assert_eq!(s.write(r, f + 100, b"past segsz"), Ok(()));
        assert_eq!(s.write(r, f + PAGE - 2, b"ok"), Ok(()));
        assert_eq!(s.read(r, f + 2 * PAGE + 100, 10).unwrap(), b"past segsz");
        assert_eq!(s.read(r, f + 3 * PAGE - 2, 2).unwrap(), b"ok");
        assert_eq!(s.write(r, f + PAGE, b"x"), Err(Errno::EFAULT));
        assert_eq!(s.read(r, f + PAGE, 1), Err(Errno::EFAULT));
        assert_eq!(s.write(r, f + 2 * PAGE, b"x"), Err(Errno::EFAULT));
        assert_eq!(s.read(r, f + 2 * PAGE, 1).unwrap(), vec![0]);
        assert_eq!(s.shm_stat(r, id).unwrap().segsz, 100);
    });
}

/// Success: nattch += 1, atime = now, lpid = caller; one segment attached
/// several times, read-only and read-write, by several processes.
#[test]
fn shm_at_9_accounting() {
    uipc_testkit::conformance!("SHM-AT-9", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let stranger = s.user(1001, 1001);
        let id = s.shmget(u, 0x5a9, PAGE, IPC_CREAT | 0o644).unwrap();
        let a = s.shmat(u, id, 0, 0).unwrap();
        let ds = s.shm_stat(u, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (1, i32::try_from(s.pid(u)).unwrap()));
        assert_ne!(ds.atime, 0);
        let b = s.shmat(r, id, 0, SHM_RDONLY).unwrap();
        let c = s.shmat(u, id, 0, 0).unwrap();
        assert_ne!(a, c);
        let ds = s.shm_stat(u, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (3, i32::try_from(s.pid(u)).unwrap()));
        assert_eq!(s.write(u, a, b"hello"), Ok(()));
        assert_eq!(s.read(r, b, 5).unwrap(), b"hello");
        assert_eq!(s.read(u, c, 5).unwrap(), b"hello");
        assert_eq!(s.shmat(stranger, id, 0, 0), Err(Errno::EACCES));
        assert_eq!(s.shm_stat(u, id).unwrap().lpid, i32::try_from(s.pid(u)).unwrap());
        let d = s.shmat(stranger, id, 0, SHM_RDONLY).unwrap();
        assert_eq!(s.shm_stat(u, id).unwrap().lpid, i32::try_from(s.pid(stranger)).unwrap());
        for (p, at) in [(u, a), (r, b), (u, c), (stranger, d)] {
            assert_eq!(s.shmdt(p, at), Ok(()));
        }
        let ds = s.shm_stat(u, id).unwrap();
        assert_eq!((ds.nattch, ds.lpid), (0, i32::try_from(s.pid(stranger)).unwrap()));
    });
}

/// A shmat failing after the lookup drops its transient attach; with
/// `shm_rmid_forced` = 1 that destroys a never-attached segment. A failure
/// before the attach count is raised (EACCES) does not.
#[test]
fn shm_at_10_failed_attach_destroys() {
    uipc_testkit::conformance!("SHM-AT-10", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        s.sysctl_set("kernel.shm_rmid_forced", "1").unwrap();
        let a = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let b = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        let c = s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        // Never attached, creator alive: they survive.
        assert_eq!(s.shm_info(r, 0).unwrap().1.used_ids, 3);
        assert_eq!(s.shmat(u, a, 0, 0), Err(Errno::EACCES));
        assert_eq!(s.shm_stat(r, a).unwrap().nattch, 0);
        assert_eq!(s.shmat(r, b, 1 << 60, 0), Err(Errno::ENOMEM));
        assert_eq!(s.shm_stat(r, b).map(drop), Err(Errno::EINVAL));
        let f = s.find_free(r, 2 * PAGE);
        assert_eq!(s.shmat(r, a, f, 0), Ok(f));
        assert_eq!(s.shmat(r, c, f, 0), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(r, c).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(r, a).unwrap().nattch, 1);
    });
}
