//! Sysctl writes in the order Linux decides them (no root needed).
#![allow(clippy::unwrap_used)]

use uipc_abi::Errno;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid};
use uipc_core::{HeapMemory, IpcNamespace};

fn cred(pid: u32) -> Cred {
    Cred { pid: Pid(pid), euid: Uid(0), egid: Gid(0), groups: vec![], caps: CapSet(u64::MAX), memlock_limit: 0 }
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
