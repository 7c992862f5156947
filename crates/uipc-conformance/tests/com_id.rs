//! COM-ID-1..8 (SPEC 1.1): keys, identifiers and their generation, driven
//! through System V shared memory (and semaphores for COM-ID-4).
//!
//! Not covered: message queues in COM-ID-4 (not implemented yet); the
//! natural wrap of `seq` at 65535 needs 65535 × 64 creations (the
//! `*_next_id` knob sets an object's seq, never the type's counter).
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_CREAT, IPC_EXCL, IPC_PRIVATE, IPC_RMID, SHM_STAT, SHM_STAT_ANY};

const RW: i32 = 0o600;
const K: i32 = 0x1d00;

/// Key 0 always creates and is never found; any other key, negative ones
/// included, names one object.
#[test]
fn com_id_1_keys() {
    uipc_testkit::conformance!("COM-ID-1", |s| {
        let p = s.root();
        let a = s.shmget(p, IPC_PRIVATE, 4096, RW).unwrap();
        let b = s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | RW).unwrap();
        assert_ne!(a, b);
        // IPC_PRIVATE is never looked up: size 0 is a creation, hence EINVAL.
        assert_eq!(s.shmget(p, IPC_PRIVATE, 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, a).unwrap().key, 0);
        // Negative and extreme keys are ordinary keys.
        for key in [-5, i32::MIN, i32::MAX] {
            let id = s.shmget(p, key, 4096, IPC_CREAT | RW).unwrap();
            assert_eq!(s.shmget(p, key, 0, 0), Ok(id));
            assert_eq!(s.shm_stat(p, id).unwrap().key, key);
        }
        assert_eq!(s.shmget(p, K, 0, 0), Err(Errno::ENOENT));
    });
}

/// `id = seq << 15 | idx`; ids are non-negative.
#[test]
fn com_id_2_layout() {
    uipc_testkit::conformance!("COM-ID-2", |s| {
        let p = s.root();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(0));
        s.sysctl_set("kernel.shm_next_id", &((3 << 15) | 7).to_string()).unwrap();
        let id = s.shmget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!(id, (3 << 15) | 7);
        assert_eq!(id % 32768, 7);
        assert_eq!(s.shm_stat(p, id).unwrap().seq, 3);
        // The largest seq of the SPEC's range.
        let big = (65534 << 15) | 9;
        s.sysctl_set("kernel.shm_next_id", &big.to_string()).unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(big));
        assert_eq!(s.shm_stat(p, big).unwrap().seq, 65534);
    });
}

/// The knob reaches one seq beyond the cyclic counter's range: INT_MAX is
/// idx 32767 with seq 65535 (see docs/spec-errata.md).
#[test]
fn com_id_2_next_id_int_max() {
    uipc_testkit::conformance!("COM-ID-2/int-max", |s| {
        let p = s.root();
        s.sysctl_set("kernel.shm_next_id", &i32::MAX.to_string()).unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(i32::MAX));
        assert_eq!(s.shm_stat(p, i32::MAX).unwrap().seq, 65535);
        assert_eq!(s.shmctl_stat(p, 32767, SHM_STAT).unwrap().0, i64::from(i32::MAX));
    });
}

/// A freed slot is not reused immediately: allocation continues after the
/// last allocated index.
#[test]
fn com_id_3_no_immediate_reuse() {
    uipc_testkit::conformance!("COM-ID-3/no-reuse", |s| {
        let p = s.root();
        for want in 0..5 {
            assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(want));
        }
        assert_eq!(s.shmctl(p, 1, IPC_RMID), Ok(0));
        assert_eq!(s.shmctl(p, 3, IPC_RMID), Ok(0));
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(5));
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(6));
    });
}

