//! System V message queues served by the daemon: `msgget`, `msgsnd`,
//! `msgrcv` and `msgctl`.
//!
//! User memory (the `msgbuf`'s `mtype` and text, `msqid_ds`, `msginfo`) is
//! copied with `process_vm_readv`/`writev` (`uipc_sys::map::{read_at,
//! write_at}`), so a bad pointer gives `EFAULT` in the kernel's order,
//! never a crash: `mtype` is read first (MSG-SND-1), the text after the
//! `EINVAL` checks (MSG-SND-4); a received message is written after it was
//! taken from the queue, so an unwritable buffer loses it, as in Linux
//! (MSG-RCV-5).
//!
//! A call that may sleep (no `IPC_NOWAIT`) does so on a connection of its
//! own ([`uipc_client::Sleeper`]) with no lock of the shim held, as
//! `semop` does. A signal handler that runs while it sleeps makes it fail
//! with `EINTR` — never restarted, as msgop(2)'s calls are not — unless
//! the message was already sent or received, which the daemon decides.
//!
//! # Compatibility
//! - A text longer than one request frame carries ([`TEXT_MAX`], about
//!   1 MiB: only with `kernel.msgmax` raised that far) is `ENOMEM`.
//!
//! # References
//!  - [msgget(2)], [msgop(2)], [msgctl(2)]
//!
//! [msgget(2)]: https://man7.org/linux/man-pages/man2/msgget.2.html
//! [msgop(2)]: https://man7.org/linux/man-pages/man2/msgop.2.html
//! [msgctl(2)]: https://man7.org/linux/man-pages/man2/msgctl.2.html

use std::ffi::{c_int, c_long, c_void};
use std::mem::size_of;

use libc::{key_t, size_t, ssize_t};
use uipc_abi::{CBytes, Errno, Msqid64Ds, IPC_NOWAIT, MSG_COPY};
use uipc_client::{Client, Message, MsgOut, MsgSetArg};
use uipc_core::sysv::msg::MsgCmd;
use uipc_proto::PermSet;

use crate::{entry_client, ret, with_client, GATE};

/// The most text one request carries (`uipc_proto::MAX_FRAME` less room
/// for the rest of the request).
const TEXT_MAX: usize = uipc_proto::MAX_FRAME - 64;

/// `msgget(key, msgflg)` — gets or creates a System V message queue.
///
/// # Errors
/// msgget(2)'s: `ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`; `ENOSYS` when no
/// daemon answers.
///
/// # Safety
/// None beyond C's: the arguments are plain values.
#[no_mangle]
pub unsafe extern "C" fn msgget(key: key_t, msgflg: c_int) -> c_int {
    ret::int(with_client(|c| c.msgget(key, msgflg).map(|id| id.0)))
}

/// `msgsnd(msqid, msgp, msgsz, msgflg)` — sends the message `msgp` points
/// to (`long mtype` then `msgsz` bytes of text), sleeping while the queue
/// is full unless `IPC_NOWAIT`.
///
/// # Errors
/// msgop(2)'s: `EFAULT`, `EINVAL`, `EACCES`, `EAGAIN`, `EIDRM`, `EINTR`,
/// `ENOMEM`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// None beyond C's: `msgp` is only read, through checked copies.
#[no_mangle]
pub unsafe extern "C" fn msgsnd(msqid: c_int, msgp: *const c_void, msgsz: size_t, msgflg: c_int) -> c_int {
    ret::int(msgsnd_in(msqid, msgp as usize as u64, msgsz, msgflg))
}

/// A `size_t` as the kernel's `(long)` cast sees it.
fn as_long(n: size_t) -> i64 {
    i64::from_ne_bytes(u64::try_from(n).unwrap_or(u64::MAX).to_ne_bytes())
}

