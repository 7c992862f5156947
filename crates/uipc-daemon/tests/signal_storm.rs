//! Signal storm: worker processes loop on blocking semops while a storm
//! process showers them with SIGUSR1 (a handler without `SA_RESTART`), on
//! the kernel and on uipc alike. An interrupted semop must either not have
//! happened (`EINTR`) or have happened (success) — never both, never
//! neither — so, once every worker has done its fixed number of successful
//! operations, the semaphores hold exactly what the successes say.
//!
//! Two variants, on one set of two semaphores (sem 0 = 1, sem 1 = 0):
//! * mutex: 4 workers each do P (-1) then V (+1) on sem 0 until 300 pairs
//!   succeeded; a P that failed with `EINTR` is not followed by a V.
//! * counting: 2 producers each V sem 1 300 times, 2 consumers each P it
//!   until they got 300.
//!
//! `EINTR` on a V is counted and retried (the contract says it did not
//! happen, so retrying is right; a V that happened anyway would show in the
//! final value). Everything is bounded by counts, not time: the storm sends
//! 5,000 signals (to the workers' semop threads, with `tgkill`, skipping a
//! thread whose last SIGUSR1 is still pending so that none merges unseen)
//! and stops; each probe has a deadline after which it reports its counts
//! and fails, and the test has a watchdog. Workers `sched_yield` while
//! holding the mutex / after each V, so that the others sleep in P, where
//! the storm interrupts them (no sleeps, no timing: it only shapes the
//! interleaving). On the kernel the workers may still outrun the storm
//! (few or no `EINTR`s in a run): `EINTR` counts are reported, not asserted;
//! the balance always is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdout, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use uipc_abi::{Errno, Sembuf, IPC_CREAT, IPC_NOWAIT, IPC_PRIVATE};
use uipc_client::{Client, SemId};

const ENTRY: &str = "probe_entry_storm";
/// Workers per test (mutex: 4 workers; counting: 2 producers, 2 consumers).
const WORKERS: usize = 4;
/// Successful operations each worker must reach (P/V pairs, or Vs, or Ps).
const OPS: u64 = 300;
/// Signals the storm sends in all.
const SIGNALS: u64 = 5000;
/// A probe that has not finished after this long reports and fails.
const PROBE_DEADLINE: Duration = Duration::from_secs(40);
/// The whole test, at most.
const TEST_WATCHDOG_SECS: u64 = 120;

// ---------------------------------------------------------------- probes

static P_OK: AtomicU64 = AtomicU64::new(0);
static V_OK: AtomicU64 = AtomicU64::new(0);
static P_EINTR: AtomicU64 = AtomicU64::new(0);
static V_EINTR: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    // An atomic add is async-signal-safe.
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// Installs the SIGUSR1 handler without `SA_RESTART` and unblocks SIGUSR1
/// in this thread (the one that will sleep in semop, and that the storm
/// signals).
fn install_handler() {
    // SAFETY: an all-zero sigaction is "no flags, empty mask"; the handler
    // only does an atomic add (async-signal-safe); the set calls write our
    // local sets only.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = 0; // no SA_RESTART
        libc::sigemptyset(&raw mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &raw const sa, std::ptr::null_mut()), 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGUSR1);
        assert_eq!(libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut()), 0);
    }
}

fn counts_line(status: &str) -> String {
    format!(
        "RESULT status={status} p_ok={} v_ok={} p_eintr={} v_eintr={} handled={}",
        P_OK.load(Ordering::SeqCst),
        V_OK.load(Ordering::SeqCst),
        P_EINTR.load(Ordering::SeqCst),
        V_EINTR.load(Ordering::SeqCst),
        HANDLED.load(Ordering::SeqCst),
    )
}

/// The probe's deadline: past it, prints the counts so far and exits 3.
fn probe_deadline() {
    std::thread::spawn(|| {
        std::thread::sleep(PROBE_DEADLINE);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", counts_line("deadline"));
        let _ = out.flush();
        // SAFETY: _exit ends the process at once; nothing of ours is left
        // half-done that matters (the other thread sleeps in semop).
        unsafe { libc::_exit(3) };
    });
}

