//! The kernel agent: the process behind [`KernelBackend`](crate::kernel::KernelBackend).
//!
//! The test process never forks (it is multi-threaded). It starts this
//! agent (`uipc-kernel-agent`), which:
//!
//! 1. enters a fresh IPC namespace (`unshare(CLONE_NEWIPC)`), so ids start at
//!    0 and the limits are the defaults, becomes a child subreaper and lets
//!    the kernel reap its children (`SIGCHLD` ignored);
//! 2. prints [`Response::Ready`] (or [`Response::Failed`] and exits);
//! 3. reads [`Request`]s, one JSON line each, from standard input and
//!    answers each with one [`Response`] line on standard output.
//!
//! The agent itself is the *coordinator*, never a test process. Each test
//! process is a *worker*: forked from the coordinator (single-threaded, so
//! fork is safe), it takes the identity (`setgroups`, `setgid`, `setuid`,
//! then drops capabilities), then serves operations on a Unix socket: one
//! [`Op`] line in, one [`WorkerMsg`] line out. `Fork` passes the child's new
//! socket along with the request (`SCM_RIGHTS`); `Exec` re-executes this
//! binary with `--worker <fd> --drop-caps <list>`, and the new image says
//! [`WorkerMsg::Ready`]; `Exit` and `Kill` return once the process's pidfd
//! is readable, that is after its memory (and so its attachments) is gone.
//!
//! System calls are made through `uipc_sys::oracle`; this crate has no unsafe.
//!
//! With `--daemon SOCKET NAMESPACE` the same agent drives uipc instead of
//! the kernel (the [`DaemonBackend`](crate::daemon_backend)): no namespace is
//! unshared, and workers perform each IPC operation through `uipc-client`
//! against the daemon at SOCKET, in NAMESPACE; memory accesses and `munmap`
//! stay real. With `--serve-daemon SOCKET` the binary is that daemon.
//!
//! With `--libc SOCKET NAMESPACE` (the [`PreloadBackend`](crate::preload_backend))
//! the agent runs under `LD_PRELOAD=libuipc_preload.so` and a seccomp filter
//! that denies the kernel's IPC calls: workers call the C library's
//! `shmget`, `shmat`, `semop`… (`uipc_sys::libc_ipc`), `munmap` and `fork`
//! as a C program does, so every call reaches the shim. The coordinator
//! talks to the daemon itself only for harness work (sysctls, the
//! settle barrier, seeing sleepers); it refuses to start unless `shmget`
//! resolves to the shim.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uipc_client::Client;
use uipc_core::sysv::sem::SemCmd;
use uipc_core::sysv::shm::ShmCmd;
use uipc_proto::{CtlOut, PermSet};
use uipc_sys::oracle::{self, Channel, Forked, MsgctlBuf, SemTimeout, SemctlArg, ShmctlBuf, CTL_BUF_LEN};

use crate::op::{
    mq_op, CtlBuf, Data, Identity, MsgCtlBuf, MsgDsView, Op, Reply, SemArg, SemDsView, ShmDsView, ShmInfoView,
    ShminfoView, Started, Timeout,
};

/// A request from the test process to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Start a worker with this identity; answered by [`Response::Spawned`].
    Spawn {
        /// Who the worker is.
        identity: Identity,
    },
    /// Perform `op` in worker `pid`; answered by [`Response::Reply`].
    Call {
        /// The worker.
        pid: u32,
        /// The operation.
        op: Op,
    },
    /// Write `/proc/sys/<name>`; answered by [`Response::SysctlSet`].
    SysctlSet {
        /// Dotted name (`kernel.shmmni`).
        name: String,
        /// Value.
        value: String,
    },
    /// Read `/proc/sys/<name>`; answered by [`Response::SysctlGet`].
    SysctlGet {
        /// Dotted name.
        name: String,
    },
    /// Start `op` in worker `pid`, answered by [`Response::Started`] once it
    /// completed or the worker is asleep inside the call (see
    /// [`Backend::start`](crate::Backend::start)).
    Start {
        /// The worker.
        pid: u32,
        /// The operation.
        op: Op,
    },
    /// The reply of worker `pid`'s call left asleep by `Start`; answered by
    /// [`Response::Reply`].
    Finish {
        /// The worker.
        pid: u32,
    },
    /// Kill every worker and exit; no answer.
    Quit,
}

/// The agent's answer to one [`Request`] (or its greeting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The agent is in its namespace and listening.
    Ready,
    /// A worker started, with this pid.
    Spawned(u32),
    /// The result of an operation.
    Reply(Reply),
    /// The answer to [`Request::Start`].
    Started(Started),
    /// The result of a sysctl write (errno on failure).
    SysctlSet(Result<(), i32>),
    /// The value of a sysctl, trimmed (errno on failure).
    SysctlGet(Result<String, i32>),
    /// A harness failure.
    Failed(String),
}

/// What a worker sends its coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// Identity taken (or image replaced), serving.
    Ready,
    /// The result of an operation.
    Reply(Reply),
    /// A harness failure.
    Failed(String),
}

/// How long the coordinator waits for a worker's answer or death.
const WORKER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a started call may take to answer or be seen asleep, and how
/// long a woken call may take to answer.
const ASYNC_WATCHDOG: Duration = Duration::from_secs(10);

/// The longest single wait for a started call's answer between two looks
/// at what the worker is doing.
const ASYNC_POLL_MAX: Duration = Duration::from_millis(5);

/// The binary that [`Op::Exec`] runs: this one.
const SELF_EXE: &str = "/proc/self/exe";

/// Entry point of `uipc-kernel-agent`: the coordinator, or (with `--worker`)
/// a worker after `execve`.
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve-daemon") => serve_daemon(args.get(2)),
        Some("--worker") => {
            match (args.get(5).map(String::as_str), args.get(6), args.get(7)) {
                (Some("--daemon"), Some(socket), Some(ns)) => set_daemon_mode(socket, ns),
                (Some("--libc"), Some(socket), Some(ns)) => set_libc_mode(socket, ns),
                _ => {}
            }
            worker_after_exec(&args)
        }
        Some("--libc") => match (args.get(2), args.get(3)) {
            (Some(socket), Some(ns)) => set_libc_mode(socket, ns),
            _ => {
                eprintln!("uipc-kernel-agent: --libc SOCKET NAMESPACE");
                oracle::exit_now(2);
            }
        },
        Some("--daemon") => match (args.get(2), args.get(3)) {
            (Some(socket), Some(ns)) => set_daemon_mode(socket, ns),
            _ => {
                eprintln!("uipc-kernel-agent: --daemon SOCKET NAMESPACE");
                oracle::exit_now(2);
            }
        },
        _ => {}
    }
    coordinator();
}

/// Where uipc is, when the agent drives it instead of the kernel.
struct DaemonTarget {
    socket: PathBuf,
    namespace: String,
}

static DAEMON: OnceLock<DaemonTarget> = OnceLock::new();

/// Where the shim's daemon is, when workers call the C library under
/// `LD_PRELOAD` (`--libc`).
static LIBC: OnceLock<DaemonTarget> = OnceLock::new();

fn set_daemon_mode(socket: &str, ns: &str) {
    let _ = DAEMON.set(DaemonTarget { socket: PathBuf::from(socket), namespace: ns.to_owned() });
}

fn set_libc_mode(socket: &str, ns: &str) {
    let _ = LIBC.set(DaemonTarget { socket: PathBuf::from(socket), namespace: ns.to_owned() });
}

/// The daemon behind the operations (daemon or libc mode), for the
/// coordinator's harness work; `None` for the kernel.
fn uipc_target() -> Option<&'static DaemonTarget> {
    DAEMON.get().or_else(|| LIBC.get())
}

