//! SHM-GET-1..8 (SPEC 2.1): `shmget` creation checks, limits and the
//! initial state of a segment.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_EXCL, IPC_PRIVATE, IPC_RMID, SHM_HUGETLB, SHM_NORESERVE};
use uipc_testkit::Identity;

const PAGE: u64 = 4096;
const K: i32 = 0x5e7;
/// The default `kernel.shmmax` and `kernel.shmall` (ULONG_MAX − 2^24).
const SHMMAX_DEFAULT: u64 = 18_446_744_073_692_774_399;
const HUGE_2M: u64 = 2 << 20;

/// A host-wide fact the hugetlb tests depend on (the pool and the group
/// are not per namespace).
fn host(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
}

/// `size < 1` or `size > shmmax` → EINVAL.
#[test]
fn shm_get_1_size_bounds() {
    uipc_testkit::conformance!("SHM-GET-1", |s| {
        let r = s.root();
        assert_eq!(s.shmget(r, IPC_PRIVATE, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, K, 0, IPC_CREAT | 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, K, 0, 0), Err(Errno::ENOENT));
        let one = s.shmget(r, IPC_PRIVATE, 1, 0o600).unwrap();
        assert_eq!(s.shm_stat(r, one).unwrap().segsz, 1);
        assert_eq!(s.shmget(r, IPC_PRIVATE, SHMMAX_DEFAULT + 1, 0o600), Err(Errno::EINVAL));
        s.sysctl_set("kernel.shmmax", "8192").unwrap();
        assert!(s.shmget(r, IPC_PRIVATE, 8192, 0o600).is_ok());
        assert_eq!(s.shmget(r, IPC_PRIVATE, 8193, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, K, 8193, IPC_CREAT | 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, IPC_PRIVATE, u64::MAX, 0o600), Err(Errno::EINVAL));
        s.sysctl_set("kernel.shmmax", "0").unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, 1, 0o600), Err(Errno::EINVAL));
    });
}

/// `shm_tot + pages > shmall` → ENOSPC (shmall counts pages); page-rounding
/// overflow → ENOSPC.
#[test]
fn shm_get_2_shmall() {
    uipc_testkit::conformance!("SHM-GET-2", |s| {
        let r = s.root();
        s.sysctl_set("kernel.shmall", "4").unwrap();
        let a = s.shmget(r, IPC_PRIVATE, 2 * PAGE, 0o600).unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, 2 * PAGE + 1, 0o600), Err(Errno::ENOSPC));
        assert!(s.shmget(r, IPC_PRIVATE, PAGE + 1, 0o600).is_ok());
        assert_eq!(s.shmget(r, IPC_PRIVATE, 1, 0o600), Err(Errno::ENOSPC));
        // The size check comes first.
        assert_eq!(s.shmget(r, IPC_PRIVATE, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_tot, 4);
        assert_eq!(s.shmctl(r, a, IPC_RMID), Ok(0));
        assert!(s.shmget(r, IPC_PRIVATE, 1, 0o600).is_ok());
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_tot, 3);
        s.sysctl_set("kernel.shmall", "0").unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, 1, 0o600), Err(Errno::ENOSPC));
        // ceil(size / PAGE) overflows only when shmmax allows such a size.
        s.sysctl_set("kernel.shmall", &SHMMAX_DEFAULT.to_string()).unwrap();
        s.sysctl_set("kernel.shmmax", &u64::MAX.to_string()).unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, u64::MAX, 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.shmget(r, IPC_PRIVATE, u64::MAX - PAGE + 2, 0o600), Err(Errno::ENOSPC));
    });
}

/// SHM_HUGETLB: an unsupported page size (log2 in bits 26..31) is EINVAL,
/// and it is checked before the hugetlb permission and pool.
#[test]
fn shm_get_3_hugetlb_bad_size() {
    uipc_testkit::conformance!("SHM-GET-3/bad-size", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        for p in [r, u] {
            assert_eq!(s.shmget(p, IPC_PRIVATE, HUGE_2M, SHM_HUGETLB | (25 << 26) | 0o600), Err(Errno::EINVAL));
            assert_eq!(s.shmget(p, IPC_PRIVATE, HUGE_2M, SHM_HUGETLB | (12 << 26) | 0o600), Err(Errno::EINVAL));
            // Size is checked before the huge page size.
            assert_eq!(s.shmget(p, IPC_PRIVATE, 0, SHM_HUGETLB | (25 << 26) | 0o600), Err(Errno::EINVAL));
        }
    });
}

