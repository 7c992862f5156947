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
//!    connection there succeeds, use it. Otherwise bind a private daemon in
//!    a thread of this process, with its socket in a fresh directory (mode
//!    0711, in a directory every user may traverse, so that the program's
//!    processes reach it whatever ids they take), serving only this
//!    process and its descendants (`Daemon::only_tree`; this process
//!    becomes a child subreaper, so a double-forked descendant stays in
//!    the tree), and a lifeline (one end of a socket pair) that we hold.
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
//! 6. When the program ends (descendants re-parented to us meanwhile are
//!    reaped as they exit): stop forwarding, drop the lifeline and join
//!    the private daemon, remove its directory; then exit with the
//!    program's code, or re-raise the signal that killed it (128 + signal
//!    if that does not kill us).
//!
//! The private daemon is embedded (it has a lifeline), so it leaves this
//! process's signals alone: a `SIGTERM` to `uipc run` is forwarded to the
//! program, and the daemon keeps serving it until the program is gone.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

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

    let daemon = if UnixStream::connect(&socket).is_ok() {
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

    // A subreaper (with a private daemon) also reaps the orphans it inherits.
    let status = match &daemon {
        Daemon::Private(_) => uipc_sys::proc::wait_reaping_others(child.id())
            .map(ExitStatus::from_raw)
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw())),
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
            Daemon::Private(d) => d.socket(),
        }
    }

    fn stop(self) {
        if let Daemon::Private(d) = self {
            d.stop();
        }
    }
}

/// A daemon served by a thread of this process, in a private directory.
struct PrivateDaemon {
    /// The private directory holding the socket.
    dir: PathBuf,
    daemon: uipc_daemon::Embedded,
}

impl PrivateDaemon {
    /// Binds a daemon in a new thread, its socket in a fresh 0700 directory.
    fn start() -> Result<PrivateDaemon, String> {
        let dir = private_dir()?;
        // Orphans of the tree come to us, not to init: they stay in it.
        uipc_sys::proc::set_child_subreaper().map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        let root = std::process::id();
        match uipc_daemon::Embedded::spawn(dir.join("uipc.sock"), move |d| d.only_tree(root)) {
            Ok(daemon) => Ok(PrivateDaemon { dir, daemon }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e.to_string())
            }
        }
    }

    fn socket(&self) -> &Path {
        self.daemon.socket()
    }

    /// Hangs up the lifeline, waits for the daemon and removes its directory.
    fn stop(self) {
        if let Err(e) = self.daemon.stop() {
            eprintln!("uipc run: private daemon: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("uipc run: removing {}: {e}", self.dir.display());
        }
    }
}

/// A new directory, mode 0711 (anyone may reach the socket inside by its
/// name; only we may list it), under `$XDG_RUNTIME_DIR` or the temporary
/// directory, whichever every user may traverse (a program that drops to
/// `nobody` must still reach its daemon: the daemon, not the file system,
/// decides who is served), else `/tmp`; `mkdir` fails rather than reuse
/// one that exists.
fn private_dir() -> Result<PathBuf, String> {
    let base = [std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from), Some(std::env::temp_dir())]
        .into_iter()
        .flatten()
        .find(|d| d.is_absolute() && traversable_by_all(d))
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
