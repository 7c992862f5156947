//! `uipc run`: starts a program with the shim preloaded, against a daemon
//! that answers or, failing that, a private one that lives as long as the
//! program.
//!
//! 0. Refuse a statically linked program (an ELF executable without
//!    `PT_INTERP`): no dynamic linker loads it, so `LD_PRELOAD` cannot
//!    reach it and its IPC calls would go to the kernel (or fail with
//!    `ENOSYS`). One line on stderr, exit status 126.
//! 1. Find the shim: `--preload`, `$UIPC_PRELOAD`, or
//!    `libuipc_preload.so` next to the `uipc` executable. A missing shim is
//!    a warning, not an error: the program then runs without `LD_PRELOAD`.
//! 2. Find a daemon: `--socket`, `$UIPC_SOCKET`, or the default path; if a
//!    connection there succeeds, use it. Otherwise start a private daemon
//!    process, `uipc daemon` with its socket and its state directory in a
//!    fresh directory (mode 0711, in a directory every user may traverse,
//!    a tmpfs first, so that the program's processes reach it whatever ids
//!    they take), serving only this process and its descendants
//!    (`--tree-root`, `Daemon::only_tree`; this process becomes a child
//!    subreaper, so a double-forked descendant stays in the tree), with a
//!    lifeline (`--lifeline-fd`, one end of a socket pair whose other end
//!    only we hold), and wait for its `READY` (`--ready-fd`).
//! 3. With `--ns new`, ask the daemon for an ephemeral namespace (a fresh
//!    name, mode 0700, ended by the daemon when the last process that
//!    joined it — this one counts — has exited).
//! 4. Start the program with `LD_PRELOAD` (prepended to the existing one),
//!    `UIPC_SOCKET` and `UIPC_NAMESPACE`; under `--deny-kernel-ipc`, behind
//!    the seccomp filter of `uipc_sys::seccomp`; under `--trap`, behind its
//!    trapping form, with `UIPC_TRAP=1` so that the shim serves the trapped
//!    calls (its `trap` module; the shim is then required).
//! 5. Forward `SIGINT`, `SIGTERM`, `SIGHUP` and `SIGQUIT` sent to us by
//!    another process (a terminal's signals already reach the program,
//!    which is in our process group) through a pidfd.
//! 6. Wait for the program, reaping the descendants re-parented to us
//!    meanwhile; if the private daemon ends meanwhile (`kill -9`, a
//!    crash), start another on the same socket and state directory (it
//!    re-adopts every object; the program's processes reconnect by
//!    themselves) and say so in one line on stderr — at most
//!    [`MAX_RESTARTS`] times within [`RESTART_WINDOW`], then say that it
//!    stays dead.
//! 7. When the program ends: stop forwarding, hang up the lifeline and
//!    reap the private daemon, remove its directory; then exit with the
//!    program's code, or re-raise the signal that killed it (128 + signal
//!    if that does not kill us).
//!
//! The private daemon has a lifeline, so it leaves the signals meant for
//! the program alone: it ignores `SIGINT`, `SIGTERM`, `SIGHUP` and
//! `SIGQUIT` (a `SIGTERM` to `uipc run` is forwarded to the program), and
//! keeps serving until the program is gone.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

