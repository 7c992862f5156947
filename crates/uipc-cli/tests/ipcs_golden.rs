//! Golden tests: the same System V objects made in a fresh kernel IPC
//! namespace and in a fresh uipc namespace — by the same processes, so
//! creator and last-operator pids agree — then util-linux `ipcs`/`lsipc`
//! (run in the kernel namespace through `nsenter`) and uipc's `ipcs`/`lsipc`
//! (through the multi-call name, so `argv[0]` is the same) must print the
//! same bytes for every flag combination, clock times masked.
//!
//! The objects: segments with nattch 0, 1 and 2 (one removed while
//! attached: "dest", key 0), one given away by IPC_SET to nobody, one
//! created by uid 1 (daemon); semaphore sets of 3, 1 and 2 semaphores, with
//! values and a last-op pid, one created by uid 1, one owned by a uid with
//! no passwd entry; message queues with messages sent and received (cbytes,
//! qnum, lspid, lrpid, times), an empty one, one of uid 1, one given to a
//! uid with no passwd entry with qbytes 100.
//!
//! Needs root (a new IPC namespace, setuid); skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uipc_abi::{Ipc64Perm, Msqid64Ds, Sembuf, Semid64Ds, Shmid64Ds, IPC_CREAT, IPC_RMID, IPC_SET, SETVAL};
use uipc_client::{Client, SemCtlArg, ShmId};
use uipc_sys::oracle::{self, SemctlArg, ShmctlBuf};

const NS: &str = "golden";
const UIPC: &str = env!("CARGO_BIN_EXE_uipc");

fn main() {
    match std::env::var("UIPC_GOLDEN_ROLE").as_deref() {
        Ok("fixture") => fixture(),
        Ok("uid1") => as_uid1(),
        _ => golden(),
    }
}

/// Aborts the process if the test is still running after `secs`.
fn watchdog(secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("WATCHDOG: ipcs_golden did not finish within {secs} s");
        std::process::abort();
    });
}

fn env_socket() -> PathBuf {
    PathBuf::from(std::env::var("UIPC_SOCKET").unwrap())
}

/// Does the same thing to the kernel and to uipc; both must agree.
fn both<T: PartialEq + std::fmt::Debug>(what: &str, k: Result<T, uipc_abi::Errno>, u: Result<T, uipc_abi::Errno>) -> T {
    assert_eq!(k, u, "{what}: kernel vs uipc");
    k.unwrap()
}

fn perm(uid: u32, gid: u32, mode: u32) -> Ipc64Perm {
    Ipc64Perm { uid, gid, mode, ..Ipc64Perm::default() }
}

