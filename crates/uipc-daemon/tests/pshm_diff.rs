//! POSIX shared memory and named semaphores, one body on three backends:
//! the kernel (glibc's `shm_open`/`sem_open` over a private tmpfs at
//! `/dev/shm`, in a fresh mount namespace), the daemon (through
//! `uipc-client`, real descriptors) and the core (`IpcNamespace` over
//! `HeapMemory`). Every return value, errno and `fstat` identity and size
//! must match. Identities are switched with `setfsuid`/`setfsgid`, which
//! is what file checks read (the kernel drops the file capabilities with
//! fsuid 0 → 65534 and gives them back); the daemon re-reads them
//! (`Client::recheck`).
//!
//! A test without libtest's harness (`harness = false`): the kernel and
//! daemon bodies run in fresh single-threaded processes of this binary
//! (`PSHM_BACKEND=kernel|daemon`), so an id change is the whole process's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use uipc_abi::Errno;
use uipc_client::Client;
use uipc_core::cred::{CapSet, Cred, Gid, Pid, PosixIds, Uid};
use uipc_core::memory::HeapRegion;
use uipc_core::posix::shm::PshmKind;
use uipc_core::{HeapMemory, IpcNamespace, Memory};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Root,
    Nobody,
}

/// A descriptor of an object, as each backend has one.
enum Handle {
    Fd(OwnedFd),
    Region(HeapRegion),
}

trait Backend {
    fn become_(&mut self, who: Who);
    fn umask(&mut self, mask: u32);
    fn open(&mut self, name: &[u8], oflag: i32, mode: u32) -> Result<Handle, Errno>;
    /// `sem_open`, the value read through the mapping, `sem_close`.
    fn sem_open(&mut self, name: &[u8], oflag: i32, mode: u32, value: u32) -> Result<i32, Errno>;
    fn unlink(&mut self, name: &[u8], sem: bool) -> Result<(), Errno>;
    fn truncate(&mut self, h: &Handle, len: u64) -> Result<(), Errno>;
}

fn last() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap())
}

fn fd_stat(fd: &OwnedFd) -> String {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: a live descriptor and a writable stat.
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) }, 0);
    // SAFETY: filled by fstat.
    let st = unsafe { st.assume_init() };
    format!("mode {:04o} uid {} gid {} size {}", st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_size)
}

fn stat(b: &mut dyn Backend, h: &Handle) -> String {
    match h {
        Handle::Fd(fd) => fd_stat(fd),
        Handle::Region(r) => {
            let _ = b;
            let pages = r.lock().unwrap();
            let p = pages.owner().unwrap();
            format!("mode {:04o} uid {} gid {} size {}", p.mode, p.uid.0, p.gid.0, pages.len())
        }
    }
}

fn setfs(who: Who) {
    let id = if who == Who::Root { 0 } else { 65534 };
    // SAFETY: plain id changes of this single-threaded process.
    unsafe {
        libc::setfsgid(id);
        libc::setfsuid(id);
    }
}

/// glibc on the kernel's tmpfs.
struct Kernel;

