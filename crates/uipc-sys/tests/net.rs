//! Unix-socket plumbing against real sockets and real processes: descriptors
//! passed both ways between two processes, close-on-exec on arrival, extra
//! descriptors closed, the peer's credentials and groups as the kernel saw
//! them at connect time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::FdFlags;
use uipc_abi::Errno;
use uipc_sys::net::{peer_cred, peer_groups, recv_msg, send_msg, set_nonblocking, PeerCred};

/// A watchdog bound for waits that could otherwise hang the suite; never a
/// claim about how fast anything is.
const WATCHDOG: Duration = Duration::from_secs(30);

fn memfd_with(bytes: &[u8]) -> File {
    let fd = rustix::fs::memfd_create("uipc-net-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let f = File::from(fd);
    f.write_all_at(bytes, 0).unwrap();
    f
}

fn is_cloexec(fd: &OwnedFd) -> bool {
    rustix::io::fcntl_getfd(fd).unwrap().contains(FdFlags::CLOEXEC)
}

/// A Python 3 that any uid may run (not a per-user shim).
fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].into_iter().find(|p| Path::new(p).exists())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A fresh directory that every uid can enter, for a socket path.
fn scratch_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir =
        std::env::temp_dir().join(format!("uipc-net-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Binds a listener every uid may connect to.
fn listener(dir: &Path) -> (UnixListener, PathBuf) {
    let path = dir.join("sock");
    let l = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    l.set_nonblocking(true).unwrap();
    (l, path)
}

/// Accepts one connection, failing if `child` exits first or the watchdog fires.
fn accept(l: &UnixListener, child: &mut Child) -> UnixStream {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited before connecting: {status}");
        }
        assert!(Instant::now() < deadline, "watchdog: no connection");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn scm_rights_within_one_process_arrives_cloexec() {
    let (a, b) = UnixStream::pair().unwrap();
    let f = memfd_with(b"hello");
    assert_eq!(send_msg(a.as_fd(), b"x", &[f.as_fd()]), Ok(1));
    let mut buf = [0u8; 16];
    let (n, mut fds) = recv_msg(b.as_fd(), &mut buf, 4).unwrap();
    assert_eq!((n, buf[0], fds.len()), (1, b'x', 1));
    let got = fds.pop().unwrap();
    assert!(is_cloexec(&got));
    let got = File::from(got);
    assert_eq!(got.metadata().unwrap().ino(), f.metadata().unwrap().ino());
    let mut five = [0u8; 5];
    got.read_exact_at(&mut five, 0).unwrap();
    assert_eq!(&five, b"hello");

    // Bytes without descriptors.
    assert_eq!(send_msg(a.as_fd(), b"plain", &[]), Ok(5));
    let (n, fds) = recv_msg(b.as_fd(), &mut buf, 4).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"plain"[..], 0));
}

#[test]
fn descriptors_need_bytes() {
    let (a, _b) = UnixStream::pair().unwrap();
    let f = memfd_with(b"");
    assert_eq!(send_msg(a.as_fd(), b"", &[f.as_fd()]), Err(Errno::EINVAL));
}

/// Sends `count` duplicates of a socket end, receives with `max_fds`
/// descriptors allowed, and checks that none stayed open: the other end of
/// the duplicated socket sees end-of-file once every copy is closed.
fn too_many(count: usize, max_fds: usize) {
    let (a, b) = UnixStream::pair().unwrap();
    let (watch, watched) = UnixStream::pair().unwrap();
    let fds: Vec<_> = (0..count).map(|_| watched.as_fd()).collect();
    assert_eq!(send_msg(a.as_fd(), b"m", &fds), Ok(1));
    drop(fds);
    drop(watched);
    let mut buf = [0u8; 4];
    assert_eq!(recv_msg(b.as_fd(), &mut buf, max_fds).map(|(n, f)| (n, f.len())), Err(Errno::EMSGSIZE));
    // A concurrent test's fork may hold a copy for an instant before its
    // exec closes it: wait (under the watchdog) rather than poll once.
    watch.set_read_timeout(Some(WATCHDOG)).unwrap();
    let n = (&watch).read(&mut buf).expect("a received descriptor was left open");
    assert_eq!(n, 0);
}

#[test]
fn extra_descriptors_are_closed_and_refused() {
    // 2 for 1 fits in the control buffer's alignment padding (no MSG_CTRUNC);
    // 3 for 1 and 1 for 0 are cut by the kernel (MSG_CTRUNC).
    too_many(2, 1);
    too_many(3, 1);
    too_many(1, 0);
    too_many(8, 7);
}

#[test]
fn nonblocking_recv_says_eagain() {
    let (a, b) = UnixStream::pair().unwrap();
    set_nonblocking(b.as_fd(), true).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(recv_msg(b.as_fd(), &mut buf, 1).map(|(n, _)| n), Err(Errno::EAGAIN));
    set_nonblocking(b.as_fd(), false).unwrap();
    send_msg(a.as_fd(), b"z", &[]).unwrap();
    assert_eq!(recv_msg(b.as_fd(), &mut buf, 1).map(|(n, _)| n), Ok(1));
    drop(a);
    assert_eq!(recv_msg(b.as_fd(), &mut buf, 1).map(|(n, _)| n), Ok(0));
}