/// One semaphore set, as a worker reaches it.
enum Target {
    Kernel(i32),
    Uipc(Client, SemId),
}

impl Target {
    fn semop(&self, num: u16, op: i16, flags: i16) -> Result<(), Errno> {
        match self {
            Target::Kernel(id) => {
                let mut sb = libc::sembuf { sem_num: num, sem_op: op, sem_flg: flags };
                // SAFETY: semop reads one sembuf from a valid local.
                let r = unsafe { libc::semop(*id, &raw mut sb, 1) };
                if r == 0 {
                    Ok(())
                } else {
                    Err(Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap()))
                }
            }
            Target::Uipc(c, id) => c.semop(*id, &[Sembuf { sem_num: num, sem_op: op, sem_flg: flags }]),
        }
    }
}

/// One blocking operation on sem `num`; counts it. `true` on success,
/// `false` on `EINTR`; any other error fails the probe.
fn counted(t: &Target, num: u16, op: i16) -> bool {
    let (ok, eintr) = if op < 0 { (&P_OK, &P_EINTR) } else { (&V_OK, &V_EINTR) };
    match t.semop(num, op, 0) {
        Ok(()) => {
            ok.fetch_add(1, Ordering::SeqCst);
            true
        }
        Err(Errno::EINTR) => {
            eintr.fetch_add(1, Ordering::SeqCst);
            false
        }
        Err(e) => {
            println!("{}", counts_line("error"));
            panic!("semop(sem {num}, {op:+}) failed: {e:?}");
        }
    }
}

/// `sched_yield()`: shapes the interleaving (never synchronises anything).
fn yield_cpu() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

fn worker(role: &str) {
    probe_deadline();
    install_handler();
    let id = i32::try_from(probe_arg("SEMID")).unwrap();
    let target = match std::env::var("UIPC_STORM_TARGET").unwrap().as_str() {
        "kernel" => Target::Kernel(id),
        "uipc" => {
            let socket = std::env::var_os("UIPC_SOCKET").unwrap();
            let c = Client::connect_to(std::path::Path::new(&socket), "default").unwrap();
            Target::Uipc(c, SemId(id))
        }
        other => panic!("unknown target {other}"),
    };
    // A harmless wait-for-zero that fails at once (sem 0 is 1 now):
    // uipc opens its semop connection here, before the storm.
    assert_eq!(target.semop(0, 0, i16::try_from(IPC_NOWAIT).unwrap()), Err(Errno::EAGAIN));
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    println!("READY {tid}");
    std::io::stdout().flush().unwrap();
    // Go when the parent closes our stdin (read_to_end retries on EINTR).
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();

    match role {
        "mutex" => {
            while V_OK.load(Ordering::SeqCst) < OPS {
                if !counted(&target, 0, -1) {
                    continue; // interrupted P: not ours, no V
                }
                // Hold the mutex across a yield: the others queue up in P,
                // asleep, where the storm finds them.
                yield_cpu();
                while !counted(&target, 0, 1) {}
            }
        }
        "producer" => {
            while V_OK.load(Ordering::SeqCst) < OPS {
                // EINTR: it did not happen, so V again.
                let _ = counted(&target, 1, 1);
                // Let the consumers drain it: they sleep in P most of the time.
                yield_cpu();
            }
        }
        "consumer" => {
            while P_OK.load(Ordering::SeqCst) < OPS {
                let _ = counted(&target, 1, -1);
            }
        }
        other => panic!("unknown role {other}"),
    }
    println!("{}", counts_line("done"));
    std::io::stdout().flush().unwrap();
}

/// Whether thread `tid` of `pid` has a SIGUSR1 pending (sent, not yet
/// delivered); `None` if the thread is gone.
fn usr1_pending(pid: i32, tid: i32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigPnd:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).unwrap();
    Some(mask & (1 << (libc::SIGUSR1 - 1)) != 0)
}