/// In libc mode: that `shmget` is the shim's, or why not.
fn check_shim_loaded() -> Result<(), String> {
    match uipc_sys::libc_ipc::shmget_provider() {
        Some(p) if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libuipc_preload")) => Ok(()),
        other => Err(format!(
            "--libc: shmget resolves to {other:?}, not libuipc_preload.so (is LD_PRELOAD set to the shim?)"
        )),
    }
}

fn connect_daemon(t: &DaemonTarget) -> Result<Client, uipc_abi::Errno> {
    Client::connect_to(&t.socket, &t.namespace)
}

/// `--serve-daemon SOCKET`: a uipc daemon that lives as long as standard
/// input stays open, and prints `READY` once it accepts connections.
fn serve_daemon(socket: Option<&String>) -> ! {
    let Some(socket) = socket else {
        eprintln!("uipc-kernel-agent: --serve-daemon SOCKET");
        oracle::exit_now(2);
    };
    let lifeline = std::io::stdin().as_fd().try_clone_to_owned().ok();
    let config = uipc_daemon::Config { socket: PathBuf::from(socket), state_dir: None, ready_fd: None, lifeline };
    let daemon = match uipc_daemon::Daemon::bind(config) {
        Ok(d) => d,
        Err(e) => {
            println!("FAILED {e}");
            oracle::exit_now(1);
        }
    };
    println!("READY");
    let code = match daemon.serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("uipc daemon: {e}");
            1
        }
    };
    oracle::exit_now(code)
}

fn to_line<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain enums cannot fail.
    serde_json::to_vec(v).unwrap_or_else(|e| format!("{{\"Failed\":\"serialise: {e}\"}}").into_bytes())
}

fn errno_text(what: &str, e: uipc_abi::Errno) -> String {
    format!("{what}: {e:?}")
}

// ---------------------------------------------------------------- coordinator

struct Worker {
    chan: Channel,
    pidfd: OwnedFd,
    /// A started call is asleep in the worker; its reply is still to come.
    in_flight: bool,
}

#[derive(Default)]
struct Coordinator {
    workers: BTreeMap<u32, Worker>,
    /// In daemon and libc mode: the namespace's root, for sysctls and barriers.
    client: Option<Client>,
}

impl Coordinator {
    /// In daemon mode, waits until the daemon has settled process deaths.
    fn settle(&self) -> Result<(), String> {
        match &self.client {
            Some(c) => c.sync().map_err(|e| errno_text("daemon sync", e)),
            None => Ok(()),
        }
    }
}

fn coordinator() {
    let stdout = std::io::stdout();
    let say = |r: &Response| {
        let mut out = stdout.lock();
        let mut line = to_line(r);
        line.push(b'\n');
        // The test process reading our answers is gone if this fails; the
        // next read of standard input will see end of file.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    };
    let fresh_namespace = || match (uipc_target(), LIBC.get()) {
        (Some(_), Some(_)) => check_shim_loaded(),
        (Some(_), None) => Ok(()),
        (None, _) => oracle::unshare_ipc().map_err(|e| errno_text("unshare(CLONE_NEWIPC)", e)),
    };
    let setup = fresh_namespace()
        .and_then(|()| oracle::set_child_subreaper().map_err(|e| errno_text("PR_SET_CHILD_SUBREAPER", e)))
        .and_then(|()| oracle::ignore_children().map_err(|e| errno_text("signal(SIGCHLD, SIG_IGN)", e)));
    if let Err(why) = setup {
        say(&Response::Failed(why));
        oracle::exit_now(1);
    }
    let mut co = Coordinator::default();
    if let Some(t) = uipc_target() {
        match connect_daemon(t) {
            Ok(c) => co.client = Some(c),
            Err(e) => {
                say(&Response::Failed(errno_text("connecting to the daemon", e)));
                oracle::exit_now(1);
            }
        }
    }
    say(&Response::Ready);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                say(&Response::Failed(format!("bad request {line:?}: {e}")));
                continue;
            }
        };
        let resp = match req {
            Request::Quit => break,
            Request::Spawn { identity } => co.spawn(&identity).map(Response::Spawned),
            Request::Call { pid, op } => co.call(pid, &op).map(Response::Reply),
            Request::Start { pid, op } => co.start(pid, &op).map(Response::Started),
            Request::Finish { pid } => co.finish(pid).map(Response::Reply),
            Request::SysctlSet { name, value } => match &co.client {
                Some(c) => Ok(Response::SysctlSet(c.sysctl_write(&name, &value).map_err(uipc_abi::Errno::raw))),
                None => sysctl_path(&name).map(|p| Response::SysctlSet(sysctl_set(&p, &value))),
            },
            Request::SysctlGet { name } => match &co.client {
                Some(c) => Ok(Response::SysctlGet(c.sysctl_read(&name).map_err(uipc_abi::Errno::raw))),
                None => sysctl_path(&name).map(|p| Response::SysctlGet(sysctl_get(&p))),
            },
        };
        say(&resp.unwrap_or_else(Response::Failed));
    }
    co.kill_all();
    oracle::exit_now(0);
}

fn sysctl_path(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    if ok {
        Ok(format!("/proc/sys/{}", name.replace('.', "/")))
    } else {
        Err(format!("bad sysctl name {name:?}"))
    }
}

fn io_errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(uipc_abi::Errno::EINVAL.raw())
}

fn sysctl_set(path: &str, value: &str) -> Result<(), i32> {
    std::fs::write(path, value).map_err(|e| io_errno(&e))
}

fn sysctl_get(path: &str) -> Result<String, i32> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|e| io_errno(&e))
}

fn recv_msg(chan: &mut Channel, pid: u32) -> Result<WorkerMsg, String> {
    match chan.recv_line(Some(WORKER_TIMEOUT)) {
        Ok(Some(line)) => serde_json::from_slice(&line).map_err(|e| format!("worker {pid} sent garbage: {e}")),
        Ok(None) => Err(format!("worker {pid} closed its channel (died?)")),
        Err(e) => Err(errno_text(&format!("reading from worker {pid}"), e)),
    }
}

fn wait_gone(pid: u32, pidfd: &OwnedFd) -> Result<(), String> {
    match oracle::wait_readable(pidfd.as_fd(), WORKER_TIMEOUT) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("process {pid} did not exit within {WORKER_TIMEOUT:?}")),
        Err(e) => Err(errno_text("poll(pidfd)", e)),
    }
}

impl Coordinator {
    fn spawn(&mut self, who: &Identity) -> Result<u32, String> {
        let (mine, theirs) = Channel::pair().map_err(|e| errno_text("socketpair", e))?;
        match oracle::fork().map_err(|e| errno_text("fork", e))? {
            Forked::Child => {
                // Our copy of the coordinator's end must not be closed by a
                // destructor after close_fds_except; it is closed there.
                std::mem::forget(mine);
                worker_start(theirs, who)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                let mut chan = mine;
                match recv_msg(&mut chan, pid) {
                    Ok(WorkerMsg::Ready) => {}
                    Ok(other) => {
                        let _ = oracle::kill(pid);
                        return Err(format!("worker {pid} did not start: {other:?}"));
                    }
                    Err(e) => {
                        let _ = oracle::kill(pid);
                        return Err(e);
                    }
                }
                let pidfd = oracle::pidfd_open(pid).map_err(|e| errno_text("pidfd_open", e))?;
                self.workers.insert(pid, Worker { chan, pidfd, in_flight: false });
                Ok(pid)
            }
        }
    }