/// SHM_HUGETLB permission and pool: without CAP_IPC_LOCK and outside
/// `vm.hugetlb_shm_group` → EPERM; allowed but no huge pages → ENOMEM.
/// Host-dependent (the pool and the group are global): runs only with
/// `vm.nr_hugepages` = 0 and `vm.hugetlb_shm_group` = 0, as on the
/// reference machine.
#[test]
fn shm_get_3_hugetlb_perm_and_pool() {
    if host("/proc/sys/vm/nr_hugepages") != "0" || host("/proc/sys/vm/hugetlb_shm_group") != "0" {
        eprintln!("SKIP SHM-GET-3/perm: host has huge pages or a hugetlb_shm_group");
        return;
    }
    uipc_testkit::conformance!("SHM-GET-3/perm", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let in_group = s.spawn(Identity::user(1000, 1000).with_groups(&[0]));
        let no_lock = s.spawn(Identity::root().without_caps(&[uipc_testkit::op::cap::IPC_LOCK]));
        for flags in [SHM_HUGETLB, SHM_HUGETLB | (21 << 26), SHM_HUGETLB | (30 << 26)] {
            assert_eq!(s.shmget(r, IPC_PRIVATE, HUGE_2M, flags | 0o600), Err(Errno::ENOMEM));
            assert_eq!(s.shmget(u, IPC_PRIVATE, HUGE_2M, flags | 0o600), Err(Errno::EPERM));
        }
        // Group 0 is vm.hugetlb_shm_group: membership replaces CAP_IPC_LOCK.
        assert_eq!(s.shmget(in_group, IPC_PRIVATE, HUGE_2M, SHM_HUGETLB | 0o600), Err(Errno::ENOMEM));
        assert_eq!(s.shmget(no_lock, IPC_PRIVATE, HUGE_2M, SHM_HUGETLB | 0o600), Err(Errno::ENOMEM));
        // Nothing was created.
        assert_eq!(s.shm_info(r, 0).unwrap().1.used_ids, 0);
    });
}

/// SHM_NORESERVE has no visible effect.
#[test]
fn shm_get_4_noreserve() {
    uipc_testkit::conformance!("SHM-GET-4", |s| {
        let r = s.root();
        let id = s.shmget(r, IPC_PRIVATE, 3 * PAGE, SHM_NORESERVE | 0o600).unwrap();
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.mode, ds.segsz), (0o600, 3 * PAGE));
        let a = s.shmat(r, id, 0, 0).unwrap();
        assert_eq!(s.write(r, a + 2 * PAGE, b"ok"), Ok(()));
        assert_eq!(s.read(r, a + 2 * PAGE, 2).unwrap(), b"ok");
        assert_eq!(s.shm_info(r, 0).unwrap().1.shm_tot, 3);
    });
}

/// A size the backing file cannot have (above `MAX_LFS_FILESIZE` = i64::MAX)
/// is EINVAL from the shmem layer once shmmax allows it (SPEC omits this;
/// see docs/spec-errata.md).
#[test]
fn shm_get_5_file_size_limit() {
    uipc_testkit::conformance!("SHM-GET-5/lfs", |s| {
        let r = s.root();
        s.sysctl_set("kernel.shmmax", &u64::MAX.to_string()).unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, u64::MAX - PAGE + 1, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, IPC_PRIVATE, 1 << 63, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shm_info(r, 0).unwrap().1.used_ids, 0);
    });
}

