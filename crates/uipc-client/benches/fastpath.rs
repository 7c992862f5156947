//! Latency of the calls the data plane serves without a daemon round trip
//! (`docs/architecture.md`, "The data plane"), through the Rust client,
//! next to the kernel's own on the same machine (a benchmark, not a test):
//!
//! - `semop -1/+1`: one `semop` a call, alternately taking and giving back
//!   semaphore 0 of a one-semaphore set (`ipcbench`'s `sem_uncontended`);
//! - `semop SEM_UNDO`: the same with `SEM_UNDO` (`sem_undo`);
//! - `semctl(GETVAL)` (`sem_getval`);
//! - `IPC_STAT (set)`: `semctl(id, 0, IPC_STAT, &ds)`;
//! - `IPC_STAT (segment)`: `shmctl(id, IPC_STAT, &ds)` (`shm_stat`);
//! - `msgsnd+msgrcv 64 B`: one 64-byte message sent and received back by
//!   the same process (an iteration is the pair);
//! - `mq_send+mq_receive 64 B`: the same on a POSIX message queue
//!   (`mq_fast`: the queue's state page);
//! - `shmat+shmdt`: `shmat(id, NULL, 0)` + `shmdt` (`shm_fast`: the
//!   segment's attach page, from the third attach on).
//!
//! Every pair is served without a round trip: the medians' table gives
//! the requests a uipc call sent to the daemon
//! (`uipc_client::requests_sent`), and any in the timed rounds fails the
//! bench (a fast path that regressed into a round trip).
//!
//! ```sh
//! cargo bench -p uipc-client --bench fastpath
//! ```
//!
//! A daemon runs in a thread of this process; one client talks to it. The
//! rounds, medians and ratios are the harness's (`harness/mod.rs`); read
//! the medians' ratio uipc/kernel: where the fast path serves a call, it
//! is far below the ~40x of a round trip. Tuning by environment:
//! `UIPC_BENCH_ROUNDS` (7), `UIPC_BENCH_N_KERNEL` (100000),
//! `UIPC_BENCH_N_UIPC` (20000). Kernel objects are removed on every way
//! out, panics included; after the rounds each side's semaphore must be
//! back at 1 (checked), so a bench that stopped doing its work shows.

mod harness;

use std::hint::black_box;

use std::os::fd::{AsFd, OwnedFd};

use harness::{
    env_usize, kernel_attach_detach, kernel_shm_stat, os_err, uipc_attach_detach, uipc_err, Bench, BoxError, Daemon,
    KernelSeg, Op, Path,
};
use uipc_abi::{Sembuf, IPC_CREAT, SEM_UNDO};
use uipc_client::{Client, MqHandle, MsgId, SemId};

/// A kernel System V semaphore set of one semaphore, removed when dropped.
struct KernelSet {
    id: i32,
}

impl KernelSet {
    /// `semget(IPC_PRIVATE, 1, IPC_CREAT | 0600)`, value 1.
    fn create() -> Result<KernelSet, BoxError> {
        // SAFETY: semget takes no pointers.
        let id = unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(os_err("semget"));
        }
        let set = KernelSet { id };
        // SAFETY: SETVAL takes its argument by value (an int in the union).
        if unsafe { libc::semctl(id, 0, libc::SETVAL, 1) } != 0 {
            return Err(os_err("semctl(SETVAL)"));
        }
        Ok(set)
    }

    /// `semop(id, {0, op, flg}, 1)`.
    fn semop(&self, op: i16, flg: i16) -> Result<(), BoxError> {
        let mut b = libc::sembuf { sem_num: 0, sem_op: op, sem_flg: flg };
        // SAFETY: `b` is one valid sembuf, as nsops says.
        if unsafe { libc::semop(self.id, &mut b, 1) } != 0 {
            return Err(os_err("semop"));
        }
        Ok(())
    }

    /// `semctl(id, 0, GETVAL)`.
    fn getval(&self) -> Result<i32, BoxError> {
        // SAFETY: GETVAL takes no argument.
        let v = unsafe { libc::semctl(self.id, 0, libc::GETVAL) };
        if v < 0 {
            return Err(os_err("semctl(GETVAL)"));
        }
        Ok(v)
    }

    /// `semctl(id, 0, IPC_STAT, &ds)`.
    fn stat(&self) -> Result<(), BoxError> {
        // SAFETY: semid_ds is plain old data; all zeroes is a valid value.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT's argument is a pointer to a writable semid_ds.
        if unsafe { libc::semctl(self.id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) } != 0 {
            return Err(os_err("semctl(IPC_STAT)"));
        }
        black_box(&ds);
        Ok(())
    }
}