    fn call(&mut self, pid: u32, op: &Op) -> Result<Reply, String> {
        let Some(w) = self.workers.get(&pid) else {
            return Err(format!("no live test process with pid {pid}"));
        };
        if w.in_flight && !matches!(op, Op::Kill | Op::Signal) {
            return Err(format!("{op:?}: process {pid} is asleep in a started call (finish it first)"));
        }
        match op {
            Op::Signal => {
                oracle::signal_usr1(pid).map_err(|e| errno_text("kill(SIGUSR1)", e))?;
                Ok(Reply::ok(0))
            }
            Op::SemOp { timeout, .. } => match self.start(pid, op)? {
                Started::Done(r) => Ok(r),
                // semtimedop sleeps until its timeout at most.
                Started::Blocked if matches!(timeout, Some(Timeout::Val { .. })) => self.finish(pid),
                Started::Blocked => Err(format!("{op:?}: process {pid} blocked (use start/finish)")),
            },
            Op::MsgSnd { .. } | Op::MsgRcv { .. } => match self.start(pid, op)? {
                Started::Done(r) => Ok(r),
                Started::Blocked => Err(format!("{op:?}: process {pid} blocked (use start/finish)")),
            },
            Op::Kill => {
                let w = self.workers.remove(&pid).ok_or("vanished")?;
                oracle::kill(pid).map_err(|e| errno_text("kill", e))?;
                wait_gone(pid, &w.pidfd)?;
                self.settle()?;
                Ok(Reply::ok(0))
            }
            Op::Exit => {
                let w = self.workers.remove(&pid).ok_or("vanished")?;
                w.chan.send_line(&to_line(op), None).map_err(|e| errno_text("send", e))?;
                wait_gone(pid, &w.pidfd)?;
                self.settle()?;
                Ok(Reply::ok(0))
            }
            Op::Fork => {
                let (mine, theirs) = Channel::pair().map_err(|e| errno_text("socketpair", e))?;
                let w = self.workers.get_mut(&pid).ok_or("vanished")?;
                w.chan.send_line(&to_line(op), Some(theirs.as_fd())).map_err(|e| errno_text("send", e))?;
                drop(theirs);
                let reply = match recv_msg(&mut w.chan, pid)? {
                    WorkerMsg::Reply(r) => r,
                    other => return Err(format!("fork: unexpected {other:?}")),
                };
                if let Ok(child) = reply.ret {
                    let child = u32::try_from(child).map_err(|_| format!("fork returned {child}"))?;
                    let pidfd = oracle::pidfd_open(child).map_err(|e| errno_text("pidfd_open", e))?;
                    self.workers.insert(child, Worker { chan: mine, pidfd, in_flight: false });
                }
                Ok(reply)
            }
            Op::Exec => {
                let w = self.workers.get_mut(&pid).ok_or("vanished")?;
                w.chan.send_line(&to_line(op), None).map_err(|e| errno_text("send", e))?;
                let r = match recv_msg(&mut w.chan, pid)? {
                    WorkerMsg::Ready => Reply::ok(0),
                    WorkerMsg::Reply(r) => r,
                    WorkerMsg::Failed(why) => return Err(format!("exec: {why}")),
                };
                // Libc mode: the shim's connection closed in execve
                // (close-on-exec); the daemon settles that before going on.
                self.settle()?;
                Ok(r)
            }
            _ => {
                let w = self.workers.get_mut(&pid).ok_or("vanished")?;
                w.chan.send_line(&to_line(op), None).map_err(|e| errno_text("send", e))?;
                match recv_msg(&mut w.chan, pid)? {
                    WorkerMsg::Reply(r) => Ok(r),
                    other => Err(format!("{op:?}: unexpected {other:?}")),
                }
            }
        }
    }

    /// Sends `op` and waits until the worker answers ([`Started::Done`]) or
    /// is seen asleep in `semop`/`semtimedop` ([`Started::Blocked`]): short
    /// waits on its channel, between which `/proc/<pid>/syscall` and
    /// `/proc/<pid>/stat` say what it is doing; never a fixed sleep.
    fn start(&mut self, pid: u32, op: &Op) -> Result<Started, String> {
        if !matches!(
            op,
            Op::SemOp { .. } | Op::MsgSnd { .. } | Op::MsgRcv { .. } | Op::MqSend { .. } | Op::MqReceive { .. }
        ) {
            // Nothing else sleeps: perform it plainly.
            return self.call(pid, op).map(Started::Done);
        }
        let daemon = self.client.clone();
        let w = self.workers.get_mut(&pid).ok_or_else(|| format!("no live test process with pid {pid}"))?;
        if w.in_flight {
            return Err(format!("{op:?}: process {pid} already has a started call asleep"));
        }
        w.chan.send_line(&to_line(op), None).map_err(|e| errno_text("send", e))?;
        let deadline = Instant::now() + ASYNC_WATCHDOG;
        let mut wait = Duration::from_micros(200);
        loop {
            match w.chan.recv_line(Some(wait)) {
                Ok(Some(line)) => {
                    return match serde_json::from_slice(&line) {
                        Ok(WorkerMsg::Reply(r)) => Ok(Started::Done(r)),
                        Ok(other) => Err(format!("{op:?}: unexpected {other:?}")),
                        Err(e) => Err(format!("worker {pid} sent garbage: {e}")),
                    };
                }
                Ok(None) => return Err(format!("worker {pid} closed its channel (died?)")),
                Err(e) if e == uipc_abi::Errno::ETIMEDOUT => {}
                Err(e) => return Err(errno_text(&format!("reading from worker {pid}"), e)),
            }
            let now = oracle::proc_activity(pid).map_err(|e| errno_text(&format!("/proc/{pid}"), e))?;
            // Asleep in the call: in the kernel's semop; or parked by the
            // daemon and waiting for its answer in ppoll — then a signal
            // finds it asleep, as it finds the kernel's sleeper (one sent
            // earlier would race with the call's start, in both).
            let asleep = match &daemon {
                Some(c) => {
                    now.state == 'S'
                        && now.syscall.is_some_and(|n| oracle::is_poll_syscall(n) || oracle::is_recvmsg_syscall(n))
                        && c.waiters().map_err(|e| errno_text("daemon waiters", e))?.contains(&pid)
                }
                None => {
                    now.state == 'S'
                        && now.syscall.is_some_and(|n| {
                            oracle::is_semop_syscall(n) || oracle::is_msg_syscall(n) || oracle::is_mq_syscall(n)
                        })
                }
            };
            if asleep {
                w.in_flight = true;
                return Ok(Started::Blocked);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{op:?}: process {pid} neither answered nor was seen asleep in semop within {ASYNC_WATCHDOG:?} \
                     (last seen {now:?})"
                ));
            }
            wait = (wait * 2).min(ASYNC_POLL_MAX);
        }
    }

    /// The reply of `pid`'s call left asleep by [`Coordinator::start`].
    fn finish(&mut self, pid: u32) -> Result<Reply, String> {
        let w = self.workers.get_mut(&pid).ok_or_else(|| format!("no live test process with pid {pid}"))?;
        if !w.in_flight {
            return Err(format!("finish: process {pid} has no started call asleep"));
        }
        let msg = match w.chan.recv_line(Some(ASYNC_WATCHDOG)) {
            Ok(Some(line)) => serde_json::from_slice(&line).map_err(|e| format!("worker {pid} sent garbage: {e}"))?,
            Ok(None) => return Err(format!("worker {pid} closed its channel (died?)")),
            Err(e) if e == uipc_abi::Errno::ETIMEDOUT => {
                let now = oracle::proc_activity(pid);
                return Err(format!("finish: process {pid} still blocked after {ASYNC_WATCHDOG:?} ({now:?})"));
            }
            Err(e) => return Err(errno_text(&format!("reading from worker {pid}"), e)),
        };
        w.in_flight = false;
        match msg {
            WorkerMsg::Reply(r) => Ok(r),
            other => Err(format!("finish: unexpected {other:?}")),
        }
    }

    /// SIGKILLs every worker and waits (briefly) until they are gone.
    fn kill_all(&mut self) {
        let workers = std::mem::take(&mut self.workers);
        for pid in workers.keys() {
            let _ = oracle::kill(*pid);
        }
        for w in workers.values() {
            let _ = oracle::wait_readable(w.pidfd.as_fd(), Duration::from_secs(5));
        }
    }
}

