//! The POSIX shm and named-semaphore rules of the model (SPEC section 6),
//! over `HeapMemory`. The kernel comparison is in the daemon and preload
//! differential tests; these pin the model's decisions one by one.
#![allow(clippy::unwrap_used)]

use uipc_abi::pshm::{sem_t_bytes, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
use uipc_core::cred::{CapSet, Cred, Gid, Pid, PosixIds, Uid};
use uipc_core::memory::HeapRegion;
use uipc_core::perm::FilePerm;
use uipc_core::posix::shm::{OpenAccess, PshmKind};
use uipc_core::{Errno, HeapMemory, IpcNamespace, Memory};

fn who(uid: u32, caps: u64) -> Cred {
    let mut posix = PosixIds::from_effective(Uid(uid), Gid(uid));
    posix.umask = 0o022;
    Cred {
        pid: Pid(uid + 1),
        euid: Uid(uid),
        egid: Gid(uid),
        groups: vec![],
        caps: CapSet(caps),
        memlock_limit: 0,
        posix,
    }
}

fn root() -> Cred {
    who(0, u64::MAX)
}

fn nobody() -> Cred {
    who(65534, 0)
}

fn perm_of(ns: &IpcNamespace<HeapMemory>, name: &[u8]) -> FilePerm {
    ns.pshm_list().into_iter().find(|e| e.name == name).unwrap().perm
}

#[test]
fn pshm_name_rules() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let r = root();
    // PSHM-NAME-1: leading slashes are stripped; "x", "/x", "//x" are one object.
    assert!(ns.pshm_open(&r, b"x", O_CREAT | O_EXCL | O_RDWR, 0o600).unwrap().created);
    assert_eq!(ns.pshm_open(&r, b"//x", O_CREAT | O_EXCL | O_RDWR, 0o600).unwrap_err(), Errno::EEXIST);
    assert!(!ns.pshm_open(&r, b"/x", O_RDWR, 0).unwrap().created);
    // PSHM-NAME-2
    for bad in [&b""[..], b"/", b"//", b"/a/b", b"a/"] {
        assert_eq!(ns.pshm_open(&r, bad, O_CREAT | O_RDWR, 0o600).unwrap_err(), Errno::EINVAL, "{bad:?}");
        assert_eq!(ns.pshm_unlink(&r, bad, PshmKind::Shm).unwrap_err(), Errno::ENOENT, "{bad:?}");
    }
    let long = vec![b'n'; 255];
    assert!(ns.pshm_open(&r, &long, O_CREAT | O_RDWR, 0o600).is_ok());
    // The kernel's NAME_MAX, then (past 259 bytes) glibc 2.36's buffer.
    assert_eq!(ns.pshm_open(&r, &[b'n'; 256], O_CREAT | O_RDWR, 0o600).unwrap_err(), Errno::ENAMETOOLONG);
    assert_eq!(ns.pshm_open(&r, &[b'n'; 259], O_CREAT | O_RDWR, 0o600).unwrap_err(), Errno::ENAMETOOLONG);
    assert_eq!(ns.pshm_open(&r, &[b'n'; 260], O_CREAT | O_RDWR, 0o600).unwrap_err(), Errno::EINVAL);
    assert_eq!(ns.pshm_unlink(&r, &[b'n'; 259], PshmKind::Shm).unwrap_err(), Errno::ENAMETOOLONG);
    assert_eq!(ns.pshm_unlink(&r, &[b'n'; 260], PshmKind::Shm).unwrap_err(), Errno::ENOENT);
    // PSEM-NAME-1: sem.NAME must fit NAME_MAX.
    assert!(ns.sem_open(&r, &[b's'; 251], O_CREAT, 0o600, 0).is_ok());
    assert_eq!(ns.sem_open(&r, &[b's'; 252], O_CREAT, 0o600, 0).unwrap_err(), Errno::ENAMETOOLONG);
    assert_eq!(ns.sem_open(&r, &[b's'; 256], O_CREAT, 0o600, 0).unwrap_err(), Errno::EINVAL);
    // PSHM-NAME-3 (uipc's choice): "." and ".." are EINVAL; unlink says EISDIR.
    assert_eq!(ns.pshm_open(&r, b"/.", O_RDONLY, 0).unwrap_err(), Errno::EINVAL);
    assert_eq!(ns.pshm_unlink(&r, b"..", PshmKind::Shm).unwrap_err(), Errno::EISDIR);
}

