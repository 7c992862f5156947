//! What the client's benchmarks share: an in-process daemon, timing,
//! medians, and the round loop that measures kernel/uipc pairs alternately
//! and prints per round, medians and the ratio uipc/kernel, with the
//! requests a uipc call sent to the daemon (`uipc_client::requests_sent`):
//! a pair marked [`Path::Fast`] that sent any in the timed rounds fails
//! the bench (its fast path regressed into a round trip).
//!
//! Tuning by environment: `UIPC_BENCH_ROUNDS` (7), `UIPC_BENCH_N_KERNEL`
//! (iterations of a kernel call a round, default per bench),
//! `UIPC_BENCH_N_UIPC` (the same for uipc).
#![allow(dead_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One measured operation: `Ok` per call, an error stops the bench.
pub type Op<'a> = Box<dyn FnMut() -> Result<(), BoxError> + 'a>;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// Runs `op` `n` times; nanoseconds per call.
pub fn time_ns(n: usize, mut op: impl FnMut() -> Result<(), BoxError>) -> Result<f64, BoxError> {
    let start = Instant::now();
    for _ in 0..n {
        op()?;
    }
    let ns = start.elapsed().as_nanos() as f64;
    Ok(ns / n as f64)
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `what: <the last OS error>`.
pub fn os_err(what: &str) -> BoxError {
    format!("{what}: {}", std::io::Error::last_os_error()).into()
}

/// A uipc error as a bench error.
pub fn uipc_err(what: &'static str) -> impl Fn(uipc_client::Errno) -> BoxError {
    move |e| format!("uipc {what}: {e:?}").into()
}

/// A daemon in a thread of this process, on a socket in a fresh directory
/// (removed by [`Daemon::drop`]).
pub struct Daemon {
    pub socket: PathBuf,
}

impl Daemon {
    pub fn start(tag: &str) -> Result<Daemon, BoxError> {
        let dir = std::env::temp_dir().join(format!("uipc-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("uipc.sock");
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let sock = socket.clone();
        std::thread::Builder::new().name("uipc-daemon".into()).spawn(move || {
            let config = uipc_daemon::Config { socket: sock, state_dir: None, ready_fd: None, lifeline: None };
            match uipc_daemon::Daemon::bind(config) {
                Ok(d) => {
                    let _ = tx.send(Ok(()));
                    if let Err(e) = d.serve() {
                        eprintln!("bench: daemon: {e}");
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })?;
        rx.recv()??;
        Ok(Daemon { socket })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// How a pair's uipc call is served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// In the caller (the data plane): no request in the timed rounds.
    Fast,
    /// By the daemon: at least one round trip a call.
    Daemon,
}

/// Kernel/uipc pairs and kernel-only reference rows, measured in rounds.
pub struct Bench<'a> {
    pub title: &'static str,
    /// `(name, kernel op, uipc op, how uipc serves it)`.
    pub pairs: Vec<(&'static str, Op<'a>, Op<'a>, Path)>,
    /// `(name, kernel op)`: rows that help read the pairs.
    pub refs: Vec<(&'static str, Op<'a>)>,
}

impl Bench<'_> {
    /// One untimed warm-up round, then `rounds` rounds of `n_kernel`
    /// kernel and `n_uipc` uipc calls per pair (which side goes first
    /// alternates); prints every round, the medians, the ratios and the
    /// requests per uipc call.
    ///
    /// # Errors
    /// An operation's, or a [`Path::Fast`] pair that sent requests.
    pub fn run(mut self, rounds: usize, n_kernel: usize, n_uipc: usize) -> Result<(), BoxError> {
        let mut kernel: Vec<Vec<f64>> = vec![Vec::new(); self.pairs.len()];
        let mut uipc: Vec<Vec<f64>> = vec![Vec::new(); self.pairs.len()];
        // Requests the uipc side sent in the timed rounds, per pair.
        let mut sent = vec![0u64; self.pairs.len()];
        let mut uipc_time = |i: usize, op: &mut Op<'_>| {
            let before = uipc_client::requests_sent();
            let t = time_ns(n_uipc, &mut **op);
            sent[i] += uipc_client::requests_sent() - before;
            t
        };
        let mut refs: Vec<Vec<f64>> = vec![Vec::new(); self.refs.len()];
        // Even counts, so that operations that alternate (take, give
        // back) end where they started.
        let warm = |n: usize| n / 20 * 2 + 2;
        for (_, k, u, _) in &mut self.pairs {
            time_ns(warm(n_kernel), &mut **k)?;
            time_ns(warm(n_uipc), &mut **u)?;
        }
        println!("{}: {rounds} rounds, {n_kernel} kernel / {n_uipc} uipc iterations a round (ns/op)", self.title);
        for r in 0..rounds {
            for (i, (name, k, u, _)) in self.pairs.iter_mut().enumerate() {
                let kernel_first = r % 2 == 0;
                let (kt, ut) = if kernel_first {
                    let kt = time_ns(n_kernel, &mut **k)?;
                    (kt, uipc_time(i, u)?)
                } else {
                    let ut = uipc_time(i, u)?;
                    (time_ns(n_kernel, &mut **k)?, ut)
                };
                kernel[i].push(kt);
                uipc[i].push(ut);
                println!(
                    "round {r} {:<24} kernel {kt:>9.0}  uipc {ut:>9.0}  ({} first)",
                    name,
                    if kernel_first { "kernel" } else { "uipc" }
                );
            }
            for (i, (name, k)) in self.refs.iter_mut().enumerate() {
                let t = time_ns(n_kernel, &mut **k)?;
                refs[i].push(t);
                println!("round {r} {name:<24} kernel {t:>9.0}");
            }
        }
        println!();
        println!("{:<24} {:>12} {:>12} {:>10} {:>12}", "median ns/op", "kernel", "uipc", "uipc/kern", "requests/op");
        let calls = (rounds * n_uipc) as f64;
        for (i, (name, _, _, _)) in self.pairs.iter().enumerate() {
            let (k, u) = (median(&kernel[i]), median(&uipc[i]));
            println!("{name:<24} {k:>12.0} {u:>12.0} {:>9.2}x {:>12.3}", u / k, sent[i] as f64 / calls);
        }
        for (i, (name, _)) in self.refs.iter().enumerate() {
            println!("{name:<24} {:>12.0} {:>12} {:>10}", median(&refs[i]), "-", "-");
        }
        let lo = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        for (i, (name, _, _, _)) in self.pairs.iter().enumerate() {
            println!(
                "range {name:<24} kernel {:.0}..{:.0}  uipc {:.0}..{:.0}",
                lo(&kernel[i]),
                hi(&kernel[i]),
                lo(&uipc[i]),
                hi(&uipc[i])
            );
        }
        let slow: Vec<String> = (self.pairs.iter().zip(&sent))
            .filter(|((_, _, _, path), &n)| *path == Path::Fast && n > 0)
            .map(|((name, _, _, _), n)| format!("{name} ({n} requests in {calls} calls)"))
            .collect();
        if !slow.is_empty() {
            return Err(format!("fast path not taken: {}", slow.join(", ")).into());
        }
        Ok(())
    }
}

/// A kernel System V segment, removed when dropped.
pub struct KernelSeg {
    pub id: i32,
}

impl KernelSeg {
    /// `shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600)`.
    pub fn create(key: libc::key_t) -> std::io::Result<KernelSeg> {
        // SAFETY: shmget takes no pointers.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        if id < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(KernelSeg { id })
    }

    /// A keyed segment: tries keys derived from the pid until one is free.
    pub fn create_keyed() -> std::io::Result<(KernelSeg, libc::key_t)> {
        let base = i32::from_ne_bytes(*b"uB\0\0") ^ i32::from_ne_bytes(std::process::id().to_ne_bytes());
        let mut last = std::io::Error::from_raw_os_error(libc::EEXIST);
        for i in 0..64 {
            let key = base.wrapping_add(i * 0x10001);
            if key == libc::IPC_PRIVATE {
                continue;
            }
            match KernelSeg::create(key) {
                Ok(seg) => return Ok((seg, key)),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

impl Drop for KernelSeg {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID reads no buffer; a null one is allowed.
        let r = unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        if r != 0 {
            eprintln!("bench: IPC_RMID of kernel segment {}: {}", self.id, std::io::Error::last_os_error());
        }
    }
}

/// Kernel `shmctl(id, IPC_STAT, &ds)`.
pub fn kernel_shm_stat(id: i32) -> Result<(), BoxError> {
    // SAFETY: shmid_ds is plain old data; all zeroes is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds for the kernel to fill.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } != 0 {
        return Err(os_err("shmctl(IPC_STAT)"));
    }
    black_box(&ds);
    Ok(())
}

/// Kernel `shmat(id, NULL, 0)` + `shmdt(addr)`.
pub fn kernel_attach_detach(id: i32) -> Result<(), BoxError> {
    // SAFETY: a NULL address lets the kernel choose free address space, so
    // nothing in use is replaced.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        return Err(os_err("shmat"));
    }
    black_box(p);
    // SAFETY: `p` is the attach just made; nothing refers to it.
    if unsafe { libc::shmdt(p) } != 0 {
        return Err(os_err("shmdt"));
    }
    Ok(())
}

/// The client's `attach(id, 0)` + drop (its `shmdt`).
pub fn uipc_attach_detach(client: &uipc_client::Client, id: uipc_client::ShmId) -> Result<(), BoxError> {
    let m = client.attach(id, 0).map_err(uipc_err("attach"))?;
    black_box(m.addr());
    drop(m);
    Ok(())
}