/// With few objects alive the cursor runs to index 63, then wraps to the
/// lowest free index and bumps seq.
#[test]
fn com_id_3_wrap() {
    uipc_testkit::conformance!("COM-ID-3/wrap", |s| {
        let p = s.root();
        let a = s.shmget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!(a, 0);
        for want in 1..64 {
            let id = s.shmget(p, IPC_PRIVATE, 1, RW).unwrap();
            assert_eq!(id, want);
            assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
        }
        // idx 0 is held by `a`: idx 1, seq 1.
        let b = s.shmget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!(b, (1 << 15) | 1);
        assert_eq!(s.shm_stat(p, b).unwrap().seq, 1);
        assert_eq!(s.shm_stat(p, a).unwrap().seq, 0);
        // No wrap this time: seq stays 1, the freed idx 0 is skipped.
        assert_eq!(s.shmctl(p, a, IPC_RMID), Ok(0));
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok((1 << 15) | 2));
    });
}

/// `max_idx = max(in_use * 3 / 2, 64)`: with 44 objects the cursor may pass
/// 63, with 43 it wraps at 64.
#[test]
fn com_id_3_max_idx() {
    uipc_testkit::conformance!("COM-ID-3/max-idx", |s| {
        let p = s.root();
        for want in 0..64 {
            assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(want));
        }
        for id in 0..20 {
            assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
        }
        // 44 in use → max_idx 66.
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(64));
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(65));
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(66));
        for id in [20, 64, 65, 66] {
            assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
        }
        // 43 in use (21..=63) → max_idx 64, cursor 67 → wrap to idx 0, seq 1.
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(1 << 15));
    });
}

/// An empty slot or a slot holding another seq gives EINVAL, never EIDRM.
#[test]
fn com_id_5_stale_id() {
    uipc_testkit::conformance!("COM-ID-5", |s| {
        let p = s.root();
        let a = s.shmget(p, IPC_PRIVATE, 4096, RW).unwrap();
        assert_eq!(s.shmctl(p, a, IPC_RMID), Ok(0));
        assert_eq!(s.shmat(p, a, 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, a).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(p, a, IPC_RMID), Err(Errno::EINVAL));
        assert_eq!(s.shmctl_set(p, a, 0, 0, 0o600), Err(Errno::EINVAL));
        // Slot 0 again, with seq 1.
        s.sysctl_set("kernel.shm_next_id", "32768").unwrap();
        let b = s.shmget(p, IPC_PRIVATE, 4096, RW).unwrap();
        assert_eq!(b, 32768);
        assert_eq!(s.shm_stat(p, 0).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shm_stat(p, 65536).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmat(p, 0, 0, 0), Err(Errno::EINVAL));
        assert_eq!(s.shmctl(p, 0, IPC_RMID), Err(Errno::EINVAL));
        // The *_STAT commands take the index and do not check seq.
        assert_eq!(s.shmctl_stat(p, 0, SHM_STAT).unwrap().0, 32768);
        assert_eq!(s.shm_stat(p, b).unwrap().seq, 1);
    });
}

/// `kernel.shm_next_id`: default -1, one-shot, first free idx ≥ the request,
/// consumed only by a creation that reaches the id allocation.
#[test]
fn com_id_6_next_id() {
    uipc_testkit::conformance!("COM-ID-6", |s| {
        let p = s.root();
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "-1");
        s.sysctl_set("kernel.shm_next_id", "98310").unwrap();
        // A creation failing its size check does not consume the request…
        assert_eq!(s.shmget(p, IPC_PRIVATE, 0, RW), Err(Errno::EINVAL));
        // …nor does a lookup of an existing key.
        assert_eq!(s.shmget(p, K, 0, 0), Err(Errno::ENOENT));
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "98310");
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(98310));
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "-1");
        // The cyclic allocator did not move: the next creation gets id 0.
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(0));
        // idx 6 is taken (by 98310): the first free index above it.
        s.sysctl_set("kernel.shm_next_id", "6").unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(7));
        s.sysctl_set("kernel.shm_next_id", &((1 << 15) | 6).to_string()).unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok((1 << 15) | 8));
        // Back to the cursor, which stands after idx 0.
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(1));
    });
}

/// A full slot table (ENOSPC) does not consume the request either.
#[test]
fn com_id_6_next_id_enospc() {
    uipc_testkit::conformance!("COM-ID-6/enospc", |s| {
        let p = s.root();
        s.sysctl_set("kernel.shmmni", "1").unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(0));
        s.sysctl_set("kernel.shm_next_id", "40").unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Err(Errno::ENOSPC));
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "40");
        s.sysctl_set("kernel.shmmni", "2").unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, RW), Ok(40));
    });
}