impl Backend for Kernel {
    fn become_(&mut self, who: Who) {
        setfs(who);
    }
    fn umask(&mut self, mask: u32) {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask) };
    }
    fn open(&mut self, name: &[u8], oflag: i32, mode: u32) -> Result<Handle, Errno> {
        let c = CString::new(name).unwrap();
        // SAFETY: a NUL-terminated name.
        let fd = unsafe { libc::shm_open(c.as_ptr(), oflag, mode) };
        if fd < 0 {
            return Err(last());
        }
        // SAFETY: a descriptor shm_open just returned, ours alone.
        Ok(Handle::Fd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
    fn sem_open(&mut self, name: &[u8], oflag: i32, mode: u32, value: u32) -> Result<i32, Errno> {
        let c = CString::new(name).unwrap();
        // SAFETY: a NUL-terminated name; mode and value as sem_open reads them.
        let s = unsafe { libc::sem_open(c.as_ptr(), oflag, mode, value) };
        if s == libc::SEM_FAILED {
            return Err(last());
        }
        let mut v = 0;
        // SAFETY: a semaphore sem_open returned.
        unsafe {
            assert_eq!(libc::sem_getvalue(s, &mut v), 0);
            assert_eq!(libc::sem_close(s), 0);
        }
        Ok(v)
    }
    fn unlink(&mut self, name: &[u8], sem: bool) -> Result<(), Errno> {
        let c = CString::new(name).unwrap();
        // SAFETY: a NUL-terminated name.
        let r = unsafe {
            if sem {
                libc::sem_unlink(c.as_ptr())
            } else {
                libc::shm_unlink(c.as_ptr())
            }
        };
        if r < 0 {
            Err(last())
        } else {
            Ok(())
        }
    }
    fn truncate(&mut self, h: &Handle, len: u64) -> Result<(), Errno> {
        let Handle::Fd(fd) = h else { unreachable!() };
        // SAFETY: a live descriptor.
        let r = unsafe { libc::ftruncate(fd.as_raw_fd(), i64::try_from(len).unwrap()) };
        if r < 0 {
            Err(last())
        } else {
            Ok(())
        }
    }
}

/// The daemon through the Rust client.
struct Daemon {
    client: Client,
    umask: u32,
}

impl Backend for Daemon {
    fn become_(&mut self, who: Who) {
        setfs(who);
        self.client.recheck().unwrap();
    }
    fn umask(&mut self, mask: u32) {
        self.umask = mask;
    }
    fn open(&mut self, name: &[u8], oflag: i32, mode: u32) -> Result<Handle, Errno> {
        self.client.shm_open_umask(name, oflag, mode, self.umask).map(Handle::Fd)
    }
    fn sem_open(&mut self, name: &[u8], oflag: i32, mode: u32, value: u32) -> Result<i32, Errno> {
        // As the shim does: the object, mapped (the client's mapping).
        let fd = self.client.sem_open_fd(name, oflag, mode, self.umask, value)?;
        let mut b = [0u8; 4];
        // SAFETY: a live descriptor and a 4-byte buffer.
        assert_eq!(unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), 4, 0) }, 4);
        Ok(i32::from_le_bytes(b))
    }
    fn unlink(&mut self, name: &[u8], sem: bool) -> Result<(), Errno> {
        if sem {
            self.client.sem_unlink(name)
        } else {
            self.client.shm_unlink(name)
        }
    }
    fn truncate(&mut self, h: &Handle, len: u64) -> Result<(), Errno> {
        Kernel.truncate(h, len)
    }
}

/// The model alone.
struct Core {
    ns: IpcNamespace<HeapMemory>,
    cred: Cred,
}

impl Core {
    fn new() -> Core {
        let mut c = Core { ns: IpcNamespace::new(HeapMemory), cred: root_cred() };
        c.become_(Who::Root);
        c
    }
}

fn root_cred() -> Cred {
    Cred {
        pid: Pid(1),
        euid: Uid(0),
        egid: Gid(0),
        groups: vec![],
        caps: CapSet(u64::MAX),
        memlock_limit: 0,
        posix: PosixIds::from_effective(Uid(0), Gid(0)),
    }
}

impl Backend for Core {
    fn become_(&mut self, who: Who) {
        let umask = self.cred.posix.umask;
        self.cred = root_cred();
        if who == Who::Nobody {
            // What setfsuid(65534) leaves: the file capabilities gone.
            let fs_caps = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 9) | (1 << 27) | (1 << 32);
            self.cred.caps = CapSet(!fs_caps);
            self.cred.posix.fsuid = Uid(65534);
            self.cred.posix.fsgid = Gid(65534);
        }
        self.cred.posix.umask = umask;
    }
    fn umask(&mut self, mask: u32) {
        self.cred.posix.umask = mask;
    }
    fn open(&mut self, name: &[u8], oflag: i32, mode: u32) -> Result<Handle, Errno> {
        self.ns.pshm_open(&self.cred, name, oflag, mode).map(|o| Handle::Region(o.region))
    }
    fn sem_open(&mut self, name: &[u8], oflag: i32, mode: u32, value: u32) -> Result<i32, Errno> {
        let o = self.ns.sem_open(&self.cred, name, oflag, mode, value)?;
        let b = o.region.lock().unwrap().read(0, 4).unwrap();
        Ok(i32::from_le_bytes(b.try_into().unwrap()))
    }
    fn unlink(&mut self, name: &[u8], sem: bool) -> Result<(), Errno> {
        self.ns.pshm_unlink(&self.cred, name, if sem { PshmKind::Sem } else { PshmKind::Shm })
    }
    fn truncate(&mut self, h: &Handle, len: u64) -> Result<(), Errno> {
        let Handle::Region(r) = h else { unreachable!() };
        // The model's descriptors are all O_RDWR here: ftruncate's checks are the kernel's.
        HeapMemory.truncate(r, len)
    }
}