impl Drop for KernelSet {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no argument.
        if unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) } != 0 {
            eprintln!("fastpath bench: IPC_RMID of kernel set {}: {}", self.id, std::io::Error::last_os_error());
        }
    }
}

/// A kernel System V message queue, removed when dropped.
struct KernelQueue {
    id: i32,
}

/// `struct msgbuf` with 64 bytes of text.
#[repr(C)]
struct MsgBuf {
    mtype: libc::c_long,
    text: [u8; MSG_LEN],
}

const MSG_LEN: usize = 64;

impl KernelQueue {
    /// `msgget(IPC_PRIVATE, IPC_CREAT | 0600)`.
    fn create() -> Result<KernelQueue, BoxError> {
        // SAFETY: msgget takes no pointers.
        let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(os_err("msgget"));
        }
        Ok(KernelQueue { id })
    }

    /// `msgsnd` of a 64-byte message of type 1, then `msgrcv` of it.
    fn send_receive(&self, buf: &mut MsgBuf) -> Result<(), BoxError> {
        buf.mtype = 1;
        // SAFETY: `buf` is a msgbuf whose text holds MSG_LEN bytes.
        if unsafe { libc::msgsnd(self.id, (buf as *mut MsgBuf).cast(), MSG_LEN, 0) } != 0 {
            return Err(os_err("msgsnd"));
        }
        // SAFETY: as above, written by the kernel.
        let n = unsafe { libc::msgrcv(self.id, (buf as *mut MsgBuf).cast(), MSG_LEN, 0, 0) };
        if n != MSG_LEN.cast_signed() {
            return Err(os_err("msgrcv"));
        }
        black_box(&buf.text);
        Ok(())
    }
}

impl Drop for KernelQueue {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID reads no buffer; a null one is allowed.
        if unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
            eprintln!("fastpath bench: IPC_RMID of kernel queue {}: {}", self.id, std::io::Error::last_os_error());
        }
    }
}

/// A kernel POSIX message queue (10 messages of `MSG_LEN` bytes), open
/// read-write; closed and unlinked when dropped.
struct KernelMq {
    name: std::ffi::CString,
    mqd: libc::mqd_t,
}

impl KernelMq {
    /// `mq_open("/uipc-bench-<pid>", O_CREAT | O_EXCL | O_RDWR, 0600, {10, MSG_LEN})`.
    fn create() -> Result<KernelMq, BoxError> {
        let name = std::ffi::CString::new(format!("/uipc-bench-{}", std::process::id()))?;
        // SAFETY: mq_attr is plain old data; all zeroes is a valid value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = 10;
        attr.mq_msgsize = libc::c_long::try_from(MSG_LEN)?;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
        // SAFETY: `name` is a C string; with O_CREAT, mq_open reads a mode
        // and a pointer to a valid mq_attr.
        let mqd =
            unsafe { libc::mq_open(name.as_ptr(), flags, 0o600 as libc::mode_t, &mut attr as *mut libc::mq_attr) };
        if mqd < 0 {
            return Err(os_err("mq_open"));
        }
        Ok(KernelMq { name, mqd })
    }

    /// `mq_send` of a 64-byte message, then `mq_receive` of it.
    fn send_receive(&self, buf: &mut [u8; MSG_LEN]) -> Result<(), BoxError> {
        // SAFETY: `buf` holds MSG_LEN readable bytes.
        if unsafe { libc::mq_send(self.mqd, buf.as_ptr().cast(), MSG_LEN, 0) } != 0 {
            return Err(os_err("mq_send"));
        }
        // SAFETY: `buf` holds MSG_LEN writable bytes; a null priority is allowed.
        let n = unsafe { libc::mq_receive(self.mqd, buf.as_mut_ptr().cast(), MSG_LEN, std::ptr::null_mut()) };
        if n != MSG_LEN.cast_signed() {
            return Err(os_err("mq_receive"));
        }
        black_box(&buf);
        Ok(())
    }
}

