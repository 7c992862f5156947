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
