//! POSIX message queues through the daemon: `mq_open` gives a descriptor
//! (an open description of the queue's pipe, whose readiness is the
//! queue's: `uipc_sys::mqfd`) and a
//! handle naming the open description in later calls.

use std::os::fd::OwnedFd;

use uipc_abi::Errno;
use uipc_proto::{MqInfo, Request, Response};

use crate::{unexpected, Client, Sleeper};

/// An open description of a queue: the daemon's name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MqHandle(pub u64);

/// `struct mq_attr` as `mq_getattr` fills it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MqAttrs {
    /// `mq_flags` (0 or `O_NONBLOCK`).
    pub flags: i64,
    /// `mq_maxmsg`.
    pub maxmsg: i64,
    /// `mq_msgsize`.
    pub msgsize: i64,
    /// `mq_curmsgs`.
    pub curmsgs: i64,
}

fn value(r: Response) -> Result<(), Errno> {
    match r {
        Response::Value(_) => Ok(()),
        r => Err(unexpected(&r)),
    }
}

impl Client {
    /// `mq_open(name, oflag, mode, attr)` — opens or creates a queue. `name`
    /// is the kernel's (without glibc's leading `/`). Returns the handle
    /// and the descriptor (close-on-exec; readable iff the queue holds a
    /// message, writable iff it is not full; `O_NONBLOCK` as the
    /// description's).
    ///
    /// # Errors
    /// mq_open(3)'s: `ENOENT`, `EACCES`, `EEXIST`, `EINVAL`, `ENAMETOOLONG`,
    /// `ENOSPC`, `EMFILE`.
    pub fn mq_open(
        &self,
        name: &[u8],
        oflag: i32,
        mode: u32,
        attr: Option<(i64, i64)>,
    ) -> Result<(MqHandle, OwnedFd), Errno> {
        match self.call_with_fd(&Request::MqOpen { name: name.to_vec(), oflag, mode, attr })? {
            (Response::MqOpened { handle }, Some(fd)) => Ok((MqHandle(handle), fd)),
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// Tells the daemon that one descriptor of `handle` was closed (the
    /// caller closes the descriptor itself). A close by the registered
    /// process drops its notification.
    ///
    /// # Errors
    /// `EBADF`.
    pub fn mq_close(&self, handle: MqHandle) -> Result<(), Errno> {
        self.mq_forget(handle);
        value(self.call(&Request::MqClose { handle: handle.0 })?)
    }

    /// Tells the daemon that the caller made one more descriptor of
    /// `handle` (`dup`, `dup2`, `fcntl(F_DUPFD)`).
    ///
    /// # Errors
    /// `EBADF`.
    pub fn mq_dup(&self, handle: MqHandle) -> Result<(), Errno> {
        value(self.call(&Request::MqDup { handle: handle.0 })?)
    }

    /// `mq_unlink(name)` (the kernel's name, without `/`).
    ///
    /// # Errors
    /// `ENOENT`, `EACCES`, `ENAMETOOLONG`, `EPERM` (glibc reports `EACCES`).
    pub fn mq_unlink(&self, name: &[u8]) -> Result<(), Errno> {
        value(self.call(&Request::MqUnlink { name: name.to_vec() })?)
    }

    /// `mq_notify(handle, sevp)`: `None` removes the caller's registration;
    /// `Some((sigev_notify, sigev_signo, sigev_value))` registers. For
    /// `SIGEV_THREAD` the result carries a pipe's read end: one byte when
    /// the notification fires, end of file when it is dropped.
    ///
    /// # Errors
    /// `EINVAL`, `EBADF`, `EBUSY`.
    pub fn mq_notify(&self, handle: MqHandle, how: Option<(i32, i32, u64)>) -> Result<Option<OwnedFd>, Errno> {
        match self.call_with_fd(&Request::MqNotify { handle: handle.0, how })? {
            (Response::Value(_), fd) => Ok(fd),
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// `mq_getsetattr(handle, new, old)`: the attributes before the change;
    /// `new_flags` sets the description's `O_NONBLOCK`.
    ///
    /// # Errors
    /// `EINVAL`, `EBADF`.
    pub fn mq_getsetattr(&self, handle: MqHandle, new_flags: Option<i64>) -> Result<MqAttrs, Errno> {
        match self.call(&Request::MqGetSetAttr { handle: handle.0, new_flags })? {
            Response::MqAttr { flags, maxmsg, msgsize, curmsgs } => Ok(MqAttrs { flags, maxmsg, msgsize, curmsgs }),
            r => Err(unexpected(&r)),
        }
    }

    /// The queue's status line, as `read()` of its descriptor gives it.
    ///
    /// # Errors
    /// `EBADF`.
    pub fn mq_status(&self, handle: MqHandle) -> Result<String, Errno> {
        match self.call(&Request::MqStatus { handle: handle.0 })? {
            Response::Text(t) => Ok(t),
            r => Err(unexpected(&r)),
        }
    }

    /// The queues of this client's namespace.
    ///
    /// # Errors
    /// Transport errors.
    pub fn mq_list(&self) -> Result<Vec<MqInfo>, Errno> {
        match self.call(&Request::MqList)? {
            Response::MqList(l) => Ok(l),
            r => Err(unexpected(&r)),
        }
    }
}

impl Sleeper {
    /// `mq_timedsend(handle, msg, prio, deadline)`; may sleep while the
    /// queue is full. A signal handler without `SA_RESTART` ends the wait
    /// with `EINTR` (unless the message went meanwhile); with it, the wait
    /// goes on, as Linux restarts the call.
    ///
    /// # Errors
    /// mq_send(3)'s: `EINVAL`, `EBADF`, `EMSGSIZE`, `EAGAIN`, `ETIMEDOUT`, `EINTR`.
    pub fn mq_send(
        &mut self,
        handle: MqHandle,
        msg: &[u8],
        prio: u32,
        deadline: Option<(i64, i64)>,
    ) -> Result<(), Errno> {
        let req = Request::MqSend { handle: handle.0, msg: msg.to_vec(), prio, deadline };
        match self.restartable(&req)? {
            Response::Value(_) => Ok(()),
            r => Err(unexpected(&r)),
        }
    }

    /// `mq_timedreceive(handle, buf, len, prio, deadline)`: the message and
    /// its priority; may sleep while the queue is empty, as
    /// [`mq_send`](Self::mq_send).
    ///
    /// # Errors
    /// mq_receive(3)'s: `EINVAL`, `EBADF`, `EMSGSIZE`, `EAGAIN`, `ETIMEDOUT`, `EINTR`.
    pub fn mq_receive(
        &mut self,
        handle: MqHandle,
        len: u64,
        deadline: Option<(i64, i64)>,
    ) -> Result<(Vec<u8>, u32), Errno> {
        match self.restartable(&Request::MqReceive { handle: handle.0, len, deadline })? {
            // The priority travels as the message's type.
            Response::Msg { mtype, data } => Ok((data, u32::try_from(mtype).map_err(|_| Errno::EPROTO)?)),
            r => Err(unexpected(&r)),
        }
    }

    fn restartable(&mut self, req: &Request) -> Result<Response, Errno> {
        let resp = self.conn.call_restartable(req);
        self.healthy = resp.is_ok();
        if resp.is_err() && self.conn.is_broken() {
            // As Sleeper::call_sleeping: the daemon went away.
            return Err(Errno::EINTR);
        }
        match resp?.0 {
            Response::Error(e) => Err(Errno::from_raw(e)),
            r => Ok(r),
        }
    }
}
