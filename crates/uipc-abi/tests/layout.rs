//! Sizes and field offsets of the uipc-abi structures, checked against the
//! `libc` crate's definitions of the same glibc structures.
use core::mem::{offset_of, size_of};
use uipc_abi::*;

#[test]
fn ipc_perm_matches_libc() {
    assert_eq!(size_of::<Ipc64Perm>(), size_of::<libc::ipc_perm>());
    assert_eq!(size_of::<Ipc64Perm>(), 48);
    assert_eq!(offset_of!(Ipc64Perm, key), offset_of!(libc::ipc_perm, __key));
    assert_eq!(offset_of!(Ipc64Perm, uid), offset_of!(libc::ipc_perm, uid));
    assert_eq!(offset_of!(Ipc64Perm, gid), offset_of!(libc::ipc_perm, gid));
    assert_eq!(offset_of!(Ipc64Perm, cuid), offset_of!(libc::ipc_perm, cuid));
    assert_eq!(offset_of!(Ipc64Perm, cgid), offset_of!(libc::ipc_perm, cgid));
    assert_eq!(offset_of!(Ipc64Perm, mode), offset_of!(libc::ipc_perm, mode));
    assert_eq!(offset_of!(Ipc64Perm, seq), offset_of!(libc::ipc_perm, __seq));
}

#[test]
fn shmid_ds_matches_libc() {
    assert_eq!(size_of::<Shmid64Ds>(), size_of::<libc::shmid_ds>());
    assert_eq!(size_of::<Shmid64Ds>(), 112);
    assert_eq!(offset_of!(Shmid64Ds, shm_segsz), offset_of!(libc::shmid_ds, shm_segsz));
    assert_eq!(offset_of!(Shmid64Ds, shm_atime), offset_of!(libc::shmid_ds, shm_atime));
    assert_eq!(offset_of!(Shmid64Ds, shm_dtime), offset_of!(libc::shmid_ds, shm_dtime));
    assert_eq!(offset_of!(Shmid64Ds, shm_ctime), offset_of!(libc::shmid_ds, shm_ctime));
    assert_eq!(offset_of!(Shmid64Ds, shm_cpid), offset_of!(libc::shmid_ds, shm_cpid));
    assert_eq!(offset_of!(Shmid64Ds, shm_lpid), offset_of!(libc::shmid_ds, shm_lpid));
    assert_eq!(offset_of!(Shmid64Ds, shm_nattch), offset_of!(libc::shmid_ds, shm_nattch));
}

#[test]
fn semid_ds_matches_libc() {
    assert_eq!(size_of::<Semid64Ds>(), size_of::<libc::semid_ds>());
    assert_eq!(offset_of!(Semid64Ds, sem_otime), offset_of!(libc::semid_ds, sem_otime));
    assert_eq!(offset_of!(Semid64Ds, sem_ctime), offset_of!(libc::semid_ds, sem_ctime));
    assert_eq!(offset_of!(Semid64Ds, sem_nsems), offset_of!(libc::semid_ds, sem_nsems));
}

#[test]
fn msqid_ds_matches_libc() {
    assert_eq!(size_of::<Msqid64Ds>(), size_of::<libc::msqid_ds>());
    assert_eq!(size_of::<Msqid64Ds>(), 120);
    assert_eq!(offset_of!(Msqid64Ds, msg_stime), offset_of!(libc::msqid_ds, msg_stime));
    assert_eq!(offset_of!(Msqid64Ds, msg_rtime), offset_of!(libc::msqid_ds, msg_rtime));
    assert_eq!(offset_of!(Msqid64Ds, msg_ctime), offset_of!(libc::msqid_ds, msg_ctime));
    assert_eq!(offset_of!(Msqid64Ds, msg_qnum), offset_of!(libc::msqid_ds, msg_qnum));
    assert_eq!(offset_of!(Msqid64Ds, msg_qbytes), offset_of!(libc::msqid_ds, msg_qbytes));
    assert_eq!(offset_of!(Msqid64Ds, msg_lspid), offset_of!(libc::msqid_ds, msg_lspid));
    assert_eq!(offset_of!(Msqid64Ds, msg_lrpid), offset_of!(libc::msqid_ds, msg_lrpid));
}