fn res<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.name().unwrap_or("?").into(),
    }
}

/// The body: PSHM-NAME/OPEN/SIZE/UNL and PSEM rules, as root and nobody.
fn body(b: &mut dyn Backend) -> String {
    let mut out = String::new();
    let mut line = |s: String| writeln!(out, "{s}").unwrap();
    b.become_(Who::Root);
    b.umask(0o022);
    for name in [&b""[..], b"/", b"a/b", &[b'n'; 255], &[b'n'; 256], &[b'n'; 259], &[b'n'; 260]] {
        let r = b.open(name, libc::O_CREAT | libc::O_RDWR, 0o600);
        line(format!("PSHM-NAME-2 open len {}: {}", name.len(), res(&r)));
        line(format!("PSHM-UNL-1 unlink len {}: {}", name.len(), res(&b.unlink(name, false))));
    }
    line(format!("PSHM-OPEN-2 absent: {}", res(&b.open(b"/d", libc::O_RDWR, 0))));
    let h = b.open(b"/d", libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o666).unwrap();
    line(format!("PSHM-OPEN-3 new: {}", stat(b, &h)));
    line(format!("PSHM-NAME-1 //d O_EXCL: {}", res(&b.open(b"//d", libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0))));
    line(format!("PSHM-SIZE-1 grow: {}", res(&b.truncate(&h, 12345))));
    line(format!("PSHM-STAT-1 grown: {}", stat(b, &h)));
    let t = b.open(b"d", libc::O_RDONLY | libc::O_TRUNC, 0);
    line(format!("PSHM-OPEN-4 O_RDONLY|O_TRUNC: {} then {}", res(&t), stat(b, &h)));
    let root600 = b.open(b"/r600", libc::O_CREAT | libc::O_RDWR, 0o600).unwrap();
    b.umask(0o077);
    let u = b.open(b"/u", libc::O_CREAT | libc::O_RDWR, 0o666).unwrap();
    line(format!("PSHM-OPEN-3 umask 077: {}", stat(b, &u)));
    b.umask(0o022);
    b.become_(Who::Nobody);
    line(format!("nobody O_RDWR 0644: {}", res(&b.open(b"/d", libc::O_RDWR, 0))));
    line(format!("nobody O_RDONLY 0644: {}", res(&b.open(b"/d", libc::O_RDONLY, 0))));
    line(format!("nobody O_WRONLY 0644: {}", res(&b.open(b"/d", libc::O_WRONLY, 0))));
    line(format!("nobody O_RDONLY|O_TRUNC 0644: {}", res(&b.open(b"/d", libc::O_RDONLY | libc::O_TRUNC, 0))));
    line(format!("nobody O_RDONLY 0600: {}", res(&b.open(b"/r600", libc::O_RDONLY, 0))));
    line(format!("nobody O_CREAT existing: {}", res(&b.open(b"/r600", libc::O_CREAT | libc::O_RDONLY, 0o666))));
    line(format!("nobody unlink root's: {}", res(&b.unlink(b"/d", false))));
    let own = b.open(b"/own", libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o640).unwrap();
    line(format!("nobody own: {}", stat(b, &own)));
    line(format!("PSEM nobody root-less create: {:?}", b.sem_open(b"/ns", libc::O_CREAT, 0o600, 5)));
    b.become_(Who::Root);
    line(format!("root O_RDWR nobody's 0640: {}", res(&b.open(b"/own", libc::O_RDWR, 0))));
    line(format!("root unlink nobody's: {}", res(&b.unlink(b"/own", false))));
    line(format!("PSHM-UNL-2 unlink d: {}", res(&b.unlink(b"d", false))));
    line(format!("PSHM-UNL-2 open after: {}", res(&b.open(b"d", libc::O_RDWR, 0))));
    line(format!("PSHM-UNL-2 old truncates: {} {}", res(&b.truncate(&h, 100)), stat(b, &h)));
    let fresh = b.open(b"d", libc::O_CREAT | libc::O_RDWR, 0o600).unwrap();
    line(format!("PSHM-UNL-2 fresh: {}", stat(b, &fresh)));
    // Named semaphores.
    line(format!("PSEM absent: {:?}", b.sem_open(b"/s", 0, 0, 0)));
    line(format!("PSEM value too big: {:?}", b.sem_open(b"/s", libc::O_CREAT, 0o644, 0x8000_0000)));
    line(format!("PSEM create: {:?}", b.sem_open(b"/s", libc::O_CREAT | libc::O_EXCL, 0o644, 7)));
    line(format!("PSEM O_EXCL: {:?}", b.sem_open(b"s", libc::O_CREAT | libc::O_EXCL, 0o644, 1)));
    line(format!("PSEM existing, big value: {:?}", b.sem_open(b"//s", libc::O_CREAT, 0o644, 0x8000_0000)));
    let so = b.open(b"sem.s", libc::O_RDONLY, 0).unwrap();
    line(format!("PSEM object: {}", stat(b, &so)));
    for len in [251usize, 252, 255, 256] {
        line(format!("PSEM-NAME-1 len {len}: {:?}", b.sem_open(&vec![b's'; len], libc::O_CREAT, 0o600, 0)));
        line(format!("PSEM-UNL-1 len {len}: {}", res(&b.unlink(&vec![b's'; len], true))));
    }
    b.become_(Who::Nobody);
    line(format!("PSEM nobody 0644: {:?}", b.sem_open(b"/s", 0, 0, 0)));
    line(format!("PSEM nobody unlink: {}", res(&b.unlink(b"/s", true))));
    b.become_(Who::Root);
    for (n, sem) in [(&b"/s"[..], true), (b"/ns", true), (b"d", false), (b"/u", false), (b"/r600", false)] {
        line(format!("cleanup {}: {}", String::from_utf8_lossy(n), res(&b.unlink(n, sem))));
    }
    drop((root600, u, own, so, fresh, t));
    out
}

