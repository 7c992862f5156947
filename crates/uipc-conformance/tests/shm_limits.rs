//! SPEC section 7, the shm rows: per-namespace defaults and the values each
//! sysctl accepts. The section carries no identifiers; these tests use
//! `LIMITS/…`.
#![allow(clippy::unwrap_used)]

use uipc_abi::{Errno, IPC_PRIVATE};

/// A fresh namespace starts with the compile-time defaults.
#[test]
fn limits_defaults() {
    uipc_testkit::conformance!("LIMITS/defaults", |s| {
        assert_eq!(s.sysctl_get("kernel.shmmax").unwrap(), "18446744073692774399");
        assert_eq!(s.sysctl_get("kernel.shmall").unwrap(), "18446744073692774399");
        assert_eq!(s.sysctl_get("kernel.shmmni").unwrap(), "4096");
        assert_eq!(s.sysctl_get("kernel.shm_rmid_forced").unwrap(), "0");
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "-1");
    });
}

/// kernel.shmmni accepts 0..=32768.
#[test]
fn limits_shmmni_range() {
    uipc_testkit::conformance!("LIMITS/shmmni", |s| {
        assert_eq!(s.sysctl_set("kernel.shmmni", "32769"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_set("kernel.shmmni", "-1"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_get("kernel.shmmni").unwrap(), "4096");
        assert_eq!(s.sysctl_set("kernel.shmmni", "32768"), Ok(()));
        assert_eq!(s.sysctl_get("kernel.shmmni").unwrap(), "32768");
        assert_eq!(s.sysctl_set("kernel.shmmni", "0"), Ok(()));
        assert_eq!(s.sysctl_get("kernel.shmmni").unwrap(), "0");
    });
}

/// kernel.shm_rmid_forced accepts 0 and 1 only.
#[test]
fn limits_rmid_forced_range() {
    uipc_testkit::conformance!("LIMITS/shm_rmid_forced", |s| {
        assert_eq!(s.sysctl_set("kernel.shm_rmid_forced", "2"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_set("kernel.shm_rmid_forced", "-1"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_get("kernel.shm_rmid_forced").unwrap(), "0");
        assert_eq!(s.sysctl_set("kernel.shm_rmid_forced", "1"), Ok(()));
        assert_eq!(s.sysctl_get("kernel.shm_rmid_forced").unwrap(), "1");
        assert_eq!(s.sysctl_set("kernel.shm_rmid_forced", "0"), Ok(()));
    });
}

/// kernel.shmmax and kernel.shmall accept any unsigned long, nothing else.
#[test]
fn limits_shmmax_shmall_range() {
    uipc_testkit::conformance!("LIMITS/shmmax-shmall", |s| {
        for name in ["kernel.shmmax", "kernel.shmall"] {
            assert_eq!(s.sysctl_set(name, "-1"), Err(Errno::EINVAL));
            assert_eq!(s.sysctl_set(name, "18446744073709551616"), Err(Errno::EINVAL));
            assert_eq!(s.sysctl_set(name, "abc"), Err(Errno::EINVAL));
            assert_eq!(s.sysctl_get(name).unwrap(), "18446744073692774399");
            assert_eq!(s.sysctl_set(name, "18446744073709551615"), Ok(()));
            assert_eq!(s.sysctl_get(name).unwrap(), "18446744073709551615");
            assert_eq!(s.sysctl_set(name, "0"), Ok(()));
            assert_eq!(s.sysctl_get(name).unwrap(), "0");
        }
    });
}

/// kernel.shm_next_id accepts 0..=INT_MAX: -1 reads back as the default but
/// cannot be written (see docs/spec-errata.md).
#[test]
fn limits_next_id_range() {
    uipc_testkit::conformance!("LIMITS/shm_next_id", |s| {
        let p = s.root();
        assert_eq!(s.sysctl_set("kernel.shm_next_id", "-1"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_set("kernel.shm_next_id", "-2"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_set("kernel.shm_next_id", "2147483648"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_set("kernel.shm_next_id", "5"), Ok(()));
        // A request cannot be withdrawn, only consumed.
        assert_eq!(s.sysctl_set("kernel.shm_next_id", "-1"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "5");
        assert_eq!(s.shmget(p, IPC_PRIVATE, 1, 0o600), Ok(5));
        assert_eq!(s.sysctl_get("kernel.shm_next_id").unwrap(), "-1");
    });
}