impl Drop for KernelMq {
    fn drop(&mut self) {
        // SAFETY: our own descriptor and name.
        if unsafe { libc::mq_close(self.mqd) } != 0 || unsafe { libc::mq_unlink(self.name.as_ptr()) } != 0 {
            eprintln!("fastpath bench: removing kernel queue {:?}: {}", self.name, std::io::Error::last_os_error());
        }
    }
}

/// The client's `mq_send` of a 64-byte message, then `mq_receive` of it,
/// each on the queue's state page (`None` from either, the daemon's call,
/// is an error here: this pair measures the fast path).
fn uipc_mq_send_receive(
    client: &Client,
    (h, fd): (MqHandle, &OwnedFd),
    text: &[u8; MSG_LEN],
    scratch: &mut Vec<u8>,
) -> Result<(), BoxError> {
    let fast = "the daemon's (no fast path)";
    client.mq_send_fast(h, fd.as_fd(), text, 0, None).ok_or(fast)?.map_err(uipc_err("mq_send"))?;
    let (_, n) =
        client.mq_receive_fast(h, fd.as_fd(), 64, None, scratch, false).ok_or(fast)?.map_err(uipc_err("mq_receive"))?;
    if n != MSG_LEN {
        return Err(format!("uipc mq_receive: {n} bytes").into());
    }
    black_box(&scratch);
    Ok(())
}

/// The client's `msgsnd` of a 64-byte message of type 1, then `msgrcv`.
fn uipc_send_receive(client: &Client, id: MsgId, text: &[u8; MSG_LEN]) -> Result<(), BoxError> {
    client.msgsnd(id, 1, text, 0).map_err(uipc_err("msgsnd"))?;
    let m = client.msgrcv(id, MSG_LEN, 0, 0).map_err(uipc_err("msgrcv"))?;
    if m.data.len() != MSG_LEN {
        return Err(format!("uipc msgrcv: {} bytes", m.data.len()).into());
    }
    black_box(m);
    Ok(())
}

/// An operation that takes semaphore 0 on odd calls and gives it back on
/// even ones, one `semop` a call.
fn alternate(mut semop: impl FnMut(i16) -> Result<(), BoxError>) -> impl FnMut() -> Result<(), BoxError> {
    let mut take = true;
    move || {
        let r = semop(if take { -1 } else { 1 });
        take = !take;
        r
    }
}

fn uipc_semop(client: &Client, id: SemId, op: i16, flg: i16) -> Result<(), BoxError> {
    client.semop(id, &[Sembuf { sem_num: 0, sem_op: op, sem_flg: flg }]).map_err(uipc_err("semop"))
}

