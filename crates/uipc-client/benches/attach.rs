//! Latency of uipc's System V calls through the client, next to the
//! kernel's own on the same machine (a benchmark, not a test).
//!
//! ```sh
//! scripts/bench.sh                      # cargo bench -p uipc-client --bench attach
//! ```
//!
//! A daemon runs in a thread of this process (memfd memory); one client
//! talks to it over its Unix socket. Each pair is measured in `ROUNDS`
//! rounds, kernel and uipc alternating (which goes first alternates too),
//! and reported per round and as medians, with the ratio uipc/kernel:
//!
//! - `attach+detach`: `shmat(id, NULL, 0)` + `shmdt(addr)`, against
//!   `client.attach(id, 0)` + drop;
//! - `IPC_STAT`: `shmctl(id, IPC_STAT, &ds)`, against `client.shm_stat(id)`;
//! - `shmget(key)`: looking up an existing key, both sides.
//!
//! Two reference rows (kernel only) help read the uipc figures:
//! `mmap+munmap memfd` is the local work of a uipc attach+detach, and
//! `shmat+shmdt` is what it replaces.
//!
//! Tuning by environment: `UIPC_BENCH_ROUNDS` (7), `UIPC_BENCH_N_KERNEL`
//! (20000 iterations a round), `UIPC_BENCH_N_UIPC` (5000),
//! `UIPC_BENCH_ONLY=attach` (only the attach pair: for `strace -c`/`perf`).
//! Kernel segments are removed (`IPC_RMID`) on every way out, panics included.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use uipc_client::{Client, ShmId};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A kernel System V segment, removed when dropped.
struct KernelSeg {
    id: i32,
}

impl KernelSeg {
    /// `shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600)`.
    fn create(key: libc::key_t) -> std::io::Result<KernelSeg> {
        // SAFETY: shmget takes no pointers.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        if id < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(KernelSeg { id })
    }

    /// A keyed segment: tries keys derived from the pid until one is free.
    fn create_keyed() -> std::io::Result<(KernelSeg, libc::key_t)> {
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
            eprintln!("attach bench: IPC_RMID of kernel segment {}: {}", self.id, std::io::Error::last_os_error());
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// Runs `op` `n` times; nanoseconds per call.
fn time_ns(n: usize, mut op: impl FnMut() -> Result<(), BoxError>) -> Result<f64, BoxError> {
    let start = Instant::now();
    for _ in 0..n {
        op()?;
    }
    let ns = start.elapsed().as_nanos() as f64;
    Ok(ns / n as f64)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn os_err(what: &str) -> BoxError {
    format!("{what}: {}", std::io::Error::last_os_error()).into()
}

/// Kernel `shmat(id, NULL, 0)` + `shmdt(addr)`.
fn kernel_attach_detach(id: i32) -> Result<(), BoxError> {
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

/// Kernel `shmctl(id, IPC_STAT, &ds)`.
fn kernel_stat(id: i32) -> Result<(), BoxError> {
    // SAFETY: shmid_ds is plain old data; all zeroes is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds for the kernel to fill.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } != 0 {
        return Err(os_err("shmctl(IPC_STAT)"));
    }
    black_box(&ds);
    Ok(())
}

/// Kernel `shmget(key, 4096, 0600)` of an existing key.
fn kernel_lookup(key: libc::key_t) -> Result<(), BoxError> {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, 4096, 0o600) };
    if id < 0 {
        return Err(os_err("shmget(existing key)"));
    }
    black_box(id);
    Ok(())
}

/// `mmap(NULL, 4096, RW, MAP_SHARED, memfd)` + `munmap`: the local part of a uipc attach+detach.
fn memfd_map_unmap(fd: i32) -> Result<(), BoxError> {
    // SAFETY: a NULL hint without MAP_FIXED takes free address space only.
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(os_err("mmap"));
    }
    black_box(p);
    // SAFETY: `p` is the mapping just made; nothing refers to it.
    if unsafe { libc::munmap(p, 4096) } != 0 {
        return Err(os_err("munmap"));
    }
    Ok(())
}

/// A daemon in a thread of this process, on a socket in a fresh directory.
fn start_daemon() -> Result<PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("uipc-bench-{}", std::process::id()));
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
                    eprintln!("attach bench: daemon: {e}");
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
            }
        }
    })?;
    rx.recv()??;
    Ok(socket)
}

struct Pair {
    name: &'static str,
    kernel: Vec<f64>,
    uipc: Vec<f64>,
}