#[test]
fn socketpair_credentials_are_ours() {
    let (a, _b) = UnixStream::pair().unwrap();
    let me = PeerCred {
        pid: std::process::id(),
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    };
    assert_eq!(peer_cred(a.as_fd()), Ok(me));
    let mut ours: Vec<u32> = rustix::process::getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
    ours.sort_unstable();
    let mut theirs = peer_groups(a.as_fd()).unwrap();
    theirs.sort_unstable();
    assert_eq!(theirs, ours);
}

/// A Python child that connects to `path`, receives a memfd (`SCM_RIGHTS`),
/// appends to it, and sends back a memfd of its own.
const PY_EXCHANGE: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
msg, fds, _, _ = socket.recv_fds(s, 16, 4)
assert msg == b"take" and len(fds) == 1, (msg, fds)
got = os.pread(fds[0], 5, 0)
os.pwrite(fds[0], b" from python " + got, 5)
mine = os.memfd_create("py")
os.write(mine, b"python's own")
socket.send_fds(s, [b"back"], [mine])
s.recv(1)
"#;

#[test]
fn scm_rights_between_two_processes() {
    let Some(py) = python() else {
        eprintln!("skipped: no python3");
        return;
    };
    let dir = scratch_dir();
    let (l, path) = listener(&dir);
    let mut child = Command::new(py).args(["-c", PY_EXCHANGE]).arg(&path).spawn().unwrap();
    let s = accept(&l, &mut child);
    let f = memfd_with(b"hello");
    send_msg(s.as_fd(), b"take", &[f.as_fd()]).unwrap();
    let mut buf = [0u8; 16];
    let (n, mut fds) = recv_msg(s.as_fd(), &mut buf, 4).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"back"[..], 1));
    let theirs = fds.pop().unwrap();
    assert!(is_cloexec(&theirs));
    // The same open file description: its offset is past Python's write.
    let mut text = [0u8; 12];
    File::from(theirs).read_exact_at(&mut text, 0).unwrap();
    assert_eq!(&text, b"python's own");
    // The child wrote into our memfd through the descriptor we passed.
    let mut all = vec![0u8; 23];
    f.read_exact_at(&mut all, 0).unwrap();
    assert_eq!(all, b"hello from python hello");
    send_msg(s.as_fd(), b"!", &[]).unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starts `argv` with a Python that connects to the socket and waits for
/// one byte; returns the child and the accepted connection.
fn connect_child(argv: &[&str], l: &UnixListener, path: &Path) -> (Child, UnixStream) {
    let py = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(1)";
    let mut child =
        Command::new(argv[0]).args(&argv[1..]).args([python().unwrap(), "-c", py]).arg(path).spawn().unwrap();
    let s = accept(l, &mut child);
    (child, s)
}

#[test]
fn peer_cred_of_a_child_process() {
    if python().is_none() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = scratch_dir();
    let (l, path) = listener(&dir);
    let (mut child, s) = connect_child(&["/usr/bin/env"], &l, &path);
    let cred = peer_cred(s.as_fd()).unwrap();
    assert_eq!(cred.pid, child.id());
    assert_eq!(cred.uid, rustix::process::geteuid().as_raw());
    assert_eq!(cred.gid, rustix::process::getegid().as_raw());
    send_msg(s.as_fd(), b"!", &[]).unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn peer_cred_and_groups_of_another_user() {
    if !is_root() {
        eprintln!("skipped: needs root (setpriv to uid 1000)");
        return;
    }
    if python().is_none() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: no python3 or no setpriv");
        return;
    }
    let dir = scratch_dir();
    let (l, path) = listener(&dir);
    let argv = ["/usr/bin/setpriv", "--reuid", "1000", "--regid", "1001", "--groups", "2000,1000,3000"];
    let (mut child, s) = connect_child(&argv, &l, &path);
    let cred = peer_cred(s.as_fd()).unwrap();
    assert_eq!(cred, PeerCred { pid: child.id(), uid: 1000, gid: 1001 });
    let mut groups = peer_groups(s.as_fd()).unwrap();
    groups.sort_unstable();
    assert_eq!(groups, [1000, 2000, 3000]);
    send_msg(s.as_fd(), b"!", &[]).unwrap();
    assert!(child.wait().unwrap().success());

    // Many groups: more than the first buffer holds, so ERANGE makes it grow.
    let many: Vec<String> = (5000..5100).map(|g| g.to_string()).collect();
    let many = many.join(",");
    let argv = ["/usr/bin/setpriv", "--reuid", "1000", "--regid", "1000", "--groups", &many];
    let (mut child, s) = connect_child(&argv, &l, &path);
    let mut groups = peer_groups(s.as_fd()).unwrap();
    groups.sort_unstable();
    assert_eq!(groups, (5000..5100).collect::<Vec<u32>>());
    send_msg(s.as_fd(), b"!", &[]).unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(dir).unwrap();
}