/// The slot limit: `in_use >= shmmni` → ENOSPC, checked after the size
/// checks; lowering shmmni removes nothing; lookups are unaffected.
#[test]
fn shm_get_6_shmmni() {
    uipc_testkit::conformance!("SHM-GET-6", |s| {
        let r = s.root();
        s.sysctl_set("kernel.shmmni", "3").unwrap();
        let a = s.shmget(r, K, PAGE, IPC_CREAT | 0o600).unwrap();
        s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, PAGE, 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.shmget(r, K + 1, PAGE, IPC_CREAT | 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.shmget(r, IPC_PRIVATE, 0, 0o600), Err(Errno::EINVAL));
        assert_eq!(s.shmget(r, K, 0, IPC_CREAT | 0o600), Ok(a));
        assert_eq!(s.shmget(r, K, 0, IPC_CREAT | IPC_EXCL | 0o600), Err(Errno::EEXIST));
        // hugetlb's own EINVAL also precedes the slot limit.
        assert_eq!(s.shmget(r, IPC_PRIVATE, HUGE_2M, SHM_HUGETLB | (25 << 26) | 0o600), Err(Errno::EINVAL));
        s.sysctl_set("kernel.shmmax", "4096").unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, 8192, 0o600), Err(Errno::EINVAL));
        s.sysctl_set("kernel.shmmni", "1").unwrap();
        assert_eq!(s.shm_info(r, 0).unwrap().1.used_ids, 3);
        assert_eq!(s.shmctl(r, a, IPC_RMID), Ok(0));
        assert_eq!(s.shmget(r, IPC_PRIVATE, PAGE, 0o600), Err(Errno::ENOSPC));
        s.sysctl_set("kernel.shmmni", "0").unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, PAGE, 0o600), Err(Errno::ENOSPC));
        s.sysctl_set("kernel.shmmni", "3").unwrap();
        assert!(s.shmget(r, IPC_PRIVATE, PAGE, 0o600).is_ok());
        assert_eq!(s.shmget(r, IPC_PRIVATE, PAGE, 0o600), Err(Errno::ENOSPC));
    });
}

/// The hugetlb pool check (ENOMEM) also precedes the slot limit.
#[test]
fn shm_get_6_hugetlb_before_slot_limit() {
    if host("/proc/sys/vm/nr_hugepages") != "0" {
        eprintln!("SKIP SHM-GET-6/hugetlb: host has huge pages");
        return;
    }
    uipc_testkit::conformance!("SHM-GET-6/hugetlb", |s| {
        let r = s.root();
        s.sysctl_set("kernel.shmmni", "1").unwrap();
        s.shmget(r, IPC_PRIVATE, PAGE, 0o600).unwrap();
        assert_eq!(s.shmget(r, IPC_PRIVATE, PAGE, 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.shmget(r, IPC_PRIVATE, HUGE_2M, SHM_HUGETLB | 0o600), Err(Errno::ENOMEM));
    });
}

/// Initial state: mode, segsz as requested, nattch/lpid/atime/dtime 0,
/// ctime now, cpid the creator, contents zero, shm_tot counts pages.
#[test]
fn shm_get_7_initial_state() {
    uipc_testkit::conformance!("SHM-GET-7", |s| {
        let r = s.root();
        let u = s.user(1000, 1000);
        let id = s.shmget(u, K, 5000, IPC_CREAT | 0o640).unwrap();
        let ds = s.shm_stat(r, id).unwrap();
        assert_eq!((ds.key, ds.mode, ds.segsz, ds.nattch, ds.lpid), (K, 0o640, 5000, 0, 0));
        assert_eq!((ds.atime, ds.dtime), (0, 0));
        assert_ne!(ds.ctime, 0);
        assert_eq!(ds.cpid, i32::try_from(s.pid(u)).unwrap());
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid), (1000, 1000, 1000, 1000));
        let (_, info) = s.shm_info(r, 0).unwrap();
        assert_eq!((info.used_ids, info.shm_tot), (1, 2));
        let a = s.shmat(u, id, 0, 0).unwrap();
        assert_eq!(s.read(u, a, 16).unwrap(), vec![0; 16]);
        assert_eq!(s.read(u, a + 4990, 20).unwrap(), vec![0; 20]);
        assert_eq!(s.read(u, a + 2 * PAGE - 16, 16).unwrap(), vec![0; 16]);
    });
}

/// Every other bit of shmflg is ignored; SHM_DEST/SHM_LOCKED never come from
/// it (their values are IPC_CREAT/IPC_EXCL).
#[test]
fn shm_get_8_other_bits_ignored() {
    uipc_testkit::conformance!("SHM-GET-8", |s| {
        let r = s.root();
        let a = s.shmget(r, K, PAGE, IPC_CREAT | IPC_EXCL | 0o777).unwrap();
        assert_eq!(s.shm_stat(r, a).unwrap().mode, 0o777);
        let junk = 0o20000 | 0o40000 | 0o100000 | 0o200000 | (25 << 26);
        let b = s.shmget(r, IPC_PRIVATE, PAGE, junk | 0o600).unwrap();
        assert_eq!(s.shm_stat(r, b).unwrap().mode, 0o600);
        let c = s.shmget(r, IPC_PRIVATE, PAGE, i32::MIN | 0o640).unwrap();
        assert_eq!(s.shm_stat(r, c).unwrap().mode, 0o640);
    });
}