#[test]
fn sembuf_and_mq_attr_match_libc() {
    assert_eq!(size_of::<Sembuf>(), size_of::<libc::sembuf>());
    assert_eq!(size_of::<Sembuf>(), 6);
    assert_eq!(offset_of!(Sembuf, sem_op), offset_of!(libc::sembuf, sem_op));
    assert_eq!(offset_of!(Sembuf, sem_flg), offset_of!(libc::sembuf, sem_flg));
    assert_eq!(size_of::<MqAttr>(), size_of::<libc::mq_attr>());
    assert_eq!(size_of::<MqAttr>(), 64);
}

#[test]
fn info_structs_have_kernel_sizes() {
    // The libc crate does not define shminfo/shm_info/seminfo/msginfo for
    // every target; the sizes are the kernel's (SPEC 1.7).
    assert_eq!(size_of::<Shminfo64>(), 72);
    assert_eq!(size_of::<ShmInfo>(), 48);
    assert_eq!(size_of::<Seminfo>(), 40);
    assert_eq!(size_of::<Msginfo>(), 32);
}

#[test]
fn errno_values_match_libc() {
    for (ours, theirs) in [
        (Errno::EPERM, libc::EPERM),
        (Errno::ENOENT, libc::ENOENT),
        (Errno::EINTR, libc::EINTR),
        (Errno::E2BIG, libc::E2BIG),
        (Errno::EAGAIN, libc::EAGAIN),
        (Errno::ENOMEM, libc::ENOMEM),
        (Errno::EACCES, libc::EACCES),
        (Errno::EFAULT, libc::EFAULT),
        (Errno::EEXIST, libc::EEXIST),
        (Errno::EINVAL, libc::EINVAL),
        (Errno::EFBIG, libc::EFBIG),
        (Errno::ENOSPC, libc::ENOSPC),
        (Errno::ERANGE, libc::ERANGE),
        (Errno::ENOSYS, libc::ENOSYS),
        (Errno::ENOMSG, libc::ENOMSG),
        (Errno::EIDRM, libc::EIDRM),
        (Errno::EMSGSIZE, libc::EMSGSIZE),
        (Errno::ETIMEDOUT, libc::ETIMEDOUT),
    ] {
        assert_eq!(ours.raw(), theirs, "{ours:?}");
    }
}

#[test]
fn constants_match_libc() {
    assert_eq!(IPC_CREAT, libc::IPC_CREAT);
    assert_eq!(IPC_EXCL, libc::IPC_EXCL);
    assert_eq!(IPC_NOWAIT, libc::IPC_NOWAIT);
    assert_eq!(IPC_RMID, libc::IPC_RMID);
    assert_eq!(IPC_SET, libc::IPC_SET);
    assert_eq!(IPC_STAT, libc::IPC_STAT);
    assert_eq!(IPC_INFO, libc::IPC_INFO);
    assert_eq!(SHM_RDONLY, libc::SHM_RDONLY);
    assert_eq!(SHM_RND, libc::SHM_RND);
    assert_eq!(SHM_REMAP, libc::SHM_REMAP);
    assert_eq!(SHM_EXEC, libc::SHM_EXEC);
    assert_eq!(SHM_LOCK, libc::SHM_LOCK);
    assert_eq!(SHM_UNLOCK, libc::SHM_UNLOCK);
    assert_eq!(SHM_HUGETLB, libc::SHM_HUGETLB);
    assert_eq!(SHM_NORESERVE, libc::SHM_NORESERVE);
    assert_eq!(GETPID, libc::GETPID);
    assert_eq!(GETVAL, libc::GETVAL);
    assert_eq!(GETALL, libc::GETALL);
    assert_eq!(GETNCNT, libc::GETNCNT);
    assert_eq!(GETZCNT, libc::GETZCNT);
    assert_eq!(SETVAL, libc::SETVAL);
    assert_eq!(SETALL, libc::SETALL);
    assert_eq!(i32::from(SEM_UNDO), libc::SEM_UNDO);
    assert_eq!(MSG_NOERROR, libc::MSG_NOERROR);
    assert_eq!(MSG_EXCEPT, libc::MSG_EXCEPT);
    assert_eq!(MSG_COPY, libc::MSG_COPY);
    assert_eq!(MSG_STAT, libc::MSG_STAT);
    assert_eq!(MSG_INFO, libc::MSG_INFO);
}

