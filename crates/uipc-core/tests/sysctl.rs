//! Sysctl writes in the order Linux decides them (no root needed).
#![allow(clippy::unwrap_used)]

use uipc_abi::Errno;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::{HeapMemory, IpcNamespace};

fn cred(pid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(0),
        egid: Gid(0),
        groups: vec![],
        caps: CapSet(u64::MAX),
        memlock_limit: 0,
        posix: uipc_core::PosixIds::from_effective(Uid(0), Gid(0)),
    }
}

#[test]
fn sysctl_writes_are_refused_before_their_value_is_parsed() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let user = Cred { euid: Uid(1000), egid: Gid(1000), caps: CapSet::EMPTY, ..cred(9) };
    // open(2) of the file decides first: ENOENT, then EACCES; the value only then.
    assert_eq!(ns.sysctl_write(&user, "kernel.nope", "x"), Err(Errno::ENOENT));
    assert_eq!(ns.sysctl_write(&user, "kernel.shmmni", "garbage"), Err(Errno::EACCES));
    assert_eq!(ns.sysctl_write(&cred(1), "kernel.shmmni", "garbage"), Err(Errno::EINVAL));
    assert_eq!(ns.sysctl_write(&cred(1), "kernel.shmmni", "7"), Ok(()));
    assert_eq!(ns.sysctl_read("kernel.shmmni").as_deref(), Ok("7"));
}

#[test]
fn a_write_of_no_bytes_changes_nothing_and_a_bare_newline_is_einval() {
    let mut ns = IpcNamespace::new(HeapMemory);
    // proc_sys_call_handler(): a 0-byte write reaches the handler with
    // *lenp == 0, which returns 0; "\n" holds no value: EINVAL.
    assert_eq!(ns.sysctl_write(&cred(1), "kernel.shmmni", ""), Ok(()));
    assert_eq!(ns.sysctl_read("kernel.shmmni").as_deref(), Ok("4096"));
    assert_eq!(ns.sysctl_write(&cred(1), "kernel.shmmni", "\n"), Err(Errno::EINVAL));
    assert_eq!(ns.sysctl_write(&cred(1), "kernel.shmmni", "12\n"), Ok(()));
    assert_eq!(ns.sysctl_read("kernel.shmmni").as_deref(), Ok("12"));
}

#[test]
fn the_owner_of_a_namespace_is_root_of_its_sysctls() {
    let mut ns = IpcNamespace::new(HeapMemory);
    ns.owner = uipc_core::perm::NamespaceOwner { uid: Uid(1000), gid: Gid(1000), mode: 0o700 };
    let owner = Cred { euid: Uid(1000), egid: Gid(1000), caps: CapSet::EMPTY, ..cred(9) };
    let other = Cred { euid: Uid(1001), egid: Gid(1000), caps: CapSet::EMPTY, ..cred(10) };
    assert_eq!(ns.sysctl_write(&owner, "kernel.shmmni", "5"), Ok(()));
    assert_eq!(ns.sysctl_write(&other, "kernel.shmmni", "6"), Err(Errno::EACCES));
    // *_next_id still need CAP_CHECKPOINT_RESTORE, owner or not.
    assert_eq!(ns.sysctl_write(&owner, "kernel.shm_next_id", "5"), Err(Errno::EACCES));
    assert_eq!(ns.sysctl_read("kernel.shmmni").as_deref(), Ok("5"));
    assert_eq!(ns.sysctl_write(&cred(1), "kernel.msg_next_id", "9"), Ok(()));
    assert_eq!(ns.sysctl_read("kernel.msg_next_id").as_deref(), Ok("9"));
}

/// What write(2) of a `/proc/sys` file returns: the bytes its parser
/// consumed (the kernel's counts, checked by `uipc-cli/tests/identity.rs`).
#[test]
fn a_write_consumes_through_the_last_value() {
    use uipc_core::limits::sysctl_consumed;
    assert_eq!(sysctl_consumed("kernel.sem", "1 2 3 4 5\n"), 8);
    assert_eq!(sysctl_consumed("kernel.sem", "10 100 8 4"), 10);
    assert_eq!(sysctl_consumed("kernel.shmmni", "4096\n"), 5);
    assert_eq!(sysctl_consumed("kernel.shmmni", "12 34\n"), 3);
    assert_eq!(sysctl_consumed("kernel.shmmax", ""), 0);
}