/// The storm: `tgkill(pid, tid, SIGUSR1)` round-robin over the targets,
/// as fast as they take them, `SIGNALS` times in all. A standard signal
/// sent while one is still pending merges with it, so a target whose last
/// signal is still pending is passed over this round: every signal counted
/// is one delivered. A target whose thread is gone is dropped (the parent
/// reaps no worker before the storm ends, so no pid is reused meanwhile).
fn storm() {
    probe_deadline();
    let mut targets: Vec<(i32, i32)> = std::env::var("UIPC_STORM_TARGETS")
        .unwrap()
        .split(',')
        .map(|t| {
            let (p, t) = t.split_once(':').unwrap();
            (p.parse().unwrap(), t.parse().unwrap())
        })
        .collect();
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    let t = Instant::now();
    let mut sent = 0u64;
    let mut gone = 0usize;
    let mut merged = 0u64;
    let mut announced = false;
    let mut i = 0;
    while sent < SIGNALS && !targets.is_empty() {
        i %= targets.len();
        let (pid, tid) = targets[i];
        match usr1_pending(pid, tid) {
            None => {
                targets.swap_remove(i);
                gone += 1;
                continue;
            }
            Some(true) => {
                // Not yet delivered: another would merge with it, unseen.
                merged += 1;
                i += 1;
                continue;
            }
            Some(false) => {}
        }
        // SAFETY: tgkill takes integers only.
        let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
        if r == 0 {
            sent += 1;
            i += 1;
        } else {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "tgkill({pid}, {tid}): {e}");
            targets.swap_remove(i);
            gone += 1;
        }
        if !announced && sent >= u64::try_from(WORKERS).unwrap() {
            // One round done: the parent now releases the workers.
            println!("STORMING");
            std::io::stdout().flush().unwrap();
            announced = true;
        }
    }
    if !announced {
        println!("STORMING");
    }
    println!("STORM sent={sent} gone={gone} skipped-while-pending={merged} in {:?}", t.elapsed());
}

/// Probe entry point, not a test on its own: does its work only when a
/// test of this file re-executes the binary with `UIPC_PROBE` set.
#[test]
fn probe_entry_storm() {
    match std::env::var("UIPC_PROBE").as_deref() {
        Ok("storm-worker") => worker(&std::env::var("UIPC_STORM_ROLE").unwrap()),
        Ok("storm-storm") => storm(),
        _ => {}
    }
}

// ---------------------------------------------------------------- parent

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Mutex,
    Counting,
}

/// The set under test, as the test process reaches it.
enum Set {
    Kernel(KernelSet),
    Uipc { d: TestDaemon, c: Client, id: SemId },
}

/// A kernel set, removed on drop (even when the test fails).
struct KernelSet(i32);

impl Drop for KernelSet {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no argument.
        let r = unsafe { libc::semctl(self.0, 0, libc::IPC_RMID) };
        if r != 0 {
            eprintln!("IPC_RMID of kernel set {}: {}", self.0, std::io::Error::last_os_error());
        }
    }
}

impl Set {
    fn create(uipc: bool) -> Set {
        if uipc {
            let d = TestDaemon::start("storm");
            let c = d.client();
            let id = c.semget(IPC_PRIVATE, 2, IPC_CREAT | 0o600).unwrap();
            c.sem_setval(id, 0, 1).unwrap();
            c.sem_setval(id, 1, 0).unwrap();
            Set::Uipc { d, c, id }
        } else {
            // SAFETY: semget takes integers only.
            let id = unsafe { libc::semget(libc::IPC_PRIVATE, 2, libc::IPC_CREAT | 0o600) };
            assert!(id >= 0, "kernel semget: {}", std::io::Error::last_os_error());
            let set = KernelSet(id);
            for (num, val) in [(0, 1), (1, 0)] {
                // SAFETY: SETVAL's union semun argument is passed as its
                // int member (the kernel reads the low 32 bits).
                let r = unsafe { libc::semctl(id, num, libc::SETVAL, libc::c_int::from(val)) };
                assert_eq!(r, 0, "kernel SETVAL: {}", std::io::Error::last_os_error());
            }
            Set::Kernel(set)
        }
    }

    fn id(&self) -> i32 {
        match self {
            Set::Kernel(k) => k.0,
            Set::Uipc { id, .. } => id.0,
        }
    }