/// The process that owns the objects: in a fresh kernel IPC namespace and
/// connected to the fresh uipc namespace; holds its attachments until its
/// stdin closes.
fn fixture() {
    oracle::unshare_ipc().unwrap();
    let c = Client::connect_to(&env_socket(), NS).unwrap();
    let seg = 4096;
    // Every object is created before anything is attached: the uid-1
    // creator below is a fork of this process, and the kernel would count
    // the attachments it inherits (lpid, dtime) where uipc is not told.
    // Segment 0: key 0x1234, 0640, attached once, then given to nobody.
    let a = both(
        "shmget A",
        oracle::shmget(0x1234, seg, IPC_CREAT | 0o640),
        c.shmget(0x1234, seg, IPC_CREAT | 0o640).map(|i| i.0),
    );
    // Segment 1: private, 100000 bytes, 0600.
    both(
        "shmget B",
        oracle::shmget(0, 100_000, IPC_CREAT | 0o600),
        c.shmget(0, 100_000, IPC_CREAT | 0o600).map(|i| i.0),
    );
    // Segment 2: 1 MiB, 0666, attached twice, then removed: "dest", key 0.
    let d = both(
        "shmget C",
        oracle::shmget(0x5678, 1 << 20, IPC_CREAT | 0o666),
        c.shmget(0x5678, 1 << 20, IPC_CREAT | 0o666).map(|i| i.0),
    );
    // Set 0: 3 semaphores, values 0/5/2, last op by this process.
    let e = both(
        "semget E",
        oracle::semget(0x3000, 3, IPC_CREAT | 0o600),
        c.semget(0x3000, 3, IPC_CREAT | 0o600).map(|i| i.0),
    );
    // Set 1: private, 1 semaphore, then owned by uid 4242 (no passwd entry).
    let f = both("semget F", oracle::semget(0, 1, IPC_CREAT | 0o644), c.semget(0, 1, IPC_CREAT | 0o644).map(|i| i.0));
    // Queue 0: key 0x5000, 0640, two messages sent, one received; queue 1:
    // private and empty.
    let h =
        both("msgget H", oracle::msgget(0x5000, IPC_CREAT | 0o640), c.msgget(0x5000, IPC_CREAT | 0o640).map(|i| i.0));
    both("msgget I", oracle::msgget(0, IPC_CREAT | 0o600), c.msgget(0, IPC_CREAT | 0o600).map(|i| i.0));
    // Objects of uid 1: segment 3, set 2, queue 2.
    let st =
        Command::new(std::env::current_exe().unwrap()).env("UIPC_GOLDEN_ROLE", "uid1").uid(1).gid(1).status().unwrap();
    assert!(st.success(), "uid-1 creator failed: {st:?}");

    let _ka = oracle::shmat(a, 0, 0).unwrap();
    let _ua = c.attach(ShmId(a), 0).unwrap();
    let ds = Shmid64Ds { shm_perm: perm(65534, 65534, 0o660), ..Shmid64Ds::default() };
    both(
        "IPC_SET A",
        oracle::shmctl(a, IPC_SET, ShmctlBuf::Set(&ds)).map(drop),
        c.shm_set(ShmId(a), 65534, 65534, 0o660),
    );
    let _kd1 = oracle::shmat(d, 0, 0).unwrap();
    let _kd2 = oracle::shmat(d, 0, 0).unwrap();
    let _ud1 = c.attach(ShmId(d), 0).unwrap();
    let _ud2 = c.attach(ShmId(d), 0).unwrap();
    both("RMID C", oracle::shmctl(d, IPC_RMID, ShmctlBuf::Null).map(drop), c.shm_remove(ShmId(d)));
    both(
        "SETVAL",
        oracle::semctl(e, 1, SETVAL, SemctlArg::Val(5)),
        c.semctl(e, 1, SETVAL, SemCtlArg::Val(5)).map(|r| r.0),
    );
    let op = [Sembuf { sem_num: 2, sem_op: 2, sem_flg: 0 }];
    both("semop", oracle::semop(e, &op).map(drop), c.semop(uipc_client::SemId(e), &op));
    let sds = Semid64Ds { sem_perm: perm(4242, 4242, 0o604), ..Semid64Ds::default() };
    let set = uipc_proto::PermSet { uid: 4242, gid: 4242, mode: 0o604 };
    both(
        "IPC_SET F",
        oracle::semctl(f, 0, IPC_SET, SemctlArg::Set(&sds)),
        c.semctl(f, 0, IPC_SET, SemCtlArg::Set(set)).map(|r| r.0),
    );
    both(
        "msgsnd H 1",
        oracle::msgsnd(h, 1, b"hello", 0, false).map(drop),
        c.msgsnd(uipc_client::MsgId(h), 1, b"hello", 0),
    );
    both(
        "msgsnd H 2",
        oracle::msgsnd(h, 2, b"hello world", 0, false).map(drop),
        c.msgsnd(uipc_client::MsgId(h), 2, b"hello world", 0),
    );
    both(
        "msgrcv H",
        oracle::msgrcv(h, 64, 1, 0, false).map(|r| r.1),
        c.msgrcv(uipc_client::MsgId(h), 64, 1, 0).map(|m| m.mtype),
    );
    // Queue 3: key 0x5001, then owned by uid 4242 (no passwd entry), 0604, qbytes 100.
    let k =
        both("msgget K", oracle::msgget(0x5001, IPC_CREAT | 0o666), c.msgget(0x5001, IPC_CREAT | 0o666).map(|i| i.0));
    let mds = Msqid64Ds { msg_perm: perm(4242, 4242, 0o604), msg_qbytes: 100, ..Msqid64Ds::default() };
    let mset = uipc_proto::MsgSetArg { perm: uipc_proto::PermSet { uid: 4242, gid: 4242, mode: 0o604 }, qbytes: 100 };
    both(
        "IPC_SET K",
        oracle::msgctl(k, IPC_SET, oracle::MsgctlBuf::Set(&mds)).map(drop),
        c.msgctl(k, IPC_SET, Some(mset)).map(drop),
    );
    println!("READY {}", std::process::id());
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// Creates a segment and a set as uid 1 (in the fixture's namespaces).
fn as_uid1() {
    let c = Client::connect_to(&env_socket(), NS).unwrap();
    both(
        "shmget D",
        oracle::shmget(0x2000, 8192, IPC_CREAT | 0o644),
        c.shmget(0x2000, 8192, IPC_CREAT | 0o644).map(|i| i.0),
    );
    both("semget G", oracle::semget(0x4000, 2, IPC_CREAT | 0o640), c.semget(0x4000, 2, IPC_CREAT | 0o640).map(|i| i.0));
    let j =
        both("msgget J", oracle::msgget(0x6000, IPC_CREAT | 0o644), c.msgget(0x6000, IPC_CREAT | 0o644).map(|i| i.0));
    both("msgsnd J", oracle::msgsnd(j, 3, b"abc", 0, false).map(drop), c.msgsnd(uipc_client::MsgId(j), 3, b"abc", 0));
}

/// Replaces the digits of clock times (`21:37:51`, `21:37`) with `X`.
fn mask(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = b.to_vec();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    for (i, &c) in b.iter().enumerate() {
        if c == b':' && i >= 2 && d(i - 1) && d(i - 2) && d(i + 1) && d(i + 2) {
            for j in [i - 2, i - 1, i + 1, i + 2] {
                out[j] = b'X';
            }
        }
    }
    String::from_utf8(out).unwrap()
}

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn run(mut cmd: Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    Run {
        stdout: mask(&String::from_utf8_lossy(&out.stdout)),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// A daemon of our own, ready when this returns.
fn start_daemon(socket: &Path) -> Child {
    let (mut r, w) = std::io::pipe().unwrap();
    oracle::keep_across_exec(w.as_fd()).unwrap();
    let child = Command::new(UIPC)
        .args(["daemon", "--socket"])
        .arg(socket)
        .arg("--ready-fd")
        .arg(w.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    drop(w);
    let mut ready = String::new();
    r.read_to_string(&mut ready).unwrap();
    assert_eq!(ready, "READY\n", "daemon did not start");
    child
}

fn golden() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP ipcs_golden: needs root (IPC namespace, setuid)");
        return;
    }
    if Command::new("ipcs").arg("-V").output().is_err() || Command::new("nsenter").arg("-V").output().is_err() {
        eprintln!("SKIP ipcs_golden: util-linux ipcs/nsenter not installed");
        return;
    }
    watchdog(300);
    let dir = std::env::temp_dir().join(format!("uipc-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.join("d.sock");
    let mut daemon = start_daemon(&socket);

    let mut fixture = Command::new(std::env::current_exe().unwrap())
        .env("UIPC_GOLDEN_ROLE", "fixture")
        .env("UIPC_SOCKET", &socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fixture.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let pid: u32 = line.strip_prefix("READY ").expect("fixture failed").trim().parse().unwrap();
    let ns_path = format!("--ipc=/proc/{pid}/ns/ipc");

    let native = |util: &str, args: &[&str]| {
        let mut c = Command::new("nsenter");
        c.arg(&ns_path).arg(util).args(args);
        run(c)
    };
    let ours = |util: &str, args: &[&str]| {
        let mut c = Command::new(UIPC);
        c.arg0(util).args(args).env("UIPC_SOCKET", &socket).env("UIPC_NAMESPACE", NS);
        run(c)
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut check = |util: &str, args: &[&str]| {
        let (n, o) = (native(util, args), ours(util, args));
        compared += 1;
        if n.stdout != o.stdout || n.stderr != o.stderr || n.code != o.code {
            failures.push(format!(
                "{util} {}:\n--- util-linux (exit {:?}) ---\n{}{}--- uipc (exit {:?}) ---\n{}{}",
                args.join(" "),
                n.code,
                n.stdout,
                n.stderr,
                o.code,
                o.stdout,
                o.stderr
            ));
        }
    };
    let ipcs_flags: &[&[&str]] = &[
        &[],
        &["-a"],
        &["-m"],
        &["-q"],
        &["-s"],
        &["-l"],
        &["-u"],
        &["-t"],
        &["-p"],
        &["-c"],
        &["-b"],
        &["--human"],
        &["-m", "-t"],
        &["-m", "-p"],
        &["-m", "-c"],
        &["-m", "-b"],
        &["-m", "--human"],
        &["-s", "-t"],
        &["-s", "-p"],
        &["-s", "-c"],
        &["-q", "-t"],
        &["-q", "-p"],
        &["-q", "-c"],
        &["-l", "-b"],
        &["-l", "--human"],
        &["-u", "-b"],
        &["-u", "--human"],
        &["-m", "-u"],
        &["-s", "-l"],
        &["-q", "-l"],
        &["-m", "-i", "0"],
        &["-m", "-i", "1"],
        &["-m", "-i", "2"],
        &["-m", "-i", "3", "--human"],
        &["-m", "-i", "0", "-b"],
        &["-s", "-i", "0"],
        &["-s", "-i", "1"],
        &["-s", "-i", "2"],
        &["-m", "-i", "99"],
        &["-q", "-i", "0"],
        &["-q", "-i", "1"],
        &["-q", "-i", "2", "--human"],
        &["-q", "-i", "3", "-b"],
        &["-q", "-i", "99"],
        &["-q", "-b"],
        &["-q", "--human"],
        &["-q", "-u"],
        &["-q", "-u", "--human"],
        &["-q", "-u", "-b"],
        &["-i", "0"],
        &["-m", "-i", "x"],
        &["-Z"],
        &["--bogus"],
        &["-mst"],
        &["--shm", "--tim"],
    ];
    for args in ipcs_flags {
        check("ipcs", args);
    }
    let lsipc_flags: &[&[&str]] = &[
        &[],
        &["--json"],
        &["-g"],
        &["-g", "--json"],
        &["-g", "-b"],
        &["-g", "-m"],
        &["-g", "-s", "-r"],
        &["-m"],
        &["-m", "--json"],
        &["-m", "--raw"],
        &["-m", "-b"],
        &["-m", "-c"],
        &["-m", "-t"],
        &["-m", "-P"],
        &["-m", "-e"],
        &["-m", "--noheadings"],
        &["-m", "-o", "KEY,ID,SIZE,NATTCH,STATUS,COMMAND"],
        &["-m", "-o", "+CUSER,CGROUP,USER,GROUP"],
        &["-m", "-i", "2"],
        &["-m", "-i", "0", "--json"],
        &["-s"],
        &["-s", "--json"],
        &["-s", "--raw"],
        &["-s", "-c"],
        &["-s", "-t"],
        &["-s", "-n"],
        &["-s", "-i", "0"],
        &["-s", "-i", "1"],
        &["-s", "-y", "-e", "-o", "+CUID,USER"],
        &["-q"],
        &["-q", "--json"],
        &["-q", "--raw"],
        &["-q", "-b"],
        &["-q", "-c"],
        &["-q", "-t"],
        &["-q", "-P"],
        &["-q", "-i", "0"],
        &["-q", "-i", "3", "--json"],
        &["-q", "-o", "+SEND,RECV,LSPID,LRPID,CUID"],
        &["-g", "-q"],
        &["-m", "-o", "NSEMS"],
        &["-m", "-o", "FOO"],
        &["-J", "-r"],
        &["-t"],
    ];
    for args in lsipc_flags {
        check("lsipc", args);
    }
    // `uipc ipcs` (the subcommand) prints what the link prints.
    let mut c = Command::new(UIPC);
    c.args(["ipcs", "--socket"]).arg(&socket).args(["--ns", NS, "-a"]);
    let sub = run(c);
    let n = native("ipcs", &["-a"]);
    assert_eq!(sub.stdout, n.stdout, "uipc ipcs -a");

    drop(fixture.stdin.take());
    let _ = fixture.wait();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{} of {compared} outputs differ:\n\n{}", failures.len(), failures.join("\n"));
    eprintln!("ipcs_golden: {compared} outputs byte-identical (times masked)");
}
