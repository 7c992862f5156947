//! Two real processes sharing a segment through the daemon.
//!
//! Start a daemon, then run this example:
//! ```sh
//! uipc daemon --socket /tmp/uipc.sock &
//! UIPC_SOCKET=/tmp/uipc.sock cargo run -p uipc-client --example two_process
//! ```
//! The parent creates a segment and writes a greeting; a child process
//! (the same binary, started with `child ID`) attaches read-only and prints it.

use uipc_client::{Client, Errno, ShmId};

fn main() -> Result<(), Errno> {
    let args: Vec<String> = std::env::args().collect();
    let client = Client::connect()?;
    if let [_, role, id] = args.as_slice() {
        if role == "child" {
            let id = ShmId(id.parse().map_err(|_| Errno::EINVAL)?);
            let seg = client.attach_read_only(id, 0)?;
            let text = String::from_utf8_lossy(&seg[..32]);
            println!("child {}: read {:?}", std::process::id(), text.trim_end_matches('\0'));
            println!("child: nattch while both attached = {}", client.shm_stat(id)?.shm_nattch);
            return Ok(());
        }
    }
    let id = client.shmget(0, 4096, 0o1600)?;
    let mut seg = client.attach(id, 0)?;
    seg[..19].copy_from_slice(b"hello from parent!\0");
    println!("parent {}: segment {} at {:#x}", std::process::id(), id.0, seg.addr());
    let status = std::process::Command::new(std::env::current_exe().map_err(|_| Errno::ENOENT)?)
        .args(["child", &id.0.to_string()])
        .status()
        .map_err(|_| Errno::ECHILD)?;
    assert!(status.success());
    client.sync()?;
    let ds = client.shm_stat(id)?;
    println!("parent: after the child exited: nattch={} lpid={} (child's pid)", ds.shm_nattch, ds.shm_lpid);
    drop(seg);
    client.shm_remove(id)?;
    println!("parent: removed; IPC_STAT now {:?}", client.shm_stat(id).err());
    Ok(())
}
