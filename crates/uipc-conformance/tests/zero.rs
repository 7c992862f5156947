//! ZERO-1 and ZERO-5 (SPEC 10), for System V shared memory.
#![allow(clippy::unwrap_used)]

use uipc_abi::{IPC_CREAT, IPC_PRIVATE, IPC_RMID, IPC_STAT, SHM_LOCK, SHM_STAT, SHM_STAT_ANY};

const PAGE: u64 = 4096;
const K: i32 = 0x2e0;

/// A new segment reads as zeros over its page-rounded length; a segment
/// created again with a used key or in a used slot never shows old data.
#[test]
fn zero_1_new_segments_are_zero() {
    uipc_testkit::conformance!("ZERO-1", |s| {
        let p = s.root();
        let id = s.shmget(p, K, 5000, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(p, id, 0, 0).unwrap();
        let all = s.read(p, a, 2 * PAGE).unwrap();
        assert!(all.iter().all(|&b| b == 0), "new segment not zero");
        s.note("8192 bytes read as zero");
        for off in [0, 4999, 5000, 2 * PAGE - 8] {
            assert_eq!(s.write(p, a + off, &[0xa5; 8]), Ok(()));
        }
        assert_eq!(s.shmdt(p, a), Ok(()));
        assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
        // Same key.
        let id2 = s.shmget(p, K, 5000, IPC_CREAT | 0o600).unwrap();
        let b = s.shmat(p, id2, 0, 0).unwrap();
        for off in [0, 4999, 5000, 2 * PAGE - 8] {
            assert_eq!(s.read(p, b + off, 8).unwrap(), vec![0; 8]);
        }
        assert_eq!(s.write(p, b, &[0x5a; 16]), Ok(()));
        assert_eq!(s.shmdt(p, b), Ok(()));
        assert_eq!(s.shmctl(p, id2, IPC_RMID), Ok(0));
        // Same slot (index 0 again, seq 1), via the next-id knob.
        s.sysctl_set("kernel.shm_next_id", "32768").unwrap();
        let id3 = s.shmget(p, IPC_PRIVATE, 5000, 0o600).unwrap();
        assert_eq!(id3, 32768);
        let c = s.shmat(p, id3, 0, 0).unwrap();
        assert_eq!(s.read(p, c, 16).unwrap(), vec![0; 16]);
    });
}

/// Padding and unused fields of what *_STAT and IPC_INFO return read 0.
#[test]
fn zero_5_unused_fields() {
    uipc_testkit::conformance!("ZERO-5", |s| {
        let p = s.root();
        let id = s.shmget(p, K, 5000, IPC_CREAT | 0o640).unwrap();
        let a = s.shmat(p, id, 0, 0).unwrap();
        assert_eq!(s.shmctl(p, id, SHM_LOCK), Ok(0));
        assert_eq!(s.shmctl(p, id, IPC_RMID), Ok(0));
        for cmd in [IPC_STAT, SHM_STAT, SHM_STAT_ANY] {
            let (_, ds) = s.shmctl_stat(p, id, cmd).unwrap();
            assert_eq!(ds.unused_or, 0, "cmd {cmd}");
        }
        let (_, info) = s.shm_ipc_info(p, 0).unwrap();
        assert_eq!(info.unused_or, 0);
        assert_eq!(s.shmdt(p, a), Ok(()));
    });
}