fn child(backend: &str) {
    // SAFETY: no supplementary groups: nobody is not in root's group.
    assert_eq!(unsafe { libc::setgroups(0, std::ptr::null()) }, 0);
    let out = match backend {
        "kernel" => body(&mut Kernel),
        "daemon" => body(&mut Daemon { client: Client::connect().unwrap(), umask: 0o022 }),
        other => panic!("backend {other}"),
    };
    print!("{out}");
}

fn run(label: &str, mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{label}: {}\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    text
}

fn main() {
    if let Ok(b) = std::env::var("PSHM_BACKEND") {
        child(&b);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("pshm_backends_match_the_kernel: test");
        return;
    }
    // Only `cargo test`'s own invocation, or one naming this test, runs it.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| !"pshm_backends_match_the_kernel".contains(a.as_str())) {
        return;
    }
    let _w = uipc_testsupport::watchdog("pshm differential", 120);
    let core = body(&mut Core::new());
    let me = std::env::current_exe().unwrap();
    if !Command::new("unshare").args(["--mount", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP pshm_backends_match_the_kernel: unshare --mount not permitted (not root)");
        return;
    }
    let mut k = Command::new("unshare");
    k.args(["--mount", "sh", "-c"])
        .arg("mount --make-rprivate / && mount -t tmpfs -o mode=1777 uipc-test /dev/shm && exec \"$@\"")
        .arg("sh")
        .arg(&me)
        .env("PSHM_BACKEND", "kernel");
    let kernel = run("kernel", k);
    let dir = uipc_testsupport::TempDir::new("pshm-diff");
    let socket = dir.0.join("d.sock");
    let daemon = uipc_daemon::Embedded::spawn(socket.clone(), |d| d).unwrap();
    let mut d = Command::new(&me);
    d.env("PSHM_BACKEND", "daemon").env("UIPC_SOCKET", &socket).env("UIPC_NAMESPACE", "default");
    let ours = run("daemon", d);
    daemon.stop().unwrap();
    eprintln!("kernel:\n{kernel}");
    assert_eq!(ours, kernel, "daemon (left) and kernel (right) differ");
    assert_eq!(core, kernel, "core (left) and kernel (right) differ");
    println!("test pshm_backends_match_the_kernel ... ok");
}