#[test]
fn pshm_open_create_and_permissions() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let r = root();
    let n = nobody();
    // PSHM-OPEN-2
    assert_eq!(ns.pshm_open(&n, b"o", O_RDWR, 0).unwrap_err(), Errno::ENOENT);
    // PSHM-OPEN-3: mode & ~umask, owner = fsuid/fsgid, size 0.
    let o = ns.pshm_open(&n, b"o", O_CREAT | O_RDWR, 0o666).unwrap();
    assert_eq!(o.access, OpenAccess::ReadWrite);
    assert_eq!(perm_of(&ns, b"o"), FilePerm { uid: Uid(65534), gid: Gid(65534), mode: 0o644 });
    assert_eq!(o.region.lock().unwrap().len(), 0);
    // A new object is not checked against its own mode.
    assert!(ns.pshm_open(&n, b"zero", O_CREAT | O_RDWR, 0).is_ok());
    assert_eq!(ns.pshm_open(&n, b"zero", O_RDONLY, 0).unwrap_err(), Errno::EACCES);
    // Root (CAP_DAC_OVERRIDE) opens anything; nobody needs the class bits.
    assert!(ns.pshm_open(&r, b"zero", O_RDWR, 0).is_ok());
    let root_only = ns.pshm_open(&r, b"ro", O_CREAT | O_RDWR, 0o644).unwrap();
    drop(root_only);
    assert!(ns.pshm_open(&n, b"ro", O_RDONLY, 0).is_ok());
    assert_eq!(ns.pshm_open(&n, b"ro", O_RDWR, 0).unwrap_err(), Errno::EACCES);
    assert_eq!(ns.pshm_open(&n, b"ro", O_WRONLY, 0).unwrap_err(), Errno::EACCES);
    // PSHM-OPEN-4: O_TRUNC needs write, even with O_RDONLY, and empties.
    assert_eq!(ns.pshm_open(&n, b"ro", O_RDONLY | O_TRUNC, 0).unwrap_err(), Errno::EACCES);
    let mut mem = HeapMemory;
    mem.truncate(&o.region, 10000).unwrap();
    let again = ns.pshm_open(&n, b"o", O_RDONLY | O_TRUNC, 0).unwrap();
    assert_eq!(again.access, OpenAccess::Read);
    assert_eq!(again.region.lock().unwrap().len(), 0);
    // O_CREAT of an existing object checks it like an open.
    assert_eq!(ns.pshm_open(&n, b"ro", O_CREAT | O_RDWR, 0o666).unwrap_err(), Errno::EACCES);
}

#[test]
fn fchmod_through_the_memory_is_what_the_next_open_checks() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let n = nobody();
    let o = ns.pshm_open(&n, b"f", O_CREAT | O_RDWR, 0o600).unwrap();
    let other = who(1000, 0);
    assert_eq!(ns.pshm_open(&other, b"f", O_RDONLY, 0).unwrap_err(), Errno::EACCES);
    // PSHM-STAT-2: what fchmod/fchown on a descriptor changed.
    o.region.lock().unwrap().set_owner(FilePerm { uid: Uid(65534), gid: Gid(65534), mode: 0o604 });
    assert!(ns.pshm_open(&other, b"f", O_RDONLY, 0).is_ok());
    o.region.lock().unwrap().set_owner(FilePerm { uid: Uid(1000), gid: Gid(1000), mode: 0o600 });
    assert!(ns.pshm_open(&other, b"f", O_RDWR, 0).is_ok());
    assert_eq!(ns.pshm_open(&n, b"f", O_RDONLY, 0).unwrap_err(), Errno::EACCES);
}