// --------------------------------------------------------------------- worker

/// A freshly forked worker: isolate, take the identity, greet, serve.
fn worker_start(chan: Channel, who: &Identity) -> ! {
    let setup = oracle::stdio_to_null()
        .map_err(|e| errno_text("stdio to /dev/null", e))
        .and_then(|()| oracle::close_fds_except(chan.as_fd().as_raw_fd()).map_err(|e| errno_text("close_range", e)))
        .and_then(|()| {
            oracle::set_identity(who.uid, who.gid, &who.groups).map_err(|e| errno_text("setgroups/setgid/setuid", e))
        })
        .and_then(|()| oracle::drop_caps(&who.drop_caps).map_err(|e| errno_text("capset", e)))
        .and_then(|()| oracle::die_with_parent().map_err(|e| errno_text("PR_SET_PDEATHSIG", e)))
        .and_then(|()| oracle::interrupt_on_sigusr1().map_err(|e| errno_text("sigaction(SIGUSR1)", e)));
    let msg = match setup {
        Ok(()) => WorkerMsg::Ready,
        Err(why) => WorkerMsg::Failed(why),
    };
    let failed = matches!(msg, WorkerMsg::Failed(_));
    if chan.send_line(&to_line(&msg), None).is_err() || failed {
        oracle::exit_now(1);
    }
    serve(chan, &who.drop_caps)
}

/// `uipc-kernel-agent --worker <fd> --drop-caps <n,n,…>`: a worker's new
/// image after [`Op::Exec`].
fn worker_after_exec(args: &[String]) -> ! {
    let fd = args.get(2).and_then(|s| s.parse::<i32>().ok());
    let caps: Vec<u32> = match (args.get(3).map(String::as_str), args.get(4)) {
        (Some("--drop-caps"), Some(list)) => {
            list.split(',').filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect()
        }
        _ => Vec::new(),
    };
    let Some(Ok(fd)) = fd.map(oracle::adopt_inherited_fd) else {
        eprintln!("uipc-kernel-agent: --worker needs an inherited socket descriptor");
        oracle::exit_now(2);
    };
    let chan = Channel::from_fd(fd);
    // execve as uid 0 recomputes the capability sets from the bounding set:
    // drop the identity's capabilities again.
    // So does it reset the SIGUSR1 handler (to the default, which kills).
    let msg = match oracle::drop_caps(&caps) {
        Err(e) => WorkerMsg::Failed(errno_text("capset after exec", e)),
        Ok(()) => match oracle::interrupt_on_sigusr1() {
            Ok(()) => WorkerMsg::Ready,
            Err(e) => WorkerMsg::Failed(errno_text("sigaction(SIGUSR1) after exec", e)),
        },
    };
    let failed = matches!(msg, WorkerMsg::Failed(_));
    if chan.send_line(&to_line(&msg), None).is_err() || failed {
        oracle::exit_now(1);
    }
    serve(chan, &caps)
}

/// Serves operations until told to exit or the coordinator goes away.
fn serve(chan: Channel, drop_caps: &[u32]) -> ! {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_loop(chan, drop_caps)));
    oracle::exit_now(if outcome.is_ok() { 0 } else { 101 })
}

fn serve_loop(mut chan: Channel, drop_caps: &[u32]) {
    loop {
        let line = match chan.recv_line(None) {
            Ok(Some(l)) => l,
            // The coordinator is gone: so are we.
            Ok(None) | Err(_) => return,
        };
        let msg = match serde_json::from_slice::<Op>(&line) {
            Err(e) => WorkerMsg::Failed(format!("bad op: {e}")),
            Ok(Op::Exit) => return,
            Ok(Op::Fork) => {
                let Some(new_fd) = chan.take_fd() else {
                    let _ = chan.send_line(&to_line(&WorkerMsg::Failed("fork without a channel".into())), None);
                    continue;
                };
                match oracle::fork() {
                    Err(e) => WorkerMsg::Reply(Reply::err(e.raw())),
                    Ok(Forked::Child) => {
                        // The parent's client stays the parent's: its socket is
                        // closed below with every other inherited descriptor,
                        // so it must never be dropped (that would close a
                        // reused descriptor number). The child connects anew.
                        CLIENT.with(|slot| std::mem::forget(slot.borrow_mut().take()));
                        // Serve on the new channel; the parent keeps the old one.
                        chan = Channel::from_fd(new_fd);
                        // Under the shim, its (new) connection is the
                        // child's own: leave it open.
                        if LIBC.get().is_none() && oracle::close_fds_except(chan.as_fd().as_raw_fd()).is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(Forked::Parent(child)) => {
                        drop(new_fd);
                        // Daemon mode: the child's inherited attachments
                        // count from now on, before either side goes on.
                        match with_client(|c| c.forked(child)) {
                            Ok(()) => WorkerMsg::Reply(Reply::ok(i64::from(child))),
                            Err(e) => WorkerMsg::Failed(errno_text("registering the fork", e)),
                        }
                    }
                }
            }
            Ok(Op::Exec) => {
                let fd = chan.as_fd().as_raw_fd().to_string();
                let caps = drop_caps.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                let mut argv = vec!["uipc-kernel-agent", "--worker", &fd, "--drop-caps", &caps];
                if let Some(t) = DAEMON.get() {
                    argv.extend(["--daemon", t.socket.to_str().unwrap_or(""), &t.namespace]);
                }
                if let Some(t) = LIBC.get() {
                    argv.extend(["--libc", t.socket.to_str().unwrap_or(""), &t.namespace]);
                }
                let e = match with_client(Client::exec).and_then(|()| oracle::keep_across_exec(chan.as_fd())) {
                    Ok(()) => oracle::execv(SELF_EXE, &argv),
                    Err(e) => e,
                };
                WorkerMsg::Reply(Reply::err(e.raw()))
            }
            Ok(Op::Kill) => WorkerMsg::Failed("Kill is performed by the coordinator".into()),
            Ok(Op::Signal) => WorkerMsg::Failed("Signal is performed by the coordinator".into()),
            Ok(op) => WorkerMsg::Reply(execute(&op)),
        };
        if chan.send_line(&to_line(&msg), None).is_err() {
            return;
        }
    }
}

fn reply<T>(r: Result<T, uipc_abi::Errno>, f: impl FnOnce(T) -> Option<i64>) -> Reply {
    match r {
        Ok(v) => match f(v) {
            Some(v) => Reply::ok(v),
            None => Reply::err(uipc_abi::Errno::EOVERFLOW.raw()),
        },
        Err(e) => Reply::err(e.raw()),
    }
}

thread_local! {
    /// A worker's connection to the daemon (daemon mode), made on first use
    /// so that it carries the worker's identity.
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

/// Runs `f` with this worker's client; `Ok(())`-like no-op in kernel mode.
fn with_client<T: Default>(f: impl FnOnce(&Client) -> Result<T, uipc_abi::Errno>) -> Result<T, uipc_abi::Errno> {
    let Some(target) = DAEMON.get() else { return Ok(T::default()) };
    CLIENT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(connect_daemon(target)?);
        }
        match slot.as_ref() {
            Some(c) => f(c),
            None => Err(uipc_abi::Errno::EIO),
        }
    })
}