/// Mirrors `ipc/msg.c:ksys_msgsnd()` and `do_msgsnd()` up to the copy-in;
/// the daemon does the rest.
fn msgsnd_in(msqid: c_int, msgp: u64, msgsz: size_t, msgflg: c_int) -> Result<c_int, Errno> {
    let c = &*entry_client()?;
    let size = as_long(msgsz);
    // The common case: a buffer whose pages passed a checked copy, read in place.
    if let Some(n) = usize::try_from(size).ok().filter(|&n| n <= TEXT_MAX) {
        // SAFETY: the bytes are used within this call only.
        if let Some(whole) = unsafe { crate::usermem::readable(msgp, size_of::<c_long>() + n) } {
            let (t, text) = whole.split_at(size_of::<c_long>());
            let mtype = i64::from_ne_bytes(t.try_into().map_err(|_| Errno::EFAULT)?);
            return send(c, msqid, Some(mtype), size, Some(text), msgflg);
        }
    }
    // Else in one checked copy: type and text both readable.
    if let Some(whole) = usize::try_from(size)
        .ok()
        .filter(|&n| n <= TEXT_MAX)
        .and_then(|n| crate::usermem::read(msgp, size_of::<c_long>() + n).ok())
    {
        let (t, text) = whole.split_at(size_of::<c_long>());
        let mtype = i64::from_ne_bytes(t.try_into().map_err(|_| Errno::EFAULT)?);
        return send(c, msqid, Some(mtype), size, Some(text), msgflg);
    }
    // ksys_msgsnd: "if (get_user(mtype, &msgp->mtype)) return -EFAULT;" — first of all.
    let mtype = match crate::usermem::read(msgp, size_of::<c_long>()) {
        Ok(b) => Some(i64::from_ne_bytes(b.as_slice().try_into().map_err(|_| Errno::EFAULT)?)),
        Err(Errno::EFAULT) => None,
        Err(e) => return Err(e),
    };
    let text_at = msgp.wrapping_add(8);
    let text = match usize::try_from(size) {
        Ok(n) if n <= TEXT_MAX => match crate::usermem::read(text_at, n) {
            Ok(b) => Some(b),
            // load_msg(): "if (copy_from_user(msg + 1, src, alen)) goto out_err;" → EFAULT,
            // after the EINVAL checks: the daemon decides the order.
            Err(Errno::EFAULT) => None,
            Err(e) => return Err(e),
        },
        // Beyond a frame: the kernel's EINVAL checks (msgsz > msgmax,
        // msqid < 0, mtype < 1) still come first; a text that passes them
        // cannot be carried.
        Ok(_) => {
            let msgmax = {
                let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
                c.sysctl_read("kernel.msgmax")?.trim().parse::<i64>().map_err(|_| Errno::EIO)?
            };
            if mtype.is_some_and(|t| t >= 1) && size <= msgmax && msqid >= 0 {
                return Err(Errno::ENOMEM);
            }
            None
        }
        Err(_) => None,
    };
    send(c, msqid, mtype, size, text.as_deref(), msgflg)
}

/// The send itself: in this process when it can be decided here (the
/// client's fast path, watching a full queue a moment before sleeping),
/// else by the daemon.
fn send(
    c: &Client,
    msqid: c_int,
    mtype: Option<i64>,
    size: i64,
    text: Option<&[u8]>,
    msgflg: c_int,
) -> Result<c_int, Errno> {
    if msgflg & IPC_NOWAIT != 0 {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        return c.msgsnd_raw(msqid, mtype, size, text, msgflg).map(|_| 0);
    }
    if let (Some(t), Some(d)) = (mtype, text) {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = c.msgsnd_wait(msqid, t, d, msgflg) {
            return r.map(|()| 0);
        }
    }
    let mut sleeper = {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.sleeper().map_err(|_| Errno::ENOSYS)?
    };
    // No lock is held while the call may sleep.
    let r = sleeper.msgsnd_raw(msqid, mtype, size, text, msgflg);
    {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.give_back(sleeper);
    }
    r.map(|_| 0)
}

/// `msgrcv(msqid, msgp, msgsz, msgtyp, msgflg)` — receives a message into
/// `msgp` (`mtype`, then at most `msgsz` bytes of text), selected by
/// `msgtyp` and the flags, sleeping until one comes unless `IPC_NOWAIT`.
/// Returns the number of text bytes.
///
/// # Errors
/// msgop(2)'s: `E2BIG`, `EACCES`, `EFAULT`, `EIDRM`, `EINTR`, `EINVAL`,
/// `ENOMSG`; `ENOSYS` when no daemon answers.
///
/// # Safety
/// `msgp` must be the caller's buffer (or unmapped): it is written,
/// through checked copies.
#[no_mangle]
pub unsafe extern "C" fn msgrcv(
    msqid: c_int,
    msgp: *mut c_void,
    msgsz: size_t,
    msgtyp: c_long,
    msgflg: c_int,
) -> ssize_t {
    ret::ssize(msgrcv_in(msqid, msgp as usize as u64, msgsz, msgtyp, msgflg))
}