/// `to_c_bytes` puts every field where C reads it: the image, read as the
/// libc structure, holds the same values.
#[test]
fn c_bytes_read_back_through_libc() {
    fn as_libc<T: Copy>(bytes: &[u8]) -> T {
        assert_eq!(bytes.len(), size_of::<T>());
        // SAFETY: `bytes` has exactly T's size, and the libc structures are
        // plain integers, valid for any bit pattern.
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
    }
    let perm =
        Ipc64Perm { key: -3, uid: 1001, gid: 1002, cuid: 1003, cgid: 1004, mode: 0o1640, seq: 7, ..Default::default() };
    let shm = Shmid64Ds {
        shm_perm: perm,
        shm_segsz: 4096,
        shm_atime: 11,
        shm_dtime: 12,
        shm_ctime: 13,
        shm_cpid: 21,
        shm_lpid: 22,
        shm_nattch: 3,
        ..Default::default()
    };
    let c: libc::shmid_ds = as_libc(&shm.to_c_bytes());
    let p = c.shm_perm;
    assert_eq!((p.__key, p.uid, p.gid, p.cuid, p.cgid, p.mode, p.__seq), (-3, 1001, 1002, 1003, 1004, 0o1640, 7));
    assert_eq!((c.shm_segsz, c.shm_atime, c.shm_dtime, c.shm_ctime), (4096, 11, 12, 13));
    assert_eq!((c.shm_cpid, c.shm_lpid, c.shm_nattch), (21, 22, 3));

    let sem = Semid64Ds { sem_perm: perm, sem_otime: 31, sem_ctime: 32, sem_nsems: 5, ..Default::default() };
    let c: libc::semid_ds = as_libc(&sem.to_c_bytes());
    assert_eq!((c.sem_perm.uid, c.sem_otime, c.sem_ctime, c.sem_nsems), (1001, 31, 32, 5));

    let info = Shminfo64 { shmmax: 1, shmmin: 2, shmmni: 3, shmseg: 4, shmall: 5, unused: [0; 4] };
    let longs: Vec<u64> = info.to_c_bytes().chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
    assert_eq!(longs, [1, 2, 3, 4, 5, 0, 0, 0, 0]);

    let si = ShmInfo { used_ids: 2, pad: 0, shm_tot: 3, shm_rss: 4, shm_swp: 5, swap_attempts: 0, swap_successes: 0 };
    let bytes = si.to_c_bytes();
    assert_eq!(bytes.len(), 48);
    assert_eq!(&bytes[0..4], &2i32.to_ne_bytes());
    assert_eq!(&bytes[8..16], &3u64.to_ne_bytes());
    assert_eq!(&bytes[24..32], &5u64.to_ne_bytes());

    let seminfo = Seminfo {
        semmap: 1,
        semmni: 2,
        semmns: 3,
        semmnu: 4,
        semmsl: 5,
        semopm: 6,
        semume: 7,
        semusz: 8,
        semvmx: 9,
        semaem: 10,
    };
    let bytes = seminfo.to_c_bytes();
    let ints: Vec<i32> = bytes.chunks(4).map(|c| i32::from_ne_bytes(c.try_into().unwrap())).collect();
    assert_eq!(ints, (1..=10).collect::<Vec<i32>>());

    // And back: what C wrote is what from_c_bytes reads.
    assert_eq!(Shmid64Ds::from_c_bytes(&shm.to_c_bytes()), Some(shm));
    assert_eq!(Semid64Ds::from_c_bytes(&sem.to_c_bytes()), Some(sem));
    assert_eq!(Ipc64Perm::from_c_bytes(&perm.to_c_bytes()), Some(perm));
    assert_eq!(Shminfo64::from_c_bytes(&info.to_c_bytes()), Some(info));
    assert_eq!(ShmInfo::from_c_bytes(&si.to_c_bytes()), Some(si));
    assert_eq!(Seminfo::from_c_bytes(&bytes), Some(seminfo));
    assert_eq!(Shmid64Ds::from_c_bytes(&[0; 8]), None);

    let msq = Msqid64Ds {
        msg_perm: perm,
        msg_stime: 41,
        msg_rtime: 42,
        msg_ctime: 43,
        msg_cbytes: 44,
        msg_qnum: 45,
        msg_qbytes: 46,
        msg_lspid: 47,
        msg_lrpid: 48,
        ..Default::default()
    };
    let c: libc::msqid_ds = as_libc(&msq.to_c_bytes());
    assert_eq!((c.msg_perm.uid, c.msg_perm.mode, c.msg_stime, c.msg_rtime, c.msg_ctime), (1001, 0o1640, 41, 42, 43));
    assert_eq!((c.__msg_cbytes, c.msg_qnum, c.msg_qbytes, c.msg_lspid, c.msg_lrpid), (44, 45, 46, 47, 48));
    assert_eq!(Msqid64Ds::from_c_bytes(&msq.to_c_bytes()), Some(msq));
    let mi =
        Msginfo { msgpool: 1, msgmap: 2, msgmax: 3, msgmnb: 4, msgmni: 5, msgssz: 6, msgtql: 7, msgseg: 8, pad: 0 };
    let bytes = mi.to_c_bytes();
    let ints: Vec<i32> = bytes[..28].chunks(4).map(|c| i32::from_ne_bytes(c.try_into().unwrap())).collect();
    assert_eq!((ints, &bytes[28..30]), ((1..=7).collect::<Vec<i32>>(), &8u16.to_ne_bytes()[..]));
    assert_eq!(Msginfo::from_c_bytes(&bytes), Some(mi));
    let mut c_side: libc::shmid_ds = as_libc(&[0; 112]);
    c_side.shm_perm.uid = 4242;
    c_side.shm_perm.mode = 0o640;
    c_side.shm_segsz = 99;
    // SAFETY: reads the libc structure's own bytes.
    let raw = unsafe { std::slice::from_raw_parts((&raw const c_side).cast::<u8>(), size_of::<libc::shmid_ds>()) };
    let ours = Shmid64Ds::from_c_bytes(raw).unwrap();
    assert_eq!((ours.shm_perm.uid, ours.shm_perm.mode, ours.shm_segsz), (4242, 0o640, 99));
}