/// The reply to a successful `shmat`: the address, and the mapping's
/// length (the segment's size, read without side effects by SHM_STAT_ANY,
/// rounded to pages) so that transcripts can name addresses inside it.
fn attached(r: Result<u64, uipc_abi::Errno>, segsz: impl FnOnce() -> Result<u64, uipc_abi::Errno>) -> Reply {
    match r.map(i64::try_from) {
        Ok(Ok(a)) => {
            let len = segsz().map_or(0, |s| s.div_ceil(uipc_abi::PAGE_SIZE) * uipc_abi::PAGE_SIZE);
            Reply { ret: Ok(a), data: Data::Attached { len } }
        }
        Ok(Err(_)) => Reply::err(uipc_abi::Errno::EOVERFLOW.raw()),
        Err(e) => Reply::err(e.raw()),
    }
}

/// Performs a memory or IPC operation for real in this process: through
/// the kernel, or (daemon mode) through uipc.
fn execute(op: &Op) -> Reply {
    if DAEMON.get().is_some() {
        return execute_uipc(op);
    }
    match *op {
        Op::ShmGet { key, size, flags } => reply(sys::shmget(key, size, flags), |id| Some(i64::from(id))),
        Op::ShmAt { id, addr, flags } => attached(sys::shmat(id, addr, flags), || {
            let mut out = [0u8; CTL_BUF_LEN];
            sys::shmctl(id % 32768, uipc_abi::SHM_STAT_ANY, ShmctlBuf::Out(&mut out))
                .map(|_| oracle::decode::<uipc_abi::Shmid64Ds>(&out).shm_segsz)
        }),
        Op::ShmDt { addr } => reply(sys::shmdt(addr), |()| Some(0)),
        Op::ShmCtl { id, cmd, ref buf } => shmctl(id, cmd, buf),
        Op::Munmap { addr, len } => reply(oracle::munmap(addr, len), |()| Some(0)),
        Op::Mprotect { addr, len, prot } => reply(oracle::mprotect(addr, len, prot), |()| Some(0)),
        Op::Write { addr, ref bytes } => reply(oracle::write_mem(addr, bytes), |()| Some(0)),
        Op::Read { addr, len } => match oracle::read_mem(addr, len) {
            Ok(b) => Reply { ret: Ok(0), data: Data::Bytes(b) },
            Err(e) => Reply::err(e.raw()),
        },
        Op::FindFree { len } => reply(oracle::find_free(len), |a| i64::try_from(a).ok()),
        Op::SemGet { key, nsems, flags } => reply(sys::semget(key, nsems, flags), |id| Some(i64::from(id))),
        Op::SemOp { id, ref sops, timeout } => {
            let sops: Vec<uipc_abi::Sembuf> = sops.iter().map(|b| b.to_abi()).collect();
            let r = match timeout {
                None => sys::semop(id, &sops),
                Some(Timeout::Val { sec, nsec }) => sys::semtimedop(id, &sops, SemTimeout::After { sec, nsec }),
                Some(Timeout::Fault) => sys::semtimedop(id, &sops, SemTimeout::Fault),
            };
            reply(r, Some)
        }
        Op::SemCtl { id, semnum, cmd, ref arg } => semctl(id, semnum, cmd, arg),
        Op::MsgGet { key, flags } => reply(sys::msgget(key, flags), |id| Some(i64::from(id))),
        Op::MsgSnd { id, mtype, ref text, flags, fault } => reply(sys::msgsnd(id, mtype, text, flags, fault), Some),
        Op::MsgRcv { id, size, msgtyp, flags, fault } => {
            match sys::msgrcv(id, usize::try_from(size).unwrap_or(usize::MAX), msgtyp, flags, fault) {
                Ok((n, mtype, text)) => Reply { ret: Ok(n), data: Data::Msg { mtype, text } },
                Err(e) => Reply::err(e.raw()),
            }
        }
        Op::MsgCtl { id, cmd, ref buf } => msgctl(id, cmd, buf),
        mq_op!() => mq_libc(op),
        Op::Fork | Op::Exec | Op::Exit | Op::Kill | Op::Signal => Reply::err(uipc_abi::Errno::EINVAL.raw()),
    }
}

/// The data a successful `msgctl` wrote into an output buffer.
fn msg_data(cmd: i32, out: &[u8; CTL_BUF_LEN]) -> Data {
    match cmd {
        uipc_abi::IPC_STAT | uipc_abi::MSG_STAT | uipc_abi::MSG_STAT_ANY => {
            Data::MsgDs(MsgDsView::from_abi(&oracle::decode(out)))
        }
        uipc_abi::IPC_INFO | uipc_abi::MSG_INFO => Data::Msginfo(oracle::decode(out)),
        _ => Data::None,
    }
}

fn msgctl(id: i32, cmd: i32, buf: &MsgCtlBuf) -> Reply {
    match buf {
        MsgCtlBuf::Null => reply(sys::msgctl(id, cmd, MsgctlBuf::Null), Some),
        MsgCtlBuf::Fault => reply(sys::msgctl(id, cmd, MsgctlBuf::Fault), Some),
        MsgCtlBuf::Set { uid, gid, mode, qbytes } => {
            let mut ds = uipc_abi::Msqid64Ds::default();
            ds.msg_perm.uid = *uid;
            ds.msg_perm.gid = *gid;
            ds.msg_perm.mode = *mode;
            ds.msg_qbytes = *qbytes;
            reply(sys::msgctl(id, cmd, MsgctlBuf::Set(&ds)), Some)
        }
        MsgCtlBuf::Out => {
            let mut out = [0u8; CTL_BUF_LEN];
            match sys::msgctl(id, cmd, MsgctlBuf::Out(&mut out)) {
                Ok(v) => Reply { ret: Ok(v), data: msg_data(cmd, &out) },
                Err(e) => Reply::err(e.raw()),
            }
        }
    }
}

/// `msgctl` through uipc, with the copies a C caller's shim performs.
fn msgctl_uipc(id: i32, cmd: i32, buf: &MsgCtlBuf) -> Reply {
    use uipc_client::MsgOut;
    let set = match buf {
        MsgCtlBuf::Set { uid, gid, mode, qbytes } => {
            Some(uipc_client::MsgSetArg { perm: PermSet { uid: *uid, gid: *gid, mode: *mode }, qbytes: *qbytes })
        }
        MsgCtlBuf::Out if cmd == uipc_abi::IPC_SET => {
            Some(uipc_client::MsgSetArg { perm: PermSet { uid: 0, gid: 0, mode: 0 }, qbytes: 0 })
        }
        _ => None,
    };
    let r = with_client(|c| c.msgctl(id, cmd, set).map(Some));
    match r {
        Err(e) => Reply::err(e.raw()),
        Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
        Ok(Some((ret, out))) => {
            let data = match out {
                MsgOut::None => return Reply::ok(ret),
                MsgOut::MsgDs(ds) => Data::MsgDs(MsgDsView::from_abi(&ds)),
                MsgOut::Msginfo(i) => Data::Msginfo(i),
            };
            // COM-CTL-4: the copy-out fails after the command's effect.
            if !matches!(buf, MsgCtlBuf::Out) {
                return Reply::err(uipc_abi::Errno::EFAULT.raw());
            }
            Reply { ret: Ok(ret), data }
        }
    }
}

