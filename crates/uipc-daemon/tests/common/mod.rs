//! Shared helpers of the daemon's integration tests: an in-process daemon
//! per test, raw protocol connections, probe processes (the test binary
//! re-executed, optionally as another user) and a watchdog.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use uipc_abi::Errno;
use uipc_daemon::Embedded;
use uipc_proto::{Request, Response, HEADER, VERSION};
use uipc_sys::net;

/// How long any single blocking read or write on a raw socket may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub use uipc_testsupport::{watchdog, TempDir};

/// Prints a skip message and returns `true` when not root.
pub fn skip_unless_root(test: &str) -> bool {
    uipc_testsupport::skip_unless_root(test, "to run probes as other users")
}

/// A daemon serving in a thread of the test process ([`Embedded`]); shut
/// down (through its lifeline) and joined on drop.
pub struct TestDaemon {
    pub socket: PathBuf,
    daemon: Option<Embedded>,
    pub dir: TempDir,
}

impl TestDaemon {
    pub fn start(tag: &str) -> TestDaemon {
        let dir = TempDir::new(tag);
        let socket = dir.0.join("d.sock");
        let daemon = Embedded::spawn(socket.clone(), |d| d).unwrap();
        TestDaemon { socket, daemon: Some(daemon), dir }
    }

    /// A client of namespace `default`.
    pub fn client(&self) -> uipc_client::Client {
        uipc_client::Client::connect_to(&self.socket, "default").unwrap()
    }

    /// A raw connection that has said Hello (namespace `default`).
    pub fn raw(&self) -> Raw {
        let mut r = Raw::connect(&self.socket);
        r.hello("default");
        r
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            let r = d.stop();
            if !std::thread::panicking() {
                assert!(r.is_ok(), "daemon failed: {r:?}");
            }
        }
    }
}

/// A protocol connection driven by hand.
pub struct Raw {
    pub stream: UnixStream,
    inbuf: Vec<u8>,
}

impl Raw {
    pub fn connect(socket: &Path) -> Raw {
        let stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Raw { stream, inbuf: Vec::new() }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, req: &Request) {
        let b = uipc_proto::encode(req).unwrap();
        self.send_bytes(&b);
    }

    /// The next response and the descriptors that came with it; `None` if
    /// the daemon closed the connection first.
    pub fn recv(&mut self) -> Option<(Response, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some((resp, used)) = uipc_proto::decode::<Response>(&self.inbuf).unwrap() {
                self.inbuf.drain(..used);
                return Some((resp, fds));
            }
            match net::recv_msg(self.stream.as_fd(), &mut buf, 8) {
                Ok((0, got)) => {
                    assert!(got.is_empty());
                    assert!(self.inbuf.is_empty(), "connection closed mid-frame");
                    return None;
                }
                Ok((n, got)) => {
                    fds.extend(got);
                    self.inbuf.extend_from_slice(&buf[..n]);
                }
                Err(Errno::EAGAIN) => panic!("no answer from the daemon within {IO_TIMEOUT:?}"),
                Err(Errno::ECONNRESET) => return None,
                Err(e) => panic!("recv: {e:?}"),
            }
        }
    }

    /// The next response, which must come without descriptors.
    pub fn call(&mut self, req: &Request) -> Response {
        self.send(req);
        let (resp, fds) = self.recv().expect("daemon closed the connection");
        assert!(fds.is_empty(), "unexpected descriptors with {resp:?}");
        resp
    }

    /// A `ShmGet` that creates a segment: its id, and the segment's
    /// memory, which the daemon hands the creator beside the answer.
    pub fn shmget_created(&mut self, req: &Request) -> (i32, std::os::fd::OwnedFd) {
        self.send(req);
        let (resp, mut fds) = self.recv().expect("daemon closed the connection");
        let Response::Value(v) = resp else { panic!("shmget: {resp:?}") };
        assert_eq!(fds.len(), 1, "one descriptor beside a creating shmget's answer");
        (i32::try_from(v).unwrap(), fds.remove(0))
    }

    pub fn hello(&mut self, ns: &str) {
        let r = self.call(&Request::Hello { version: VERSION, namespace: ns.into() });
        assert_eq!(r, Response::Welcome { version: VERSION });
    }

    /// Asserts that the daemon closes the connection (EOF or reset) without
    /// sending anything more.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        match net::recv_msg(self.stream.as_fd(), &mut buf, 8) {
            Ok((0, _)) | Err(Errno::ECONNRESET) => {}
            Ok((n, _)) => panic!("expected the connection to close, got {n} bytes: {:?}", &buf[..n]),
            Err(Errno::EAGAIN) => panic!("daemon did not close the connection within {IO_TIMEOUT:?}"),
            Err(e) => panic!("recv: {e:?}"),
        }
    }
}

/// A length prefix for a payload of `len` bytes.
pub fn header(len: u32) -> [u8; HEADER] {
    len.to_le_bytes()
}

/// The socket path a probe was given, when this process is probe `probe`.
pub fn probe_socket(probe: &str) -> Option<PathBuf> {
    if std::env::var("UIPC_PROBE").ok()? != probe {
        return None;
    }
    Some(PathBuf::from(std::env::var_os("UIPC_SOCKET").expect("probe without UIPC_SOCKET")))
}

/// An integer the parent passed a probe in `UIPC_ARG_<name>`.
pub fn probe_arg(name: &str) -> i64 {
    std::env::var(format!("UIPC_ARG_{name}")).unwrap().parse().unwrap()
}

/// The test binary re-executed to run only the probe entry point `entry`
/// (a `#[test]` that acts when `UIPC_PROBE` is `probe`).
pub fn probe_command(entry: &str, probe: &str, socket: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", entry, "--nocapture", "--test-threads=1", "-q"])
        .env("UIPC_PROBE", probe)
        .env("UIPC_SOCKET", socket)
        .env_remove("RUST_TEST_THREADS");
    cmd
}

/// Makes `cmd` run as `uid`/`gid` with exactly the supplementary `groups`.
pub fn as_user(cmd: &mut Command, uid: u32, gid: u32, groups: Vec<u32>) {
    // SAFETY: the closure only makes raw system calls (async-signal-safe),
    // reads memory allocated before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs a probe to completion and asserts that it succeeded.
pub fn run_probe(mut cmd: Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    check_output(&out);
    out
}

pub fn check_output(out: &Output) {
    assert!(
        out.status.success(),
        "probe failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads the child's stdout until a line equal to `want`; panics at EOF.
pub fn wait_for_line(out: &mut BufReader<ChildStdout>, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "child closed stdout before printing {want:?}");
        if line.trim_end() == want {
            return;
        }
    }
}

/// Kills and reaps `child` if it is still there (a failed test's cleanup).
pub struct Reaper(pub Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How many of this process's descriptors refer to the file at `path`.
pub fn fds_open_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// A key no other test of this process uses.
pub fn unique_key() -> i32 {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() & 0xffff;
    i32::try_from((pid << 12) | (n & 0xfff)).unwrap() + 0x1000_0000
}

/// Runs `f` in a forked child that then kills itself with SIGKILL (a
/// holder of a page's lock dying mid-change); returns when it is dead.
/// `f` must not allocate or take a lock another thread may hold.
pub fn die_in_child(f: impl FnOnce()) {
    // SAFETY: the child runs `f` (see above) and kills itself.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        f();
        // SAFETY: kill(getpid(), SIGKILL) ends this child here.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
}
