//! Tests of the kernel oracle itself: does the agent really run the kernel's
//! calls, in a fresh namespace, with the identities asked for?
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uipc_abi::{Errno, IPC_CREAT, IPC_PRIVATE, IPC_STAT, SHM_RDONLY};
use uipc_testkit::sandbox::oracle_unavailable;
use uipc_testkit::{transcript_of, Backend, Identity, KernelBackend, Op, Session};

const AGENT: &str = env!("CARGO_BIN_EXE_uipc-kernel-agent");

/// Runs `body` on a fresh kernel oracle; skips (passing) where the oracle
/// cannot run. Panics with the transcript if the body panicked.
fn on_kernel(name: &str, body: impl Fn(&mut Session)) -> Vec<String> {
    if let Some(why) = oracle_unavailable() {
        eprintln!("SKIP {name}: {why}");
        return Vec::new();
    }
    let mut k = KernelBackend::start(AGENT).expect("agent starts");
    let t = transcript_of(&mut k, &body);
    if std::env::var_os("UIPC_SHOW_TRANSCRIPT").is_some() {
        eprintln!("{name}:\n  {}", t.join("\n  "));
    }
    if t.last().is_some_and(|l| l.starts_with("PANIC")) {
        panic!("{name}:\n{}", t.join("\n"));
    }
    t
}

#[test]
fn fresh_namespace_ids_start_at_zero() {
    on_kernel("ids", |s| {
        let p = s.root();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600), Ok(0));
        let id2 = s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        // The second id of a fresh namespace is slot 1 (seq 0).
        assert_eq!(id2, 1);
    });
}

#[test]
fn attach_write_read_stat_fork_exec_exit() {
    on_kernel("lifecycle", |s| {
        let p = s.root();
        let id = s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(p, id, 0, 0).unwrap();
        s.write(p, a, b"hello").unwrap();
        assert_eq!(s.read(p, a, 5).unwrap(), b"hello");

        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!(ds.nattch, 1);
        assert_eq!(ds.cpid, i32::try_from(s.pid(p)).unwrap());
        assert_eq!(ds.lpid, ds.cpid);
        assert_eq!(ds.segsz, 4096);
        assert_eq!(ds.mode & 0o777, 0o600);
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid), (0, 0, 0, 0));
        assert_eq!(ds.unused_or, 0);
        assert!(ds.atime > 0 && ds.dtime == 0 && ds.ctime > 0);

        // fork inherits the attachment.
        let c = s.fork(p);
        assert_ne!(s.pid(c), s.pid(p));
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 2);
        assert_eq!(s.read(c, a, 5).unwrap(), b"hello");
        s.write(c, a, b"HE").unwrap();
        assert_eq!(s.read(p, a, 5).unwrap(), b"HEllo");

        // exec releases the child's attachment; the pid stays and it still serves.
        s.exec(c);
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 1);
        assert_eq!(s.read(c, a, 1), Err(Errno::EFAULT));
        assert_eq!(s.shm_stat(c, id).unwrap().nattch, 1);

        // exit releases the parent's.
        s.exit(p);
        let ds = s.shm_stat(c, id).unwrap();
        assert_eq!(ds.nattch, 0);
        assert_eq!(ds.lpid, i32::try_from(s.pid(p)).unwrap());
        assert!(ds.dtime > 0);
        s.kill(c);
    });
}

#[test]
fn kill_releases_and_rdonly_write_faults() {
    on_kernel("kill", |s| {
        let p = s.root();
        let q = s.root();
        let id = s.shmget(p, IPC_PRIVATE, 8192, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(q, id, 0, SHM_RDONLY).unwrap();
        assert_eq!(s.read(q, a, 2).unwrap(), vec![0, 0]);
        assert_eq!(s.write(q, a, b"x"), Err(Errno::EFAULT));
        // Spanning past the end of the 2-page segment faults too.
        assert_eq!(s.read(q, a + 8190, 4), Err(Errno::EFAULT));
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 1);
        s.kill(q);
        assert_eq!(s.shm_stat(p, id).unwrap().nattch, 0);
        // find_free gives an address where an explicit attach works.
        let f = s.find_free(p, 8192);
        assert_eq!(s.shmat(p, id, f, 0), Ok(f));
        s.shmdt(p, f).unwrap();
        assert_eq!(s.shmdt(p, f), Err(Errno::EINVAL));
    });
}