fn semctl(id: i32, semnum: i32, cmd: i32, arg: &SemArg) -> Reply {
    match arg {
        SemArg::None => reply(sys::semctl(id, semnum, cmd, SemctlArg::None), Some),
        SemArg::Val(v) => reply(sys::semctl(id, semnum, cmd, SemctlArg::Val(*v)), Some),
        SemArg::Fault => reply(sys::semctl(id, semnum, cmd, SemctlArg::Fault), Some),
        SemArg::Array(values) => reply(sys::semctl(id, semnum, cmd, SemctlArg::Array(values)), Some),
        SemArg::Set { uid, gid, mode } => {
            let mut ds = uipc_abi::Semid64Ds::default();
            ds.sem_perm.uid = *uid;
            ds.sem_perm.gid = *gid;
            ds.sem_perm.mode = *mode;
            reply(sys::semctl(id, semnum, cmd, SemctlArg::Set(&ds)), Some)
        }
        SemArg::Out => {
            // GETALL writes nsems values; nsems of an id never changes.
            let nsems = if cmd == uipc_abi::GETALL { sys::sem_nsems(id) } else { 0 };
            let mut out = Vec::new();
            match sys::semctl(id, semnum, cmd, SemctlArg::Out(&mut out)) {
                Err(e) => Reply::err(e.raw()),
                Ok(v) => {
                    let mut head = [0u8; CTL_BUF_LEN];
                    let n = head.len().min(out.len());
                    head[..n].copy_from_slice(&out[..n]);
                    let data = match cmd {
                        uipc_abi::IPC_STAT | uipc_abi::SEM_STAT | uipc_abi::SEM_STAT_ANY => {
                            Data::SemDs(SemDsView::from_abi(&oracle::decode(&head)))
                        }
                        uipc_abi::IPC_INFO | uipc_abi::SEM_INFO => Data::Seminfo(oracle::decode(&head)),
                        uipc_abi::GETALL => Data::Values(
                            out.chunks_exact(2).take(nsems).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect(),
                        ),
                        _ => Data::None,
                    };
                    Reply { ret: Ok(v), data }
                }
            }
        }
    }
}

fn shmctl(id: i32, cmd: i32, buf: &CtlBuf) -> Reply {
    match *buf {
        CtlBuf::Null => reply(sys::shmctl(id, cmd, ShmctlBuf::Null), Some),
        CtlBuf::Fault => reply(sys::shmctl(id, cmd, ShmctlBuf::Fault), Some),
        CtlBuf::Set { uid, gid, mode } => {
            let mut ds = uipc_abi::Shmid64Ds::default();
            ds.shm_perm.uid = uid;
            ds.shm_perm.gid = gid;
            ds.shm_perm.mode = mode;
            reply(sys::shmctl(id, cmd, ShmctlBuf::Set(&ds)), Some)
        }
        CtlBuf::Out => {
            let mut out = [0u8; CTL_BUF_LEN];
            match sys::shmctl(id, cmd, ShmctlBuf::Out(&mut out)) {
                Err(e) => Reply::err(e.raw()),
                Ok(v) => {
                    let data = match cmd {
                        uipc_abi::IPC_STAT | uipc_abi::SHM_STAT | uipc_abi::SHM_STAT_ANY => {
                            Data::ShmDs(ShmDsView::from_abi(&oracle::decode(&out)))
                        }
                        uipc_abi::IPC_INFO => Data::Shminfo(ShminfoView::from_abi(&oracle::decode(&out))),
                        uipc_abi::SHM_INFO => Data::ShmInfo(ShmInfoView::from_abi(&oracle::decode(&out))),
                        _ => Data::None,
                    };
                    Reply { ret: Ok(v), data }
                }
            }
        }
    }
}

/// The IPC calls of [`execute`]: the kernel's system calls, or (libc
/// mode) the C library's functions, which the shim serves.
mod sys {
    use uipc_abi::{Errno, Sembuf};
    use uipc_sys::libc_ipc;
    use uipc_sys::oracle::{self, SemTimeout, SemctlArg, ShmctlBuf};

    fn libc() -> bool {
        super::LIBC.get().is_some()
    }

    pub(super) fn shmget(key: i32, size: u64, flags: i32) -> Result<i32, Errno> {
        if libc() {
            libc_ipc::shmget(key, size, flags)
        } else {
            oracle::shmget(key, size, flags)
        }
    }
    pub(super) fn shmat(id: i32, addr: u64, flags: i32) -> Result<u64, Errno> {
        if libc() {
            libc_ipc::shmat(id, addr, flags)
        } else {
            oracle::shmat(id, addr, flags)
        }
    }
    pub(super) fn shmdt(addr: u64) -> Result<(), Errno> {
        if libc() {
            libc_ipc::shmdt(addr)
        } else {
            oracle::shmdt(addr)
        }
    }
    pub(super) fn shmctl(id: i32, cmd: i32, buf: ShmctlBuf<'_>) -> Result<i64, Errno> {
        if libc() {
            libc_ipc::shmctl(id, cmd, buf)
        } else {
            oracle::shmctl(id, cmd, buf)
        }
    }
    pub(super) fn semget(key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
        if libc() {
            libc_ipc::semget(key, nsems, flags)
        } else {
            oracle::semget(key, nsems, flags)
        }
    }
    pub(super) fn semop(id: i32, sops: &[Sembuf]) -> Result<i64, Errno> {
        if libc() {
            libc_ipc::semop(id, sops)
        } else {
            oracle::semop(id, sops)
        }
    }
    pub(super) fn semtimedop(id: i32, sops: &[Sembuf], timeout: SemTimeout) -> Result<i64, Errno> {
        if libc() {
            libc_ipc::semtimedop(id, sops, timeout)
        } else {
            oracle::semtimedop(id, sops, timeout)
        }
    }
    pub(super) fn semctl(id: i32, semnum: i32, cmd: i32, arg: SemctlArg<'_>) -> Result<i64, Errno> {
        if libc() {
            libc_ipc::semctl(id, semnum, cmd, arg)
        } else {
            oracle::semctl(id, semnum, cmd, arg)
        }
    }
    pub(super) fn msgget(key: i32, flags: i32) -> Result<i32, Errno> {
        if libc() {
            libc_ipc::msgget(key, flags)
        } else {
            oracle::msgget(key, flags)
        }
    }
    pub(super) fn msgsnd(id: i32, mtype: i64, text: &[u8], flags: i32, fault: bool) -> Result<i64, Errno> {
        if libc() {
            libc_ipc::msgsnd(id, mtype, text, flags, fault)
        } else {
            oracle::msgsnd(id, mtype, text, flags, fault)
        }
    }
    pub(super) fn msgrcv(
        id: i32,
        size: usize,
        msgtyp: i64,
        flags: i32,
        fault: bool,
    ) -> Result<(i64, i64, Vec<u8>), Errno> {
        if libc() {
            libc_ipc::msgrcv(id, size, msgtyp, flags, fault)
        } else {
            oracle::msgrcv(id, size, msgtyp, flags, fault)
        }
    }
    pub(super) fn msgctl(id: i32, cmd: i32, buf: oracle::MsgctlBuf<'_>) -> Result<i64, Errno> {
        if libc() {
            libc_ipc::msgctl(id, cmd, buf)
        } else {
            oracle::msgctl(id, cmd, buf)
        }
    }
    pub(super) fn sem_nsems(id: i32) -> usize {
        if libc() {
            libc_ipc::sem_nsems(id)
        } else {
            oracle::sem_nsems(id)
        }
    }
}

