//! An `SHM_RDONLY` attach can never become writable: the daemon hands over a
//! read-only open file description of memory the receiver cannot reopen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::fd::AsFd;

use common::*;
use uipc_abi::{Errno, IPC_CREAT, PAGE_SIZE, SHM_RDONLY};
use uipc_proto::{Request, Response};
use uipc_sys::map::{self, Placement, Prot};

const ENTRY: &str = "probe_entry_read_only";

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set.
#[test]
fn probe_entry_read_only() {
    if let Some(socket) = probe_socket("read_only") {
        let _w = watchdog("probe read_only", 60);
        probe_read_only(&socket);
    }
}

/// As uid 1000 against a root-owned 0644 segment holding `b"written by root"`.
fn probe_read_only(socket: &std::path::Path) {
    assert_eq!(rustix::process::geteuid().as_raw(), 1000);
    let id = i32::try_from(probe_arg("ID")).unwrap();
    let c = uipc_client::Client::connect_to(socket, "default").unwrap();
    assert_eq!(c.attach(uipc_client::ShmId(id), 0).err(), Some(Errno::EACCES));

    // Through the client library.
    let m = c.attach_read_only(uipc_client::ShmId(id), 0).unwrap();
    assert!(!m.is_writable());
    assert_eq!(&m[..15], b"written by root");
    // SAFETY: the range is the mapping `m` made; no Rust reference into it
    // is alive across the call (only `m`'s own handle, which holds none).
    let r = unsafe { map::protect(m.addr(), m.map_len(), Prot::READ_WRITE) };
    assert_eq!(r, Err(Errno::EACCES), "mprotect(PROT_WRITE) of a read-only attach");
    assert_eq!(&m[..15], b"written by root");
    drop(m);
    assert_eq!(c.shm_stat(uipc_client::ShmId(id)).unwrap().shm_nattch, 0);

    // Through hand-made frames: the descriptor itself is read-only.
    let mut raw = Raw::connect(socket);
    raw.hello("default");
    raw.send(&Request::ShmAt { id, addr: 0, flags: SHM_RDONLY });
    let (resp, mut fds) = raw.recv().expect("daemon closed the connection");
    let Response::Attach { token, size, write, .. } = resp else { panic!("expected Attach, got {resp:?}") };
    assert!(!write);
    assert_eq!(fds.len(), 1, "Attach must carry exactly one descriptor");
    let fd = fds.pop().unwrap();
    // The pending attach counts in nattch (as in do_shmat).
    assert_eq!(c.shm_stat(uipc_client::ShmId(id)).unwrap().shm_nattch, 1);

    let len = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    // SAFETY: Placement::Anywhere replaces no existing mapping.
    match unsafe { map::map_shared(fd.as_fd(), len, Prot::READ_WRITE, Placement::Anywhere) } {
        Err(e) => assert_eq!(e, Errno::EACCES, "mmap(PROT_WRITE, MAP_SHARED) of the descriptor"),
        Ok(at) => {
            // SAFETY: the mapping just made, used by nothing.
            let _ = unsafe { map::unmap(at, len) };
            panic!("a read-only attach's descriptor was mapped writable");
        }
    }
    // A read-only mapping works, and shows root's bytes.
    // SAFETY: Placement::Anywhere replaces no existing mapping.
    let at = unsafe { map::map_shared(fd.as_fd(), len, Prot::READ, Placement::Anywhere) }.unwrap();
    assert_eq!(map::read_at(at, 15).unwrap(), b"written by root");
    // SAFETY: the range is the mapping just made; nothing references it.
    assert_eq!(unsafe { map::protect(at, len, Prot::READ_WRITE) }, Err(Errno::EACCES));
    // SAFETY: as above.
    unsafe { map::unmap(at, len) }.unwrap();

    // Reopening it read-write through /proc is refused too.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let e = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect_err("reopened O_RDWR");
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "open({path}, O_RDWR): {e}");
    let e = std::fs::OpenOptions::new().write(true).open(&path).expect_err("reopened O_WRONLY");
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "open({path}, O_WRONLY): {e}");
    let fl = rustix::fs::fcntl_getfl(&fd).unwrap();
    assert!(
        !fl.intersects(rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::RDWR),
        "descriptor is not O_RDONLY: {fl:?}"
    );
    // F_SETFL cannot change the access mode either.
    let _ = rustix::fs::fcntl_setfl(&fd, fl | rustix::fs::OFlags::RDWR);
    let fl = rustix::fs::fcntl_getfl(&fd).unwrap();
    assert!(!fl.intersects(rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::RDWR));
    drop(fd);

    // Abort the attach: the daemon answers with the error and drops the hold.
    let r = raw.call(&Request::ShmAtDone { token, result: Err(Errno::EACCES.raw()) });
    assert_eq!(r, Response::Error(Errno::EACCES.raw()));
    assert_eq!(c.shm_stat(uipc_client::ShmId(id)).unwrap().shm_nattch, 0, "aborted attach still counted");
    // The token is spent.
    let r = raw.call(&Request::ShmAtDone { token, result: Ok(0x1000_0000) });
    assert_eq!(r, Response::Error(Errno::EINVAL.raw()));
    println!("PROBE OK");
}

#[test]
fn read_only_attach_can_never_become_writable() {
    if skip_unless_root("read_only_attach_can_never_become_writable") {
        return;
    }
    let _w = watchdog("read_only_attach_can_never_become_writable", 120);
    let d = TestDaemon::start("rdonly");
    let root = d.client();
    let id = root.shmget(unique_key(), 4096, IPC_CREAT | 0o644).unwrap();
    {
        let mut m = root.attach(id, 0).unwrap();
        m[..15].copy_from_slice(b"written by root");
    }
    let mut cmd = probe_command(ENTRY, "read_only", &d.socket);
    cmd.env("UIPC_ARG_ID", id.0.to_string());
    as_user(&mut cmd, 1000, 1000, vec![]);
    let out = run_probe(cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBE OK"), "the probe did not run");
    root.sync().unwrap();
    let ds = root.shm_stat(id).unwrap();
    assert_eq!(ds.shm_nattch, 0);
    // The bytes are untouched.
    let m = root.attach_read_only(id, 0).unwrap();
    assert_eq!(&m[..15], b"written by root");
}