/// The options of `uipc run`.
#[derive(Debug)]
pub struct RunArgs {
    /// `--ns`: the IPC namespace the program joins.
    pub ns: String,
    /// `--socket`: where to look for a daemon.
    pub socket: Option<PathBuf>,
    /// `--deny-kernel-ipc`.
    pub deny_kernel_ipc: bool,
    /// `--trap`.
    pub trap: bool,
    /// `--preload`: the shim.
    pub preload: Option<PathBuf>,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

/// The signals forwarded to the program.
const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Runs `uipc run`; the exit code is the program's.
pub fn run(args: RunArgs) -> ExitCode {
    let Some((program, program_args)) = args.command.split_first() else {
        eprintln!("uipc run: no program given");
        return ExitCode::from(2);
    };
    if let Some(path) = resolve(program) {
        if statically_linked(&path) {
            eprintln!(
                "uipc run: {}: statically linked; uipc serves only dynamically linked programs (LD_PRELOAD cannot reach this one)",
                path.display()
            );
            return ExitCode::from(126);
        }
    }
    let preload = find_preload(args.preload);
    if args.trap && preload.is_none() {
        eprintln!("uipc run: --trap needs the shim (libuipc_preload.so) to serve the trapped calls");
        return ExitCode::from(125);
    }
    let socket = args.socket.unwrap_or_else(uipc_daemon::default_socket_path);

    let mut daemon = if UnixStream::connect(&socket).is_ok() {
        Daemon::Shared(socket)
    } else {
        match PrivateDaemon::start() {
            Ok(d) => Daemon::Private(d),
            Err(msg) => {
                eprintln!("uipc run: no daemon answers at {} and a private one failed: {msg}", socket.display());
                return ExitCode::from(125);
            }
        }
    };

    // `--ns new`: a fresh namespace that ends with the last process that
    // joined it (this one included), as `unshare --ipc` gives the program
    // an IPC namespace of its own. The connection is held until the end.
    let (ns, _ephemeral) = if args.ns == EPHEMERAL {
        match create_ephemeral(daemon.socket()) {
            Ok((name, admin)) => (name, Some(admin)),
            Err(e) => {
                eprintln!("uipc run: cannot create a namespace: {e}");
                daemon.stop();
                return ExitCode::from(125);
            }
        }
    } else {
        (args.ns.clone(), None)
    };

    let mut cmd = Command::new(program);
    cmd.args(program_args);
    cmd.env("UIPC_SOCKET", daemon.socket());
    cmd.env("UIPC_NAMESPACE", &ns);
    if let Some(lib) = &preload {
        cmd.env("LD_PRELOAD", ld_preload(lib, std::env::var_os("LD_PRELOAD").as_deref()));
    }
    if args.trap {
        // The trapping filter denies what it does not trap, as --deny-kernel-ipc.
        cmd.env("UIPC_TRAP", "1");
        if let Err(e) = uipc_sys::seccomp::trap_kernel_ipc(&mut cmd) {
            eprintln!("uipc run: --trap: {e}");
            daemon.stop();
            return ExitCode::from(125);
        }
    } else if args.deny_kernel_ipc {
        if let Err(e) = uipc_sys::seccomp::deny_kernel_ipc(&mut cmd) {
            eprintln!("uipc run: --deny-kernel-ipc: {e}");
            daemon.stop();
            return ExitCode::from(125);
        }
    }

    // Register before spawning, so that no signal between the two is lost
    // (or kills us, leaving the program unsupervised).
    let signals = match SignalsInfo::<WithOrigin>::new(FORWARDED) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uipc run: signal handlers: {e}");
            daemon.stop();
            return ExitCode::from(125);
        }
    };
    let handle = signals.handle();

    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            handle.close();
            daemon.stop();
            let name = Path::new(program).display();
            return if e.kind() == std::io::ErrorKind::NotFound {
                eprintln!("uipc run: {name}: command not found");
                ExitCode::from(127)
            } else {
                eprintln!("uipc run: {name}: {e}");
                ExitCode::from(126)
            };
        }
    };

    // The child is ours until we reap it, so its pid cannot be reused yet.
    let forwarder = match uipc_sys::proc::pidfd_open(child.id()) {
        Ok(pidfd) => Some(std::thread::spawn(move || forward(signals, &pidfd))),
        Err(e) => {
            eprintln!("uipc run: warning: cannot forward signals: pidfd_open: {e}");
            handle.close();
            None
        }
    };

    // A subreaper (with a private daemon) also reaps the orphans it
    // inherits, and restarts the daemon if it dies.
    let status = match &mut daemon {
        Daemon::Private(d) => d.supervise(child.id()).map_err(|e| std::io::Error::from_raw_os_error(e.raw())),
        Daemon::Shared(_) => child.wait(),
    };
    handle.close();
    if let Some(t) = forwarder {
        let _ = t.join();
    }
    daemon.stop();

    match status {
        Ok(status) => pass_through(status),
        Err(e) => {
            eprintln!("uipc run: waiting for the program: {e}");
            ExitCode::from(125)
        }
    }
}

/// The `--ns` value that asks for a fresh, ephemeral namespace.
pub const EPHEMERAL: &str = "new";

/// Asks the daemon at `socket` for an ephemeral namespace: its name, and
/// the connection that made it.
fn create_ephemeral(socket: &Path) -> Result<(String, uipc_client::Admin), uipc_client::Errno> {
    let mut admin = uipc_client::Admin::connect(socket)?;
    let name = admin.ns_create("", 0o700, &[], true)?;
    Ok((name, admin))
}

/// Forwards the signals other processes send us to the program, until
/// the handle is closed.
fn forward(mut signals: SignalsInfo<WithOrigin>, pidfd: &OwnedFd) {
    for origin in signals.forever() {
        // A terminal's SIGINT, SIGQUIT or SIGHUP is sent by the kernel to
        // the whole foreground process group, the program included: passing
        // it on would deliver it twice.
        if matches!(origin.cause, Cause::Kernel) {
            continue;
        }
        // ESRCH: the program has just exited; nothing to forward to.
        let _ = uipc_sys::seccomp::pidfd_send_signal(pidfd.as_fd(), origin.signal);
    }
}