/// [`execute`] against uipc: IPC calls through the client; memory stays real.
fn execute_uipc(op: &Op) -> Reply {
    match *op {
        Op::ShmGet { key, size, flags } => {
            reply(with_client(|c| c.shmget(key, size, flags)), |id| Some(i64::from(id.0)))
        }
        Op::ShmAt { id, addr, flags } => attached(with_client(|c| c.shmat(id, addr, flags)), || {
            match with_client(|c| c.shmctl(id % 32768, uipc_abi::SHM_STAT_ANY, None).map(Some))? {
                Some((_, CtlOut::ShmDs(ds))) => Ok(ds.shm_segsz),
                _ => Err(uipc_abi::Errno::EIO),
            }
        }),
        Op::ShmDt { addr } => reply(with_client(|c| c.shmdt(addr)), |()| Some(0)),
        Op::ShmCtl { id, cmd, ref buf } => shmctl_uipc(id, cmd, buf),
        Op::SemGet { key, nsems, flags } => {
            reply(with_client(|c| c.semget(key, nsems, flags)), |id| Some(i64::from(id.0)))
        }
        Op::SemOp { id, ref sops, timeout } => {
            let timeout = match timeout {
                // The timeout is copied in before anything else (SEM-OP-1).
                Some(Timeout::Fault) => return Reply::err(uipc_abi::Errno::EFAULT.raw()),
                Some(Timeout::Val { sec, nsec }) => Some((sec, nsec)),
                None => None,
            };
            let sops: Vec<uipc_abi::Sembuf> = sops.iter().map(|s| s.to_abi()).collect();
            let nsops = u32::try_from(sops.len()).unwrap_or(u32::MAX);
            reply(with_client(|c| c.semop_raw(id, nsops, Some(&sops), timeout).map(Some)), |v| v)
        }
        Op::SemCtl { id, semnum, cmd, ref arg } => semctl_uipc(id, semnum, cmd, arg),
        Op::MsgGet { key, flags } => reply(with_client(|c| c.msgget(key, flags)), |id| Some(i64::from(id.0))),
        Op::MsgSnd { id, mtype, ref text, flags, fault } => {
            let len = i64::try_from(text.len()).unwrap_or(i64::MAX);
            // A bad msgp: mtype cannot be read (EFAULT first, MSG-SND-1).
            let (mtype, text) = if fault { (None, None) } else { (Some(mtype), Some(text.as_slice())) };
            reply(with_client(|c| c.msgsnd_raw(id, mtype, len, text, flags).map(Some)), |v| v)
        }
        Op::MsgRcv { id, size, msgtyp, flags, fault } => {
            // The kernel takes msgsz as size_t and checks `(long) msgsz < 0`.
            let size = i64::from_ne_bytes(size.to_ne_bytes());
            match with_client(|c| c.msgrcv_raw(id, size, msgtyp, flags, !fault).map(Some)) {
                // MSG-RCV-5: the copy-out fails after the dequeue.
                Ok(Some(_)) if fault => Reply::err(uipc_abi::Errno::EFAULT.raw()),
                Ok(Some(m)) => Reply {
                    ret: Ok(i64::try_from(m.data.len()).unwrap_or(-1)),
                    data: Data::Msg { mtype: m.mtype, text: m.data },
                },
                Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
                Err(e) => Reply::err(e.raw()),
            }
        }
        Op::MsgCtl { id, cmd, ref buf } => msgctl_uipc(id, cmd, buf),
        mq_op!() => mq_uipc(op),
        Op::Munmap { addr, len } => {
            reply(oracle::munmap(addr, len).and_then(|()| with_client(|c| c.unmapped(addr, len))), |()| Some(0))
        }
        Op::Mprotect { addr, len, prot } => {
            let told = |()| with_client(|c| c.protected(addr, len, u32::try_from(prot).unwrap_or(u32::MAX)));
            reply(oracle::mprotect(addr, len, prot).and_then(told), |()| Some(0))
        }
        _ => execute_memory(op),
    }
}

/// A descriptor as the C library's `mqd_t` (an `int`); out of range is
/// `-1`, a descriptor no call accepts.
fn mqd_int(mqd: i64) -> i32 {
    i32::try_from(mqd).unwrap_or(-1)
}

/// The POSIX message-queue operations through the C library: glibc's
/// wrappers of the kernel's calls, or (libc mode) the shim's.
fn mq_libc(op: &Op) -> Reply {
    use uipc_sys::libc_ipc as c;
    match *op {
        Op::MqOpen { ref name, oflag, mode, attr } => {
            reply(c::mq_open(name, oflag, mode, attr), |fd| Some(i64::from(fd)))
        }
        Op::MqSend { mqd, ref text, prio, deadline } => {
            reply(c::mq_timedsend(mqd_int(mqd), text, prio, deadline), Some)
        }
        Op::MqReceive { mqd, len, deadline } => match c::mq_timedreceive(mqd_int(mqd), len, deadline) {
            Ok((text, prio)) => {
                Reply { ret: Ok(i64::try_from(text.len()).unwrap_or(-1)), data: Data::MqMsg { prio, text } }
            }
            Err(e) => Reply::err(e.raw()),
        },
        Op::MqGetSetAttr { mqd, new_flags } => match c::mq_getsetattr(mqd_int(mqd), new_flags) {
            Ok([flags, maxmsg, msgsize, curmsgs]) => {
                Reply { ret: Ok(0), data: Data::MqAttr { flags, maxmsg, msgsize, curmsgs } }
            }
            Err(e) => Reply::err(e.raw()),
        },
        Op::MqNotify { mqd, how } => reply(c::mq_notify(mqd_int(mqd), how), Some),
        Op::MqUnlink { ref name } => reply(c::mq_unlink(name), Some),
        Op::MqClose { mqd } => reply(c::mq_close(mqd_int(mqd)), Some),
        Op::MqRead { mqd } => match c::read_status(mqd_int(mqd)) {
            Ok(b) => Reply { ret: Ok(i64::try_from(b.len()).unwrap_or(-1)), data: Data::Bytes(b) },
            Err(e) => Reply::err(e.raw()),
        },
        _ => Reply::err(uipc_abi::Errno::EINVAL.raw()),
    }
}

/// A daemon-mode worker's queue descriptors: the descriptor number the
/// test sees, the daemon's handle and the descriptor itself.
static MQ_FDS: std::sync::Mutex<BTreeMap<i64, (uipc_client::MqHandle, OwnedFd)>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The daemon's handle behind descriptor `mqd`; an unknown descriptor
/// becomes a handle the daemon knows nothing of, so that its checks run in
/// their order (a bad priority before the bad descriptor, MQ-SND-2).
fn mq_handle(mqd: i64) -> uipc_client::MqHandle {
    let fds = MQ_FDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    fds.get(&mqd).map_or(uipc_client::MqHandle(u64::MAX), |(h, _)| *h)
}

/// glibc's name check (MQ-NAME-1): the leading `/` is required and
/// stripped before the kernel sees the name.
fn mq_kernel_name(name: &[u8]) -> Result<&[u8], uipc_abi::Errno> {
    name.strip_prefix(b"/").ok_or(uipc_abi::Errno::EINVAL)
}