/// `ipc_perm.__seq` reports the object's seq, through every stat command.
#[test]
fn com_id_7_seq_field() {
    uipc_testkit::conformance!("COM-ID-7", |s| {
        let p = s.root();
        let a = s.shmget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!(s.shm_stat(p, a).unwrap().seq, 0);
        s.sysctl_set("kernel.shm_next_id", &((5 << 15) | 2).to_string()).unwrap();
        let b = s.shmget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!(s.shm_stat(p, b).unwrap().seq, 5);
        let (ret, ds) = s.shmctl_stat(p, 2, SHM_STAT).unwrap();
        assert_eq!((ret, ds.seq), (i64::from(b), 5));
        let (ret, ds) = s.shmctl_stat(p, 2, SHM_STAT_ANY).unwrap();
        assert_eq!((ret, ds.seq), (i64::from(b), 5));
    });
}

/// After IPC_RMID of an attached segment the key resolves to nothing and a
/// new creation takes the next index.
#[test]
fn com_id_8_key_reuse() {
    uipc_testkit::conformance!("COM-ID-8", |s| {
        let p = s.root();
        let k = s.shmget(p, K, 4096, IPC_CREAT | RW).unwrap();
        let a = s.shmat(p, k, 0, 0).unwrap();
        assert_eq!(s.shmctl(p, k, IPC_RMID), Ok(0));
        assert_eq!(s.shmget(p, K, 0, 0), Err(Errno::ENOENT));
        let k2 = s.shmget(p, K, 4096, IPC_CREAT | IPC_EXCL | RW).unwrap();
        assert_eq!((k, k2), (0, 1));
        assert_eq!(s.shm_stat(p, k).unwrap().key, 0);
        assert_eq!(s.shm_stat(p, k2).unwrap().key, K);
        assert_eq!(s.shmdt(p, a), Ok(()));
        assert_eq!(s.shm_stat(p, k).map(drop), Err(Errno::EINVAL));
        assert_eq!(s.shmget(p, K, 0, 0), Ok(k2));
        // Unattached: destroyed at once; the key is free, the slot is not reused.
        assert_eq!(s.shmctl(p, k2, IPC_RMID), Ok(0));
        assert_eq!(s.shmget(p, K, 0, 0), Err(Errno::ENOENT));
        assert_eq!(s.shmget(p, K, 4096, IPC_CREAT | RW), Ok(2));
    });
}

/// COM-ID-4: shm and sem have independent id spaces, cursors and seq
/// counters: the same number names a segment and a set at once, and
/// removing one leaves the other (message queues join when they exist).
#[test]
fn com_id_4_independent_id_spaces() {
    uipc_testkit::conformance!("COM-ID-4", |s| {
        let p = s.root();
        let shm = s.shmget(p, IPC_PRIVATE, 4096, RW).unwrap();
        let sem = s.semget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!((shm, sem), (0, 0));
        // Moving one type's cursor does not move the other's.
        let shm2 = s.shmget(p, IPC_PRIVATE, 4096, RW).unwrap();
        let sem2 = s.semget(p, IPC_PRIVATE, 1, RW).unwrap();
        assert_eq!((shm2, sem2), (1, 1));
        s.shmctl(p, shm, IPC_RMID).unwrap();
        assert_eq!(s.sem_stat(p, sem).unwrap().nsems, 1);
        // The same key names one object of each type.
        let k = s.shmget(p, K, 4096, IPC_CREAT | RW).unwrap();
        let ks = s.semget(p, K, 2, IPC_CREAT | RW).unwrap();
        assert_eq!(s.shm_stat(p, k).unwrap().key, K);
        assert_eq!(s.sem_stat(p, ks).unwrap().key, K);
        assert_eq!(s.semctl(p, sem2, 0, IPC_RMID), Ok(0));
        assert_eq!(s.shm_stat(p, shm2).unwrap().segsz, 4096);
    });
}
