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
//!   `client.attach(id, 0)` + drop (after the second attach, on the
//!   segment's attach page: the fast path, no request);
//! - `IPC_STAT`: `shmctl(id, IPC_STAT, &ds)`, against `client.shm_stat(id)`
//!   (after the first call, read from the status region: the fast path);
//! - `shmget(key)`: looking up an existing key, both sides (a round trip).
//!
//! The medians' table gives the requests a uipc call sent; a fast pair
//! that sent any fails the bench.
//!
//! Two reference rows (kernel only) help read the uipc figures:
//! `mmap+munmap memfd` is the local work of a uipc attach+detach, and
//! `shmat+shmdt` is what it replaces.
//!
//! Tuning by environment: `UIPC_BENCH_ROUNDS` (7), `UIPC_BENCH_N_KERNEL`
//! (20000 iterations a round), `UIPC_BENCH_N_UIPC` (5000),
//! `UIPC_BENCH_ONLY=attach` (only the attach pair: for `strace -c`/`perf`).
//! The harness (rounds, medians, the daemon) is `harness/mod.rs`, shared
//! with the `fastpath` bench.
//! Kernel segments are removed (`IPC_RMID`) on every way out, panics included.

mod harness;

use std::hint::black_box;

use harness::{
    env_usize, kernel_attach_detach, kernel_shm_stat, os_err, uipc_attach_detach, uipc_err, Bench, BoxError, Daemon,
    KernelSeg, Op, Path,
};
use uipc_client::{Client, ShmId};

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

fn main() -> Result<(), BoxError> {
    let rounds = env_usize("UIPC_BENCH_ROUNDS", 7);
    let n_kernel = env_usize("UIPC_BENCH_N_KERNEL", 20_000);
    let n_uipc = env_usize("UIPC_BENCH_N_UIPC", 5_000);
    let only_attach = std::env::var("UIPC_BENCH_ONLY").is_ok_and(|v| v == "attach");

    let daemon = Daemon::start("attach")?;
    let client = Client::connect_to(&daemon.socket, "bench").map_err(|e| format!("connect: {e:?}"))?;

    // Kernel side: a private segment to attach and stat, a keyed one to look up.
    let kseg = KernelSeg::create(libc::IPC_PRIVATE)?;
    let (kkeyed, kkey) = KernelSeg::create_keyed()?;
    // uipc side: the same pair in the daemon's namespace.
    let useg = client.shmget(0, 4096, 0o1600).map_err(uipc_err("shmget"))?;
    let ukey = 0x7542_0001;
    let ukeyed = client.shmget(ukey, 4096, 0o3600).map_err(uipc_err("shmget(key)"))?;
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

    let kid = kseg.id;
    let mut pairs: Vec<(&'static str, Op<'_>, Op<'_>, Path)> = vec![(
        "attach+detach",
        Box::new(move || kernel_attach_detach(kid)),
        Box::new(move || uipc_attach_detach(client, useg)),
        Path::Fast,
    )];
    if !only_attach {
        pairs.push((
            "IPC_STAT",
            Box::new(move || kernel_shm_stat(kid)),
            Box::new(move || {
                black_box(client.shm_stat(useg).map_err(uipc_err("IPC_STAT"))?);
                Ok(())
            }),
            Path::Fast,
        ));
        pairs.push((
            "shmget(existing key)",
            Box::new(move || kernel_lookup(kkey)),
            Box::new(move || {
                black_box(client.shmget(ukey, 4096, 0o600).map_err(uipc_err("shmget"))?);
                Ok(())
            }),
            Path::Daemon,
        ));
    }
    let refs: Vec<(&'static str, Op<'_>)> = vec![("mmap+munmap memfd", Box::new(move || memfd_map_unmap(mfd)))];
    Bench { title: "uipc attach bench", pairs, refs }.run(rounds, n_kernel, n_uipc)
}