/// The POSIX message-queue operations through uipc-client, with the C
/// library's part a C caller's shim performs.
fn mq_uipc(op: &Op) -> Reply {
    match *op {
        Op::MqOpen { ref name, oflag, mode, attr } => {
            let opened = mq_kernel_name(name).and_then(|n| {
                // glibc passes attr only with O_CREAT (MQ-OPEN-2).
                let attr = if oflag & uipc_core::posix::mqueue::O_CREAT != 0 { attr } else { None };
                with_client(|c| c.mq_open(n, oflag, mode, attr).map(Some))
            });
            match opened {
                Ok(Some((h, fd))) => {
                    let n = i64::from(fd.as_raw_fd());
                    MQ_FDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(n, (h, fd));
                    Reply::ok(n)
                }
                Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
                Err(e) => Reply::err(e.raw()),
            }
        }
        Op::MqSend { mqd, ref text, prio, deadline } => {
            let h = mq_handle(mqd);
            let r = with_client(|c| c.sleeper().and_then(|mut s| s.mq_send(h, text, prio, deadline)));
            reply(r, |()| Some(0))
        }
        Op::MqReceive { mqd, len, deadline } => {
            let h = mq_handle(mqd);
            match with_client(|c| c.sleeper().and_then(|mut s| s.mq_receive(h, len, deadline)).map(Some)) {
                Ok(Some((text, prio))) => {
                    Reply { ret: Ok(i64::try_from(text.len()).unwrap_or(-1)), data: Data::MqMsg { prio, text } }
                }
                Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
                Err(e) => Reply::err(e.raw()),
            }
        }
        Op::MqGetSetAttr { mqd, new_flags } => {
            let h = mq_handle(mqd);
            match with_client(|c| c.mq_getsetattr(h, new_flags).map(Some)) {
                Ok(Some(a)) => Reply {
                    ret: Ok(0),
                    data: Data::MqAttr { flags: a.flags, maxmsg: a.maxmsg, msgsize: a.msgsize, curmsgs: a.curmsgs },
                },
                Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
                Err(e) => Reply::err(e.raw()),
            }
        }
        Op::MqNotify { mqd, how } => {
            let h = mq_handle(mqd);
            let how = how.map(|(notify, signo)| (notify, signo, 0));
            reply(with_client(|c| c.mq_notify(h, how).map(|_| ())), |()| Some(0))
        }
        Op::MqUnlink { ref name } => {
            let r = mq_kernel_name(name).and_then(|n| with_client(|c| c.mq_unlink(n)));
            // glibc reports the kernel's EPERM as EACCES (MQ-UNL-1).
            reply(r.map_err(|e| if e == uipc_abi::Errno::EPERM { uipc_abi::Errno::EACCES } else { e }), |()| Some(0))
        }
        Op::MqClose { mqd } => {
            let held = MQ_FDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&mqd);
            match held {
                // close(2) of a descriptor this worker does not hold.
                None => Reply::err(uipc_abi::Errno::EBADF.raw()),
                Some((h, fd)) => {
                    drop(fd);
                    reply(with_client(|c| c.mq_close(h)), |()| Some(0))
                }
            }
        }
        Op::MqRead { mqd } => {
            let h = mq_handle(mqd);
            match with_client(|c| c.mq_status(h)) {
                Ok(t) => Reply { ret: Ok(i64::try_from(t.len()).unwrap_or(-1)), data: Data::Bytes(t.into_bytes()) },
                Err(e) => Reply::err(e.raw()),
            }
        }
        _ => Reply::err(uipc_abi::Errno::EINVAL.raw()),
    }
}

/// The memory operations, the same for both targets.
fn execute_memory(op: &Op) -> Reply {
    match *op {
        Op::Write { addr, ref bytes } => reply(oracle::write_mem(addr, bytes), |()| Some(0)),
        Op::Read { addr, len } => match oracle::read_mem(addr, len) {
            Ok(b) => Reply { ret: Ok(0), data: Data::Bytes(b) },
            Err(e) => Reply::err(e.raw()),
        },
        Op::FindFree { len } => reply(oracle::find_free(len), |a| i64::try_from(a).ok()),
        _ => Reply::err(uipc_abi::Errno::EINVAL.raw()),
    }
}

/// `shmctl` through uipc, with the user-buffer copies a C caller's libc
/// shim performs: the IPC_SET buffer is read before anything else (after
/// the argument checks), stat/info output is written after the call.
fn shmctl_uipc(id: i32, cmd: i32, buf: &CtlBuf) -> Reply {
    let writes_buffer = ShmCmd::decode(id, cmd).is_ok_and(ShmCmd::writes_buffer);
    let set = match (cmd, buf) {
        (uipc_abi::IPC_SET, CtlBuf::Null | CtlBuf::Fault) if id >= 0 => {
            return Reply::err(uipc_abi::Errno::EFAULT.raw());
        }
        (_, CtlBuf::Set { uid, gid, mode }) => Some((*uid, *gid, *mode)),
        (uipc_abi::IPC_SET, CtlBuf::Out) => Some((0, 0, 0)),
        _ => None,
    };
    match with_client(|c| c.shmctl(id, cmd, set).map(Some)) {
        Err(e) => Reply::err(e.raw()),
        Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
        Ok(Some((ret, out))) => {
            if writes_buffer && !matches!(buf, CtlBuf::Out) {
                return Reply::err(uipc_abi::Errno::EFAULT.raw());
            }
            let data = match out {
                CtlOut::None => Data::None,
                CtlOut::ShmDs(ds) => Data::ShmDs(ShmDsView::from_abi(&ds)),
                CtlOut::Shminfo(i) => Data::Shminfo(ShminfoView::from_abi(&i)),
                CtlOut::ShmInfo(i) => Data::ShmInfo(ShmInfoView::from_abi(&i)),
            };
            Reply { ret: Ok(ret), data }
        }
    }
}

/// `semctl` through uipc, with the user-memory copies a C caller's shim
/// performs: the IPC_SET buffer is read first (after the argument checks),
/// SETALL's array after the lookup and permission check (the daemon is
/// told it was unreadable), output written after the call.
fn semctl_uipc(id: i32, semnum: i32, cmd: i32, arg: &SemArg) -> Reply {
    use uipc_client::{SemCtlArg, SemOut};
    let writes = SemCmd::decode(id, cmd).is_ok_and(SemCmd::writes_buffer);
    let nsems = || match with_client(|c| c.semctl(id % 32768, 0, uipc_abi::SEM_STAT_ANY, SemCtlArg::None).map(Some)) {
        Ok(Some((_, SemOut::SemDs(ds)))) => usize::try_from(ds.sem_nsems).unwrap_or(0),
        _ => 0,
    };
    let wire = match (cmd, arg) {
        (uipc_abi::IPC_SET, SemArg::None | SemArg::Fault) if id >= 0 => {
            return Reply::err(uipc_abi::Errno::EFAULT.raw());
        }
        (uipc_abi::IPC_SET, SemArg::Set { uid, gid, mode }) => {
            SemCtlArg::Set(PermSet { uid: *uid, gid: *gid, mode: *mode })
        }
        (uipc_abi::IPC_SET, SemArg::Out) => SemCtlArg::Set(PermSet { uid: 0, gid: 0, mode: 0 }),
        // The union's value is the argument's low 32 bits.
        (uipc_abi::SETVAL, SemArg::Val(v)) => SemCtlArg::Val(*v),
        (uipc_abi::SETVAL, SemArg::Fault) => SemCtlArg::Val(i32::try_from(oracle::FAULT_ADDR).unwrap_or(0)),
        (uipc_abi::SETVAL, _) => SemCtlArg::Val(0),
        (uipc_abi::SETALL, SemArg::Array(values)) => {
            // The kernel reads nsems values: a short array reads as zeros past its end.
            let mut v = values.clone();
            v.resize(nsems(), 0);
            SemCtlArg::Array(Some(v))
        }
        (uipc_abi::SETALL, SemArg::Out) => SemCtlArg::Array(Some(vec![0; nsems()])),
        (uipc_abi::SETALL, _) => SemCtlArg::Array(None),
        _ => SemCtlArg::None,
    };
    match with_client(|c| c.semctl(id, semnum, cmd, wire).map(Some)) {
        Err(e) => Reply::err(e.raw()),
        Ok(None) => Reply::err(uipc_abi::Errno::EIO.raw()),
        Ok(Some((ret, out))) => {
            if writes && !matches!(arg, SemArg::Out) {
                return Reply::err(uipc_abi::Errno::EFAULT.raw());
            }
            let data = match out {
                SemOut::None => Data::None,
                SemOut::SemDs(ds) => Data::SemDs(SemDsView::from_abi(&ds)),
                SemOut::Seminfo(i) => Data::Seminfo(i),
                SemOut::Values(v) => Data::Values(v),
            };
            Reply { ret: Ok(ret), data }
        }
    }
}