fn main() -> Result<(), BoxError> {
    let rounds = env_usize("UIPC_BENCH_ROUNDS", 7);
    let n_kernel = env_usize("UIPC_BENCH_N_KERNEL", 20_000);
    let n_uipc = env_usize("UIPC_BENCH_N_UIPC", 5_000);
    let only_attach = std::env::var("UIPC_BENCH_ONLY").is_ok_and(|v| v == "attach");

    let socket = start_daemon()?;
    let result = run(&socket, rounds, n_kernel, n_uipc, only_attach);
    let _ = std::fs::remove_file(&socket);
    if let Some(dir) = socket.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

fn run(
    socket: &std::path::Path,
    rounds: usize,
    n_kernel: usize,
    n_uipc: usize,
    only_attach: bool,
) -> Result<(), BoxError> {
    let client = Client::connect_to(socket, "bench").map_err(|e| format!("connect: {e:?}"))?;

    // Kernel side: a private segment to attach and stat, a keyed one to look up.
    let kseg = KernelSeg::create(libc::IPC_PRIVATE)?;
    let (kkeyed, kkey) = KernelSeg::create_keyed()?;
    // uipc side: the same pair in the daemon's namespace.
    let useg = client.shmget(0, 4096, 0o1600).map_err(|e| format!("uipc shmget: {e:?}"))?;
    let ukey = 0x7542_0001;
    let ukeyed = client.shmget(ukey, 4096, 0o3600).map_err(|e| format!("uipc shmget(key): {e:?}"))?;
    let out = measure(&client, &kseg, kkey, useg, ukey, rounds, n_kernel, n_uipc, only_attach);
    // uipc segments go with the daemon anyway; say so if removal fails.
    for id in [useg, ukeyed] {
        if let Err(e) = client.shm_remove(id) {
            eprintln!("attach bench: uipc IPC_RMID {}: {e:?}", id.0);
        }
    }
    drop((kseg, kkeyed));
    out
}

#[allow(clippy::too_many_arguments)]
fn measure(
    client: &Client,
    kseg: &KernelSeg,
    kkey: libc::key_t,
    useg: ShmId,
    ukey: i32,
    rounds: usize,
    n_kernel: usize,
    n_uipc: usize,
    only_attach: bool,
) -> Result<(), BoxError> {
    // SAFETY: the name is a valid C string; flags are plain bits.
    let memfd = unsafe { libc::memfd_create(c"uipc-bench".as_ptr(), libc::MFD_CLOEXEC) };
    if memfd < 0 {
        return Err(os_err("memfd_create"));
    }
    // SAFETY: memfd_create just returned this descriptor; we own it.
    let memfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(memfd) };
    let mfd = std::os::fd::AsRawFd::as_raw_fd(&memfd);
    // SAFETY: ftruncate of our own memfd.
    if unsafe { libc::ftruncate(mfd, 4096) } != 0 {
        return Err(os_err("ftruncate"));
    }

    type Op<'a> = Box<dyn FnMut() -> Result<(), BoxError> + 'a>;
    let kid = kseg.id;
    let mut ops: Vec<(&'static str, Op<'_>, Op<'_>)> = vec![(
        "attach+detach",
        Box::new(move || kernel_attach_detach(kid)),
        Box::new(move || {
            let m = client.attach(useg, 0).map_err(|e| format!("uipc attach: {e:?}"))?;
            black_box(m.addr());
            drop(m);
            Ok(())
        }),
    )];
    if !only_attach {
        ops.push((
            "IPC_STAT",
            Box::new(move || kernel_stat(kid)),
            Box::new(move || {
                black_box(client.shm_stat(useg).map_err(|e| format!("uipc IPC_STAT: {e:?}"))?);
                Ok(())
            }),
        ));
        ops.push((
            "shmget(existing key)",
            Box::new(move || kernel_lookup(kkey)),
            Box::new(move || {
                black_box(client.shmget(ukey, 4096, 0o600).map_err(|e| format!("uipc shmget: {e:?}"))?);
                Ok(())
            }),
        ));
    }
    let mut mmap_ref = Vec::new();
    let mut pairs: Vec<Pair> =
        ops.iter().map(|(name, _, _)| Pair { name, kernel: Vec::new(), uipc: Vec::new() }).collect();

    // One untimed warm-up round (page tables, allocator, daemon caches).
    for (_, k, u) in &mut ops {
        time_ns(n_kernel / 10 + 1, &mut **k)?;
        time_ns(n_uipc / 10 + 1, &mut **u)?;
    }
    println!("uipc attach bench: {rounds} rounds, {n_kernel} kernel / {n_uipc} uipc iterations a round (ns/op)");
    for r in 0..rounds {
        for ((name, k, u), pair) in ops.iter_mut().zip(pairs.iter_mut()) {
            let kernel_first = r % 2 == 0;
            let (kt, ut) = if kernel_first {
                let kt = time_ns(n_kernel, &mut **k)?;
                (kt, time_ns(n_uipc, &mut **u)?)
            } else {
                let ut = time_ns(n_uipc, &mut **u)?;
                (time_ns(n_kernel, &mut **k)?, ut)
            };
            pair.kernel.push(kt);
            pair.uipc.push(ut);
            println!(
                "round {r} {:<22} kernel {kt:>9.0}  uipc {ut:>9.0}  ({} first)",
                name,
                if kernel_first { "kernel" } else { "uipc" }
            );
        }
        let mt = time_ns(n_kernel, || memfd_map_unmap(mfd))?;
        mmap_ref.push(mt);
        println!("round {r} {:<22} kernel {mt:>9.0}", "mmap+munmap memfd");
    }

    println!();
    println!("{:<22} {:>12} {:>12} {:>10}", "median ns/op", "kernel", "uipc", "uipc/kern");
    for p in &pairs {
        let (k, u) = (median(&p.kernel), median(&p.uipc));
        println!("{:<22} {k:>12.0} {u:>12.0} {:>9.1}x", p.name, u / k);
    }
    println!("{:<22} {:>12.0} {:>12} {:>10}", "mmap+munmap memfd", median(&mmap_ref), "-", "-");
    for p in &pairs {
        let lo = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!(
            "range {:<22} kernel {:.0}..{:.0}  uipc {:.0}..{:.0}",
            p.name,
            lo(&p.kernel),
            hi(&p.kernel),
            lo(&p.uipc),
            hi(&p.uipc)
        );
    }
    Ok(())
}