#[test]
fn unprivileged_user_gets_eacces() {
    on_kernel("eacces", |s| {
        let root = s.root();
        let id = s.shmget(root, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let u = s.user(1000, 1000);
        assert_eq!(s.shmat(u, id, 0, 0), Err(Errno::EACCES));
        assert_eq!(s.shm_stat(u, id), Err(Errno::EACCES));
        // Identity survives fork and exec.
        let c = s.fork(u);
        s.exec(c);
        assert_eq!(s.shmat(c, id, 0, 0), Err(Errno::EACCES));
        // A segment the user creates is theirs.
        let mine = s.shmget(u, IPC_PRIVATE, 4096, IPC_CREAT | 0o640).unwrap();
        let ds = s.shm_stat(u, mine).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.cuid, ds.cgid), (1000, 1000, 1000, 1000));
    });
}

#[test]
fn root_without_ipc_owner_gets_eacces_even_after_exec() {
    on_kernel("drop_caps", |s| {
        let owner = s.user(1000, 1000);
        let id = s.shmget(owner, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let r = s.root();
        assert!(s.shmat(r, id, 0, 0).is_ok());
        let weak = s.spawn(Identity::root().without_caps(&[uipc_testkit::op::cap::IPC_OWNER]));
        assert_eq!(s.shmat(weak, id, 0, 0), Err(Errno::EACCES));
        s.exec(weak);
        assert_eq!(s.shmat(weak, id, 0, 0), Err(Errno::EACCES));
    });
}

#[test]
fn sysctl_limits_apply_in_the_namespace() {
    on_kernel("sysctl", |s| {
        let p = s.root();
        assert_eq!(s.sysctl_get("kernel.shmmni").unwrap(), "4096");
        s.sysctl_set("kernel.shmmni", "1").unwrap();
        assert_eq!(s.sysctl_get("kernel.shmmni").unwrap(), "1");
        s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        assert_eq!(s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600), Err(Errno::ENOSPC));
        assert_eq!(s.sysctl_set("kernel.shmmni", "40000"), Err(Errno::EINVAL));
        assert_eq!(s.sysctl_get("kernel.no_such_thing"), Err(Errno::ENOENT));
    });
}

#[test]
fn stat_info_and_fault_buffers() {
    on_kernel("ctl", |s| {
        let p = s.root();
        let id = s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let (_, info) = s.shm_ipc_info(p, 0).unwrap();
        assert_eq!(info.shmmni, 4096);
        assert_eq!(info.shmmin, 1);
        let (used_max, si) = s.shm_info(p, 0).unwrap();
        assert_eq!((used_max, si.used_ids), (0, 1));
        assert_eq!(s.shmctl_fault(p, id, IPC_STAT), Err(Errno::EFAULT));
        s.shmctl_set(p, id, 1000, 1000, 0o644).unwrap();
        let ds = s.shm_stat(p, id).unwrap();
        assert_eq!((ds.uid, ds.gid, ds.mode & 0o777), (1000, 1000, 0o644));
        assert_eq!(s.shmctl(p, id, uipc_abi::IPC_RMID), Ok(0));
        assert_eq!(s.shm_stat(p, id), Err(Errno::EINVAL));
    });
}

#[test]
fn harness_errors_are_errors() {
    if oracle_unavailable().is_some() {
        return;
    }
    let mut k = KernelBackend::start(AGENT).unwrap();
    assert!(k.call(999_999, &Op::FindFree { len: 4096 }).is_err());
    assert!(k.sysctl_get("../etc/passwd").is_err());
    // The backend still works after a harness error on a bad request.
    let p = k.spawn(&Identity::root()).unwrap();
    assert!(k.call(p, &Op::FindFree { len: 4096 }).unwrap().ret.is_ok());
    assert!(KernelBackend::start("/nonexistent/agent").is_err());
}

#[test]
fn transcripts_are_deterministic() {
    let body = |s: &mut Session| {
        let p = s.root();
        let id = s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600).unwrap();
        let a = s.shmat(p, id, 0, 0).unwrap();
        let c = s.fork(p);
        s.shm_stat(c, id).unwrap();
        s.shmdt(c, a).unwrap();
        s.exit(c);
        s.shm_stat(p, id).unwrap();
    };
    let t1 = on_kernel("det1", body);
    let t2 = on_kernel("det2", body);
    assert_eq!(t1, t2);
}

/// `conformance!` expands in this crate (it names our agent binary); not
/// run here, since it also needs the uipc backends.
#[allow(dead_code)]
fn conformance_macro_compiles() {
    uipc_testkit::conformance!("ORACLE-SMOKE", |s: &mut Session| {
        let p = s.root();
        let _ = s.shmget(p, IPC_PRIVATE, 4096, IPC_CREAT | 0o600);
    });
}