#[test]
fn sem_t_bytes_are_what_glibc_sem_init_writes() {
    use uipc_abi::pshm::{sem_t_bytes, SEM_T_SIZE, SEM_VALUE_MAX};
    assert_eq!(size_of::<libc::sem_t>(), SEM_T_SIZE);
    for value in [0u32, 1, 7, SEM_VALUE_MAX] {
        let mut sem = core::mem::MaybeUninit::<libc::sem_t>::zeroed();
        // SAFETY: `sem` is a zeroed, exclusively owned sem_t; pshared=1 as
        // sem_open's semaphores are.
        assert_eq!(unsafe { libc::sem_init(sem.as_mut_ptr(), 1, value) }, 0);
        // SAFETY: sem_init initialised it; a sem_t is plain bytes.
        let raw = unsafe { std::slice::from_raw_parts(sem.as_ptr().cast::<u8>(), SEM_T_SIZE) };
        assert_eq!(raw, sem_t_bytes(value), "value {value}");
    }
    assert_eq!(libc::O_CREAT, uipc_abi::pshm::O_CREAT);
    assert_eq!(libc::O_EXCL, uipc_abi::pshm::O_EXCL);
    assert_eq!(libc::O_TRUNC, uipc_abi::pshm::O_TRUNC);
    assert_eq!(libc::O_DIRECTORY, uipc_abi::pshm::O_DIRECTORY);
    assert_eq!(libc::O_APPEND, uipc_abi::pshm::O_APPEND);
    assert_eq!(libc::O_NONBLOCK, uipc_abi::pshm::O_NONBLOCK);
}