    fn values(&self) -> [i32; 2] {
        match self {
            Set::Kernel(k) => [0, 1].map(|num| {
                // SAFETY: GETVAL takes no argument.
                let v = unsafe { libc::semctl(k.0, num, libc::GETVAL) };
                assert!(v >= 0, "kernel GETVAL: {}", std::io::Error::last_os_error());
                v
            }),
            Set::Uipc { c, id, .. } => [0, 1].map(|num| c.sem_getval(*id, num).unwrap()),
        }
    }

    fn socket(&self) -> std::path::PathBuf {
        match self {
            Set::Kernel(_) => "/nonexistent/uipc-storm-kernel.sock".into(),
            Set::Uipc { d, .. } => d.socket.clone(),
        }
    }
}

/// A running probe: its stdout, and its stderr read by a thread.
struct Probe {
    child: Reaper,
    out: BufReader<ChildStdout>,
    err: Option<JoinHandle<String>>,
    role: &'static str,
}

impl Probe {
    fn spawn(mut cmd: std::process::Command, role: &'static str) -> Probe {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Probe { child: Reaper(Some(child)), out, err: Some(err), role }
    }

    fn pid(&self) -> u32 {
        self.child.0.as_ref().unwrap().id()
    }

    /// The line starting with `READY`, and what follows it.
    fn ready(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            if n == 0 {
                let err = self.err.take().unwrap().join().unwrap();
                panic!("{} probe {} ended before READY:\n{err}", self.role, self.pid());
            }
            if let Some(rest) = line.trim_end().strip_prefix("READY") {
                return rest.trim().to_owned();
            }
        }
    }

    /// Reads stdout up to the line `want` (or its end).
    fn wait_for(&mut self, want: &str) {
        let mut line = String::new();
        while self.out.read_line(&mut line).unwrap() > 0 && line.trim_end() != want {
            line.clear();
        }
    }

    fn go(&mut self) {
        drop(self.child.0.as_mut().unwrap().stdin.take());
    }

    /// Waits for the probe; its exit status, stdout and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.0.take().unwrap().wait().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        (status, rest, err)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    p_ok: u64,
    v_ok: u64,
    p_eintr: u64,
    v_eintr: u64,
    handled: u64,
}

fn parse_counts(stdout: &str) -> Option<(String, Counts)> {
    let line = stdout.lines().rev().find(|l| l.starts_with("RESULT "))?;
    let mut status = String::new();
    let mut c = Counts::default();
    for field in line.split_whitespace().skip(1) {
        let (k, v) = field.split_once('=')?;
        match k {
            "status" => status = v.to_owned(),
            "p_ok" => c.p_ok = v.parse().ok()?,
            "v_ok" => c.v_ok = v.parse().ok()?,
            "p_eintr" => c.p_eintr = v.parse().ok()?,
            "v_eintr" => c.v_eintr = v.parse().ok()?,
            "handled" => c.handled = v.parse().ok()?,
            _ => {}
        }
    }
    Some((status, c))
}