/// Ends this process as the program ended.
fn pass_through(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    if let Some(sig) = status.signal() {
        // Restores the default action, unblocks and raises the signal: for a
        // terminating signal, we die of it here.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        return ExitCode::from(u8::try_from(128 + sig).unwrap_or(255));
    }
    ExitCode::FAILURE
}

/// `--preload`, `$UIPC_PRELOAD`, or `libuipc_preload.so` beside the `uipc`
/// executable; `None` (with a warning) if that file does not exist.
fn find_preload(explicit: Option<PathBuf>) -> Option<PathBuf> {
    let path = explicit
        .or_else(|| std::env::var_os("UIPC_PRELOAD").filter(|p| !p.is_empty()).map(PathBuf::from))
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.join("libuipc_preload.so"))
        });
    match path {
        Some(p) if p.is_file() => Some(p),
        Some(p) => {
            eprintln!("uipc run: warning: {} not found; running without LD_PRELOAD", p.display());
            None
        }
        None => {
            eprintln!("uipc run: warning: no preload library found; running without LD_PRELOAD");
            None
        }
    }
}

/// The file `execvp` would run for `program`: itself if it has a `/`,
/// else the first executable regular file of that name in `$PATH`.
fn resolve(program: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return Some(p.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(p))
        .find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Whether `path` is an ELF executable without a `PT_INTERP` program
/// header (statically linked, static-pie included). Anything unreadable or
/// not ELF (a script) is left to `execve` to judge.
///
/// # References
///  - [elf(5)](https://man7.org/linux/man-pages/man5/elf.5.html): `e_phoff`,
///    `e_phentsize`, `e_phnum`, `PT_INTERP`
fn statically_linked(path: &Path) -> bool {
    use std::io::Read;
    const PT_INTERP: u32 = 3;
    let Ok(f) = std::fs::File::open(path) else { return false };
    // The program headers of an executable lie near its start.
    let mut head = Vec::new();
    if f.take(64 * 1024).read_to_end(&mut head).is_err() || head.get(..4) != Some(&b"\x7fELF"[..]) {
        return false;
    }
    let le = head.get(5) == Some(&1);
    let num = |off: usize, len: usize| -> Option<u64> {
        let b = head.get(off..off + len)?;
        let mut w = [0u8; 8];
        if le {
            w[..len].copy_from_slice(b);
            Some(u64::from_le_bytes(w))
        } else {
            w[8 - len..].copy_from_slice(b);
            Some(u64::from_be_bytes(w))
        }
    };
    // ELFCLASS64 (2) or ELFCLASS32 (1): where e_phoff/e_phentsize/e_phnum sit.
    let (phoff, phentsize, phnum) = match head.get(4) {
        Some(2) => (num(0x20, 8), num(0x36, 2), num(0x38, 2)),
        Some(1) => (num(0x1c, 4), num(0x2a, 2), num(0x2c, 2)),
        _ => return false,
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else { return false };
    // ET_EXEC (2) or ET_DYN (3): a shared library run directly has no
    // PT_INTERP either, but it is not ours to refuse (execve will).
    let is_exec = num(0x10, 2) == Some(2) || num(0x10, 2) == Some(3);
    let mut any_header = false;
    for i in 0..phnum {
        let Some(off) = i.checked_mul(phentsize).and_then(|o| o.checked_add(phoff)) else { return false };
        let Ok(off) = usize::try_from(off) else { return false };
        // p_type is the first 4-byte word of both classes' Elf_Phdr.
        match num(off, 4) {
            Some(t) if t == u64::from(PT_INTERP) => return false,
            Some(_) => any_header = true,
            None => return false,
        }
    }
    is_exec && any_header
}

/// `lib` in front of an existing `LD_PRELOAD` list.
fn ld_preload(lib: &Path, existing: Option<&OsStr>) -> OsString {
    let mut v = OsString::from(lib);
    if let Some(old) = existing.filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

/// The daemon the program talks to.
enum Daemon {
    /// One that already answered.
    Shared(PathBuf),
    /// Ours, for the program's lifetime.
    Private(PrivateDaemon),
}

impl Daemon {
    fn socket(&self) -> &Path {
        match self {
            Daemon::Shared(p) => p,
            Daemon::Private(d) => &d.socket,
        }
    }

    fn stop(self) {
        if let Daemon::Private(d) = self {
            d.stop();
        }
    }
}

/// At most this many restarts of the private daemon within
/// [`RESTART_WINDOW`]; one more death and it stays dead.
const MAX_RESTARTS: usize = 5;

/// See [`MAX_RESTARTS`].
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// How long a daemon we start may take to say `READY` (a restart re-adopts
/// every object first).
const READY_WAIT: Duration = Duration::from_secs(30);

/// The state directory's name inside the run's directory.
const STATE: &str = "state";

/// A daemon process of our own (`uipc daemon`), in a private directory,
/// with its state in that directory, restarted on the same state if it
/// dies while the program runs.
struct PrivateDaemon {
    /// The run's directory: the socket and the state directory.
    dir: PathBuf,
    socket: PathBuf,
    /// Our end of the lifeline: every daemon we start holds the other
    /// (`--lifeline-fd`) and stops when this one closes, even if we are
    /// killed.
    lifeline: UnixStream,
    /// The daemon's end, handed to each one we start.
    their_lifeline: UnixStream,
    /// The daemon now running, if any.
    pid: Option<u32>,
    /// When it was restarted, within the last [`RESTART_WINDOW`].
    restarts: VecDeque<Instant>,
}

impl PrivateDaemon {
    /// Starts a daemon process serving only this process's tree, its
    /// socket and state in a fresh 0711 directory.
    fn start() -> Result<PrivateDaemon, String> {
        let dir = private_dir()?;
        let started = (|| {
            // Orphans of the tree come to us, not to init: they stay in it.
            uipc_sys::proc::set_child_subreaper().map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
            let (lifeline, their_lifeline) = UnixStream::pair().map_err(|e| format!("lifeline: {e}"))?;
            // Its metadata is nobody else's to read, whatever the daemon's umask.
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir.join(STATE))
                .map_err(|e| format!("{}: {e}", dir.join(STATE).display()))?;
            let mut d = PrivateDaemon {
                socket: dir.join("uipc.sock"),
                dir: dir.clone(),
                lifeline,
                their_lifeline,
                pid: None,
                restarts: VecDeque::new(),
            };
            d.pid = Some(d.spawn()?);
            Ok(d)
        })();
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    /// Starts `uipc daemon` on our socket and state directory and waits
    /// for its `READY`; returns its pid.
    fn spawn(&self) -> Result<u32, String> {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let (ready, their_ready) = UnixStream::pair().map_err(|e| format!("ready pipe: {e}"))?;
        // This process's own executable, even if its file was replaced or
        // removed since: the child's /proc/self/exe before the exec.
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("uipc").arg("daemon").arg("--socket").arg(&self.socket);
        cmd.arg("--state-dir").arg(self.dir.join(STATE));
        cmd.args(["--ready-fd", "3", "--lifeline-fd", "4", "--tree-root"]).arg(std::process::id().to_string());
        // Its log lines go where ours go; the program's shim is not its.
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd.env_remove("LD_PRELOAD").env_remove("UIPC_TRAP");
        uipc_sys::fd::inherit_fds(&mut cmd, &[(their_ready.as_fd(), 3), (self.their_lifeline.as_fd(), 4)])
            .map_err(|e| format!("passing descriptors: {e}"))?;
        let mut child = cmd.spawn().map_err(|e| format!("uipc daemon: {e}"))?;
        // Only the daemon holds the ready pipe's other end now: it says
        // READY, or its exit ends the read.
        drop(cmd);
        drop(their_ready);
        let mut said = Vec::new();
        let answered = ready
            .set_read_timeout(Some(READY_WAIT))
            .and_then(|()| (&ready).take(6).read_to_end(&mut said))
            .map_err(|e| e.to_string());
        if said == b"READY\n" {
            return Ok(child.id());
        }
        let _ = child.kill();
        let why = match child.wait() {
            Ok(status) if answered.is_ok() => describe_end(status),
            Ok(_) | Err(_) => format!("no READY within {READY_WAIT:?}"),
        };
        Err(format!("the daemon did not start: {why}"))
    }

    /// Waits for the program (the child `program`), reaping the orphans
    /// of its tree and restarting the daemon whenever it dies meanwhile;
    /// returns the program's wait status.
    fn supervise(&mut self, program: u32) -> Result<ExitStatus, uipc_abi::Errno> {
        loop {
            let watched: Vec<u32> = [Some(program), self.pid].into_iter().flatten().collect();
            let (pid, raw) = uipc_sys::proc::wait_reaping_others(&watched)?;
            if pid == program {
                return Ok(ExitStatus::from_raw(raw));
            }
            self.pid = None;
            self.restart(pid, ExitStatus::from_raw(raw));
        }
    }

    /// The daemon `old` ended with `status` while the program runs: starts
    /// another on the same socket and state, unless it has been restarted
    /// [`MAX_RESTARTS`] times within [`RESTART_WINDOW`].
    fn restart(&mut self, old: u32, status: ExitStatus) {
        let mut why = format!("the private daemon (pid {old}) {}", describe_end(status));
        loop {
            let now = Instant::now();
            while self.restarts.front().is_some_and(|t| now.duration_since(*t) >= RESTART_WINDOW) {
                self.restarts.pop_front();
            }
            if self.restarts.len() >= MAX_RESTARTS {
                eprintln!(
                    "uipc run: {why}; it was restarted {MAX_RESTARTS} times within {}s: giving up, the program's IPC calls fail from now on",
                    RESTART_WINDOW.as_secs()
                );
                return;
            }
            self.restarts.push_back(now);
            match self.spawn() {
                Ok(pid) => {
                    eprintln!("uipc run: {why}; restarted it on the same state (pid {pid})");
                    self.pid = Some(pid);
                    return;
                }
                Err(e) => why = format!("{why}; restarting it failed: {e}"),
            }
        }
    }

    /// Hangs up the lifeline, waits for the daemon and removes the run's
    /// directory (its state with it).
    fn stop(self) {
        let PrivateDaemon { dir, lifeline, pid, .. } = self;
        drop(lifeline);
        if let Some(pid) = pid {
            match uipc_sys::proc::wait_reaping_others(&[pid]) {
                Ok((_, raw)) if ExitStatus::from_raw(raw).success() => {}
                Ok((_, raw)) => eprintln!("uipc run: private daemon: {}", describe_end(ExitStatus::from_raw(raw))),
                Err(e) => eprintln!("uipc run: waiting for the private daemon: {e}"),
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("uipc run: removing {}: {e}", dir.display());
        }
    }
}

/// How a process ended, in words ("was killed by signal 9").
fn describe_end(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// `uipc daemon --lifeline-fd` (our private daemon): SIGINT, SIGTERM,
/// SIGHUP and SIGQUIT are the program's (a terminal sends them to the
/// whole process group, the daemon included), so the daemon takes them
/// and does nothing; it ends with its lifeline.
///
/// # Errors
/// Registering a handler failed.
pub fn leave_signals_to_the_program() -> std::io::Result<()> {
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in FORWARDED {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&ignored))?;
    }
    Ok(())
}

/// A new directory, mode 0711 (anyone may reach the socket inside by its
/// name; only we may list it), under `$XDG_RUNTIME_DIR`, the temporary
/// directory or `/dev/shm`, whichever every user may traverse (a program
/// that drops to `nobody` must still reach its daemon: the daemon, not the
/// file system, decides who is served) — a tmpfs first, as the daemon's
/// state directory inside holds segment memory as files — else `/tmp`;
/// `mkdir` fails rather than reuse one that exists.
fn private_dir() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> =
        [std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from), Some(std::env::temp_dir()), Some("/dev/shm".into())]
            .into_iter()
            .flatten()
            .filter(|d| d.is_absolute() && traversable_by_all(d))
            .collect();
    let base = candidates
        .iter()
        .find(|d| uipc_sys::fd::on_tmpfs(d))
        .or_else(|| candidates.iter().find(|d| d.as_path() != Path::new("/dev/shm")))
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let pid = std::process::id();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut last = None;
    for attempt in 0..16u32 {
        let dir = base.join(format!("uipc-run.{pid}.{:x}", nanos.wrapping_add(attempt)));
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            // The umask may have taken bits away.
            Ok(()) => {
                return std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
                    .map(|()| dir)
                    .map_err(|e| format!("chmod: {e}"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!("no fresh directory in {}: {}", base.display(), last.map_or_else(String::new, |e| e.to_string())))
}

/// Whether every directory from `/` down to `dir` has its "others"
/// search bit (so any user can reach a file in `dir` by name).
fn traversable_by_all(dir: &Path) -> bool {
    dir.ancestors().all(|d| std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_is_prepended() {
        let lib = Path::new("/x/libuipc_preload.so");
        assert_eq!(ld_preload(lib, None), OsString::from("/x/libuipc_preload.so"));
        assert_eq!(ld_preload(lib, Some(OsStr::new(""))), OsString::from("/x/libuipc_preload.so"));
        assert_eq!(ld_preload(lib, Some(OsStr::new("/a.so"))), OsString::from("/x/libuipc_preload.so:/a.so"));
    }
}
