//! Embedding uipc-core: a host (a sandbox, an emulator) runs System V
//! shared memory for two guest processes, supplying credentials, time and
//! the placement of mappings itself, as gVisor's sentry does for its guests.
//!
//! Run with `cargo run -p uipc-core --example embed`.

use uipc_core::cred::{CapSet, Cred, Gid, Pid, Uid, RLIM_INFINITY};
use uipc_core::sysv::shm::{ShmCmd, ShmCtlOut};
use uipc_core::{Errno, HeapMemory, IpcNamespace, Time};

fn guest(pid: u32, uid: u32) -> Cred {
    Cred {
        pid: Pid(pid),
        euid: Uid(uid),
        egid: Gid(uid),
        groups: vec![],
        caps: CapSet::EMPTY,
        memlock_limit: RLIM_INFINITY,
        posix: uipc_core::PosixIds::from_effective(Uid(uid), Gid(uid)),
    }
}

fn main() -> Result<(), Errno> {
    let mut ns = IpcNamespace::new(HeapMemory);
    let now = Time(1_800_000_000);
    let (alice, bob, mallory) = (guest(100, 1000), guest(200, 1000), guest(300, 2000));

    // Alice creates a 0600 segment under key 0x1234 and attaches it where
    // the host chose to map it.
    let id = ns.shmget(&alice, now, 0x1234, 4096, 0o1600)?;
    let pending = ns.shmat_prepare(&alice, id.0, 0, 0)?;
    let region = pending.region.clone();
    let a = ns.shmat_commit(&alice, now, pending, 0x7000_0000_0000)?;
    println!("alice: shmget(0x1234) = {}, attached at {a:#x}", id.0);

    // The host stores through Alice's mapping...
    region.lock().unwrap_or_else(|e| e.into_inner()).write(0, b"hello from alice").ok_or(Errno::EFAULT)?;

    // ...and Bob (same uid) finds the segment by key and reads it.
    let id_b = ns.shmget(&bob, now, 0x1234, 0, 0o600)?;
    let pending = ns.shmat_prepare(&bob, id_b.0, 0, uipc_abi::SHM_RDONLY)?;
    let bytes = pending.region.lock().unwrap_or_else(|e| e.into_inner()).read(0, 16).ok_or(Errno::EFAULT)?;
    ns.shmat_commit(&bob, now, pending, 0x7100_0000_0000)?;
    println!("bob:   read {:?}", String::from_utf8_lossy(&bytes));

    // Mallory (another uid) is refused, as by the kernel.
    println!("mallory: shmget(0x1234, 0600) = {:?}", ns.shmget(&mallory, now, 0x1234, 0, 0o600).err());

    let (_, out) = ns.shmctl(&alice, now, id.0, ShmCmd::IpcStat, None)?;
    if let ShmCtlOut::Ds(ds) = out {
        println!(
            "IPC_STAT: nattch={} cpid={} lpid={} mode={:o}",
            ds.shm_nattch, ds.shm_cpid, ds.shm_lpid, ds.shm_perm.mode
        );
    }
    // Alice removes it while attached: it is marked, and lives on until the last detach.
    ns.shmctl(&alice, now, id.0, ShmCmd::IpcRmid, None)?;
    ns.exit(alice.pid, now);
    ns.exit(bob.pid, now);
    print!("{}", ns.proc_sysvipc_shm());
    println!("after both exited, IPC_STAT = {:?}", ns.shmctl(&alice, now, id.0, ShmCmd::IpcStat, None).err());
    Ok(())
}