fn run(variant: Variant, uipc: bool) {
    let name = match (variant, uipc) {
        (Variant::Mutex, false) => "storm_mutex_kernel",
        (Variant::Mutex, true) => "storm_mutex_uipc",
        (Variant::Counting, false) => "storm_counting_kernel",
        (Variant::Counting, true) => "storm_counting_uipc",
    };
    let _w = watchdog(name, TEST_WATCHDOG_SECS);
    let t0 = Instant::now();
    let set = Set::create(uipc);
    let socket = set.socket();
    let roles: [&'static str; WORKERS] = match variant {
        Variant::Mutex => ["mutex"; WORKERS],
        Variant::Counting => ["producer", "consumer", "producer", "consumer"],
    };

    let mut workers: Vec<Probe> = roles
        .iter()
        .map(|&role| {
            let mut cmd = probe_command(ENTRY, "storm-worker", &socket);
            cmd.env("UIPC_STORM_ROLE", role)
                .env("UIPC_STORM_TARGET", if uipc { "uipc" } else { "kernel" })
                .env("UIPC_ARG_SEMID", set.id().to_string());
            Probe::spawn(cmd, role)
        })
        .collect();
    let targets: Vec<String> = workers
        .iter_mut()
        .map(|w| {
            let tid = w.ready();
            format!("{}:{tid}", w.pid())
        })
        .collect();
    let mut cmd = probe_command(ENTRY, "storm-storm", &socket);
    cmd.env("UIPC_STORM_TARGETS", targets.join(","));
    let mut storm = Probe::spawn(cmd, "storm");
    storm.ready();

    // Every worker has its handler and sits before its loop; the storm
    // sits before its first signal. The storm goes first; once it is under
    // way (one round sent), the workers go.
    storm.go();
    storm.wait_for("STORMING");
    let t_go = Instant::now();
    for w in &mut workers {
        w.go();
    }
    // The storm ends before any worker is reaped (no pid reuse under it).
    let (storm_status, storm_out, storm_err) = storm.finish();
    let results: Vec<_> = workers.into_iter().map(Probe::finish).collect();
    let run_time = t_go.elapsed();
    let values = set.values();

    // The report, before any assertion.
    let storm_line = storm_out.lines().find(|l| l.starts_with("STORM ")).unwrap_or("STORM ?").to_owned();
    eprintln!("{name}: {storm_line}; workers ran {run_time:?} (test {:?})", t0.elapsed());
    let mut total = Counts::default();
    let mut failures = Vec::new();
    for ((status, out, err), role) in results.iter().zip(roles) {
        match parse_counts(out) {
            Some((st, c)) => {
                eprintln!(
                    "  {role:8} {st:8} P ok {:4} EINTR {:4} | V ok {:4} EINTR {:4} | signals handled {:5}",
                    c.p_ok, c.p_eintr, c.v_ok, c.v_eintr, c.handled
                );
                total.p_ok += c.p_ok;
                total.v_ok += c.v_ok;
                total.p_eintr += c.p_eintr;
                total.v_eintr += c.v_eintr;
                total.handled += c.handled;
                if st != "done" || !status.success() {
                    failures.push(format!("{role} {status} {st}:\n{err}"));
                }
            }
            None => failures.push(format!("{role} {status}, no counts:\n{out}\n{err}")),
        }
    }
    eprintln!(
        "  total    P ok {} EINTR {} | V ok {} EINTR {} | signals handled {} | final values {values:?}",
        total.p_ok, total.p_eintr, total.v_ok, total.v_eintr, total.handled
    );
    assert!(storm_status.success(), "storm failed ({storm_status}):\n{storm_out}\n{storm_err}");

    // Balance: the values are exactly what the successes say, whatever
    // the workers' fate.
    let expect = match variant {
        Variant::Mutex => [1 + i64::try_from(total.v_ok).unwrap() - i64::try_from(total.p_ok).unwrap(), 0],
        Variant::Counting => [1, i64::try_from(total.v_ok).unwrap() - i64::try_from(total.p_ok).unwrap()],
    };
    assert_eq!(
        values.map(i64::from),
        expect,
        "semaphore values {values:?} disagree with the successful operations ({total:?}): \
         an operation was lost or applied twice"
    );
    assert!(
        failures.is_empty(),
        "workers failed (final values {values:?}, totals {total:?}):\n{}",
        failures.join("\n")
    );
    // Every worker finished: the exact counts and the initial values.
    assert_eq!(values, [1, 0], "final values");
    let each = u64::try_from(WORKERS).unwrap() * OPS;
    match variant {
        Variant::Mutex => assert_eq!((total.p_ok, total.v_ok), (each, each)),
        Variant::Counting => assert_eq!((total.p_ok, total.v_ok), (each / 2, each / 2)),
    }
    if let Set::Uipc { c, id, d } = set {
        c.sem_remove(id).unwrap();
        drop(c);
        drop(d);
    }
}

#[test]
fn storm_mutex_kernel() {
    run(Variant::Mutex, false);
}

#[test]
fn storm_mutex_uipc() {
    run(Variant::Mutex, true);
}

#[test]
fn storm_counting_kernel() {
    run(Variant::Counting, false);
}

#[test]
fn storm_counting_uipc() {
    run(Variant::Counting, true);
}