#[test]
fn unlink_sticky_rule_and_unlink_while_open() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let r = root();
    let n = nobody();
    let o = ns.pshm_open(&r, b"u", O_CREAT | O_RDWR, 0o666).unwrap();
    // PSHM-UNL-1: not the owner, not the directory's owner, no CAP_FOWNER.
    assert_eq!(ns.pshm_unlink(&n, b"u", PshmKind::Shm).unwrap_err(), Errno::EACCES);
    // Root without CAP_FOWNER still owns /dev/shm.
    assert!(ns.pshm_open(&n, b"mine", O_CREAT | O_RDWR, 0o600).is_ok());
    assert_eq!(ns.pshm_unlink(&who(0, 0), b"mine", PshmKind::Shm), Ok(()));
    assert_eq!(ns.pshm_unlink(&r, b"u", PshmKind::Shm), Ok(()));
    assert_eq!(ns.pshm_unlink(&r, b"u", PshmKind::Shm).unwrap_err(), Errno::ENOENT);
    // PSHM-UNL-2: the name is gone, the memory lives on; O_CREAT makes a new one.
    let mut mem = HeapMemory;
    mem.write_at(&o.region, 0, b"old").unwrap();
    assert_eq!(ns.pshm_open(&r, b"u", O_RDWR, 0).unwrap_err(), Errno::ENOENT);
    let fresh: HeapRegion = ns.pshm_open(&r, b"u", O_CREAT | O_RDWR, 0o600).unwrap().region;
    assert_eq!(fresh.lock().unwrap().len(), 0);
    assert_eq!(o.region.lock().unwrap().read(0, 3).unwrap(), b"old");
}

#[test]
fn shrink_then_grow_reads_zeros() {
    // PSHM-SIZE-2 / ZERO-4 on the heap provider (memfds are tmpfs).
    let mut ns = IpcNamespace::new(HeapMemory);
    let o = ns.pshm_open(&root(), b"z", O_CREAT | O_RDWR, 0o600).unwrap();
    let mut mem = HeapMemory;
    mem.truncate(&o.region, 10000).unwrap();
    mem.write_at(&o.region, 0, &[0xab; 10000]).unwrap();
    mem.truncate(&o.region, 5000).unwrap();
    mem.truncate(&o.region, 10000).unwrap();
    let bytes = o.region.lock().unwrap().read(0, 10000).unwrap();
    assert_eq!(bytes[4999], 0xab);
    assert!(bytes[5000..].iter().all(|&b| b == 0));
}

#[test]
fn sem_open_rules() {
    let mut ns = IpcNamespace::new(HeapMemory);
    let r = root();
    let n = nobody();
    // PSEM-OPEN-2: value > SEM_VALUE_MAX only matters when creating.
    assert_eq!(ns.sem_open(&r, b"/s", O_CREAT, 0o644, 0x8000_0000).unwrap_err(), Errno::EINVAL);
    let s = ns.sem_open(&r, b"/s", O_CREAT, 0o644, 3).unwrap();
    assert!(s.created);
    assert_eq!(s.access, OpenAccess::ReadWrite);
    assert_eq!(s.region.lock().unwrap().read(0, 32).unwrap(), sem_t_bytes(3));
    assert!(!ns.sem_open(&r, b"s", O_CREAT, 0o644, 0x8000_0000).unwrap().created);
    assert_eq!(ns.sem_open(&r, b"s", O_CREAT | O_EXCL, 0o644, 1).unwrap_err(), Errno::EEXIST);
    // The object is sem.NAME, beside shm objects.
    assert!(ns.pshm_open(&r, b"sem.s", O_RDONLY, 0).is_ok());
    // PSEM-OPEN-1: read and write needed; ENOENT without O_CREAT.
    assert_eq!(ns.sem_open(&n, b"s", 0, 0, 0).unwrap_err(), Errno::EACCES);
    assert_eq!(ns.sem_open(&n, b"absent", 0, 0, 0).unwrap_err(), Errno::ENOENT);
    // PSEM-UNL-1
    assert_eq!(ns.pshm_unlink(&n, b"s", PshmKind::Sem).unwrap_err(), Errno::EACCES);
    assert_eq!(ns.pshm_unlink(&r, b"s", PshmKind::Sem), Ok(()));
    assert_eq!(ns.pshm_unlink(&r, b"s", PshmKind::Sem).unwrap_err(), Errno::ENOENT);
}