fn main() -> Result<(), BoxError> {
    let rounds = env_usize("UIPC_BENCH_ROUNDS", 7);
    let n_kernel = env_usize("UIPC_BENCH_N_KERNEL", 100_000);
    // Even, so every semop pair completes within a round.
    let n_uipc = env_usize("UIPC_BENCH_N_UIPC", 20_000) / 2 * 2;
    let n_kernel = n_kernel / 2 * 2;

    let daemon = Daemon::start("fastpath")?;
    let client = Client::connect_to(&daemon.socket, "bench").map_err(|e| format!("connect: {e:?}"))?;
    let kset = KernelSet::create()?;
    let kundo = KernelSet::create()?;
    let kseg = KernelSeg::create(libc::IPC_PRIVATE)?;
    let uset = client.semget(0, 1, IPC_CREAT | 0o600).map_err(uipc_err("semget"))?;
    let uundo = client.semget(0, 1, IPC_CREAT | 0o600).map_err(uipc_err("semget"))?;
    let useg = client.shmget(0, 4096, IPC_CREAT | 0o600).map_err(uipc_err("shmget"))?;
    let kqueue = KernelQueue::create()?;
    let uqueue = client.msgget(0, IPC_CREAT | 0o600).map_err(uipc_err("msgget"))?;
    let mut kbuf = MsgBuf { mtype: 1, text: [7; MSG_LEN] };
    let utext = [7u8; MSG_LEN];
    let kmq = KernelMq::create()?;
    let mq_limits = Some((10, i64::try_from(MSG_LEN)?));
    let umq =
        client.mq_open(b"uipc-bench", libc::O_CREAT | libc::O_RDWR, 0o600, mq_limits).map_err(uipc_err("mq_open"))?;
    let mut kmq_buf = [7u8; MSG_LEN];
    let mut umq_scratch = Vec::new();
    for id in [uset, uundo] {
        client.sem_setval(id, 0, 1).map_err(uipc_err("SETVAL"))?;
    }

    let c = &client;
    let (ks, ku, kid, kq, ut) = (&kset, &kundo, kseg.id, &kqueue, &utext);
    let kb = &mut kbuf;
    let (km, kmb, um, ums) = (&kmq, &mut kmq_buf, (umq.0, &umq.1), &mut umq_scratch);
    let pairs: Vec<(&'static str, Op<'_>, Op<'_>, Path)> = vec![
        (
            "semop -1/+1",
            Box::new(alternate(move |op| ks.semop(op, 0))),
            Box::new(alternate(move |op| uipc_semop(c, uset, op, 0))),
            Path::Fast,
        ),
        (
            "semop SEM_UNDO",
            Box::new(alternate(move |op| ku.semop(op, SEM_UNDO))),
            Box::new(alternate(move |op| uipc_semop(c, uundo, op, SEM_UNDO))),
            Path::Fast,
        ),
        (
            "semctl(GETVAL)",
            Box::new(move || {
                ks.getval().map(|v| {
                    black_box(v);
                })
            }),
            Box::new(move || {
                c.sem_getval(uset, 0)
                    .map(|v| {
                        black_box(v);
                    })
                    .map_err(uipc_err("GETVAL"))
            }),
            Path::Fast,
        ),
        (
            "IPC_STAT (set)",
            Box::new(move || ks.stat()),
            Box::new(move || {
                c.sem_stat(uset)
                    .map(|ds| {
                        black_box(ds);
                    })
                    .map_err(uipc_err("IPC_STAT"))
            }),
            Path::Fast,
        ),
        (
            "IPC_STAT (segment)",
            Box::new(move || kernel_shm_stat(kid)),
            Box::new(move || {
                c.shm_stat(useg)
                    .map(|ds| {
                        black_box(ds);
                    })
                    .map_err(uipc_err("IPC_STAT"))
            }),
            Path::Fast,
        ),
        (
            "msgsnd+msgrcv 64 B",
            Box::new(move || kq.send_receive(kb)),
            Box::new(move || uipc_send_receive(c, uqueue, ut)),
            Path::Fast,
        ),
        (
            "mq_send+mq_receive 64 B",
            Box::new(move || km.send_receive(kmb)),
            Box::new(move || uipc_mq_send_receive(c, um, ut, ums)),
            Path::Fast,
        ),
        (
            "shmat+shmdt",
            Box::new(move || kernel_attach_detach(kid)),
            Box::new(move || uipc_attach_detach(c, useg)),
            Path::Fast,
        ),
    ];
    Bench { title: "uipc fast-path bench", pairs, refs: Vec::new() }.run(rounds, n_kernel, n_uipc)?;

    // Both sides did their work: every take was given back.
    for (what, k, u) in [("semop", &kset, uset), ("semop SEM_UNDO", &kundo, uundo)] {
        let (kv, uv) = (k.getval()?, client.sem_getval(u, 0).map_err(uipc_err("GETVAL"))?);
        if (kv, uv) != (1, 1) {
            return Err(format!("{what}: values after the rounds: kernel {kv}, uipc {uv} (want 1, 1)").into());
        }
    }
    for id in [uset, uundo] {
        client.sem_remove(id).map_err(uipc_err("IPC_RMID"))?;
    }
    client.shm_remove(useg).map_err(uipc_err("IPC_RMID"))?;
    client.msg_remove(uqueue).map_err(uipc_err("IPC_RMID"))?;
    client.mq_close(umq.0).map_err(uipc_err("mq_close"))?;
    drop(umq.1);
    client.mq_unlink(b"uipc-bench").map_err(uipc_err("mq_unlink"))?;
    drop((kset, kundo, kseg, kqueue, kmq));
    Ok(())
}