/// Mirrors `ipc/msg.c:ksys_msgrcv()`, `do_msgrcv()`'s `prepare_copy()` and
/// `do_msg_fill()`; the daemon does the rest.
fn msgrcv_in(msqid: c_int, msgp: u64, msgsz: size_t, msgtyp: i64, msgflg: c_int) -> Result<ssize_t, Errno> {
    let c = &*entry_client()?;
    let size = as_long(msgsz);
    // prepare_copy() reads min(msgsz, msgmax) bytes of the buffer (MSG-RCV-2).
    let readable = if msgflg & MSG_COPY != 0 && size >= 0 {
        let msgmax = {
            let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
            c.sysctl_read("kernel.msgmax")?.trim().parse::<i64>().map_err(|_| Errno::EIO)?
        };
        let n = usize::try_from(size.min(msgmax).max(0)).unwrap_or(0).min(TEXT_MAX);
        crate::usermem::read(msgp, n).is_ok()
    } else {
        true
    };
    // The common case: the caller's buffer (its pages passed a checked
    // copy) receives in place, on the queue's page.
    let mut tried = false;
    if readable && msgflg & MSG_COPY == 0 {
        let cap = u64::try_from(size)
            .ok()
            .and_then(|n| usize::try_from(n.min(uipc_core::sysv::msg_page::PAGE_QBYTES_MAX)).ok());
        // SAFETY: `msgp` is the caller's buffer (msgrcv's C contract), used within this call only.
        if let Some(buf) = cap.and_then(|n| unsafe { crate::usermem::writable(msgp, size_of::<c_long>() + n) }) {
            let (head, text) = buf.split_at_mut(size_of::<c_long>());
            let r = {
                let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
                c.msgrcv_into(msqid, size, msgtyp, msgflg, text, msgflg & IPC_NOWAIT == 0)
            };
            match r {
                Some(Ok((mtype, n))) => {
                    head.copy_from_slice(&mtype.to_ne_bytes());
                    return ssize_t::try_from(n).map_err(|_| Errno::EOVERFLOW);
                }
                Some(Err(e)) => return Err(e),
                None => tried = true,
            }
        }
    }
    let m = receive(c, msqid, size, msgtyp, msgflg, readable, tried)?;
    // do_msg_fill(): "if (put_user(msg->m_type, &msgp->mtype)) return -EFAULT;", then the text.
    // One copy, in the kernel's order: a fault at the type stops before
    // the text, one in the text leaves the type written.
    // SAFETY: `msgp` is the caller's buffer (msgrcv's C contract); the
    // copy is checked (EFAULT, never a fault).
    unsafe { crate::usermem::write_parts(msgp, &m.mtype.to_ne_bytes(), &m.data) }?;
    ssize_t::try_from(m.data.len()).map_err(|_| Errno::EOVERFLOW)
}

/// The receive itself when the caller's buffer was not taken in place
/// (`tried`: the fast path already ran and left the call to the daemon).
fn receive(
    c: &Client,
    msqid: c_int,
    size: i64,
    msgtyp: i64,
    msgflg: c_int,
    readable: bool,
    tried: bool,
) -> Result<Message, Errno> {
    if msgflg & IPC_NOWAIT != 0 {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        return c.msgrcv_raw(msqid, size, msgtyp, msgflg, readable);
    }
    if readable && !tried {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = c.msgrcv_wait(msqid, size, msgtyp, msgflg) {
            return r;
        }
    }
    let mut sleeper = {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.sleeper().map_err(|_| Errno::ENOSYS)?
    };
    // No lock is held while the call may sleep.
    let r = sleeper.msgrcv_raw(msqid, size, msgtyp, msgflg, readable);
    {
        let _gate = GATE.read().unwrap_or_else(|e| e.into_inner());
        c.give_back(sleeper);
    }
    r
}

/// `msgctl(msqid, cmd, buf)` — controls a message queue: `IPC_STAT`,
/// `MSG_STAT`, `MSG_STAT_ANY` and `IPC_INFO`/`MSG_INFO` write `buf`
/// (after the command's effect), `IPC_SET` reads it (before the lookup).
///
/// # Errors
/// msgctl(2)'s: `EACCES`, `EFAULT`, `EIDRM`, `EINVAL`, `EPERM`; `ENOSYS`
/// when no daemon answers.
///
/// # Safety
/// For the writing commands `buf` must be the caller's buffer for the
/// command's structure (or unmapped): it is written, through checked copies.
#[no_mangle]
pub unsafe extern "C" fn msgctl(msqid: c_int, cmd: c_int, buf: *mut libc::msqid_ds) -> c_int {
    let addr = buf as usize as u64;
    ret::int(with_client(|c| {
        // ksys_msgctl: "if (msqid < 0 || cmd < 0) return -EINVAL;", then an unknown cmd → EINVAL.
        let decoded = MsgCmd::decode(msqid, cmd)?;
        // IPC_SET: "if (copy_msqid_from_user(&msqid64, buf, version)) return -EFAULT;" — before the lookup.
        let set = if decoded == MsgCmd::IpcSet { read_set(addr).ok() } else { None };
        let (r, out) = c.msgctl(msqid, cmd, set)?;
        let r = c_int::try_from(r).map_err(|_| Errno::EOVERFLOW)?;
        let bytes = match out {
            MsgOut::None => return Ok(r),
            MsgOut::MsgDs(ds) => ds.to_c_bytes(),
            MsgOut::Msginfo(i) => i.to_c_bytes(),
        };
        // SAFETY: `buf` is the caller's buffer for this command's structure
        // (msgctl's C contract); the copy is checked (EFAULT, never a fault).
        unsafe { uipc_sys::map::write_at(addr, &bytes) }?;
        Ok(r)
    }))
}

/// `IPC_SET`'s fields from the caller's `struct msqid_ds`.
///
/// # Errors
/// `EFAULT` if the whole structure is not readable (the kernel copies all of it).
fn read_set(addr: u64) -> Result<MsgSetArg, Errno> {
    let bytes = crate::usermem::read(addr, size_of::<Msqid64Ds>())?;
    let ds = Msqid64Ds::from_c_bytes(&bytes).ok_or(Errno::EFAULT)?;
    let p = ds.msg_perm;
    Ok(MsgSetArg { perm: PermSet { uid: p.uid, gid: p.gid, mode: p.mode }, qbytes: ds.msg_qbytes })
}
