//! POSIX message queue requests: each maps to one core call
//! (`uipc_core::posix::mqueue`); this module adds the descriptors.
//!
//! Every queue that has a handle has a pipe (see `uipc_sys::mqfd`) whose
//! level the daemon moves, through its own description, whenever the
//! queue's readiness changes. Every open description is a *handle* the
//! daemon hands out with a fresh open description of that pipe: the
//! client's `mqd_t`, so `poll`, `select` and `epoll` on it see the queue.
//! The daemon keeps a copy of each client description; its `O_NONBLOCK`
//! is the description's, read from the copy at each call and set there by
//! `mq_setattr`, so `dup`, `fork` and `fcntl(F_GETFL)` share it as Linux's
//! do. Handles name their namespace: a descriptor
//! opened before `unshare(CLONE_NEWIPC)` keeps using the old namespace's
//! queue (MQ-FD-4).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::posix::mqueue::{Deadline, MqCreateAttr, MqDescId, NotifyHow, O_APPEND, O_NONBLOCK};
use uipc_core::wait::Outcome;
use uipc_proto::{MqInfo, Request, Response};
use uipc_sys::mqfd::{self, Level};

use crate::server::{now, Daemon};

type Reply = (Response, Option<OwnedFd>);

/// One open description handed to a client.
pub(crate) struct MqHandle {
    /// The namespace the queue lives in.
    ns: String,
    desc: MqDescId,
    /// The queue (its inode).
    queue: u64,
    /// The daemon's copy of the client's descriptor (same open file
    /// description; after a restart, a new description of the same pipe
    /// with the recorded flags).
    fd: OwnedFd,
    /// `O_APPEND` from `mq_open`'s `oflag` (kept only to describe the
    /// handle in the state directory).
    append: bool,
}

/// The pipe of a queue that has handles, and the level it is at.
pub(crate) struct MqPipe {
    /// The daemon's own description of the pipe (`O_NONBLOCK`).
    pub(crate) fd: OwnedFd,
    /// The level the pipe is at, as the daemon knows it (for a queue with
    /// a state page, only while the daemon holds the page's lock).
    pub(crate) level: Level,
    /// A durable daemon's pipe is a FIFO in the namespace's directory
    /// (`mqpipe-QUEUE`).
    _fifo: Option<DurableFifo>,
}

/// The write end of a `SIGEV_THREAD` registration's pipe: the daemon
/// writes `F` when the notification fires, `D` when the registration is
/// removed (and drops it either way).
pub(crate) struct NotifyPipe {
    write: OwnedFd,
    /// A durable daemon's pipe is a FIFO in the namespace's directory
    /// (`mqnotify-QUEUE`), which a restarted daemon opens again while the
    /// registered process holds it.
    _fifo: Option<DurableFifo>,
}

impl NotifyPipe {
    /// Tells the waiting thread `word` (`F` or `D`); a process that is
    /// gone is not the daemon's failure.
    fn tell(self, word: u8) {
        let _ = mqfd::tell(self.write.as_fd(), word);
    }
}

/// A FIFO in a namespace's state directory, removed once dropped (after
/// the journal record that stops naming it).
pub(crate) struct DurableFifo(std::path::PathBuf, uipc_sys::memfd::Unlinks);

impl Drop for DurableFifo {
    fn drop(&mut self) {
        self.1.push(std::mem::take(&mut self.0));
    }
}

/// The name of queue `queue`'s FIFO in its namespace's directory.
pub(crate) fn fifo_name(queue: u64) -> String {
    format!("mqpipe-{queue}")
}

/// The name of the FIFO of queue `queue`'s `SIGEV_THREAD` registration in
/// its namespace's directory.
pub(crate) fn notify_fifo_name(queue: u64) -> String {
    format!("mqnotify-{queue}")
}

/// A description no process holds (the shim sends it for a descriptor
/// that is not a queue's, so that the core decides the error order).
const NO_DESC: MqDescId = MqDescId(u64::MAX);

fn reply(r: Result<Response, Errno>) -> Reply {
    match r {
        Ok(resp) => (resp, None),
        Err(e) => (Response::Error(e.raw()), None),
    }
}

/// How long until absolute `CLOCK_REALTIME` time `d` (zero if past).
fn until(d: Deadline) -> Duration {
    let at = Duration::new(u64::try_from(d.sec).unwrap_or(0), u32::try_from(d.nsec).unwrap_or(0));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    at.saturating_sub(now)
}

impl Daemon {
    /// Whether `req` is a message queue request (handled by [`Daemon::mq_dispatch`]).
    pub(crate) fn is_mq(req: &Request) -> bool {
        matches!(
            req,
            Request::MqOpen { .. }
                | Request::MqClose { .. }
                | Request::MqDup { .. }
                | Request::MqUnlink { .. }
                | Request::MqSend { .. }
                | Request::MqReceive { .. }
                | Request::MqNotify { .. }
                | Request::MqGetSetAttr { .. }
                | Request::MqStatus { .. }
                | Request::MqList
                | Request::MqGrant { .. }
        )
    }

    /// Answers a message queue request of connection `token`; `None` when
    /// the caller now sleeps.
    pub(crate) fn mq_dispatch(&mut self, token: u64, req: Request) -> Option<Reply> {
        let conn = self.conn_mut(token)?;
        let cred = conn.cred.clone();
        let Some(home) = conn.ns.clone() else { return Some(reply(Err(Errno::EPERM))) };
        // The namespace the request acts in: the handle's, else the connection's.
        let handle = match &req {
            Request::MqClose { handle }
            | Request::MqDup { handle }
            | Request::MqSend { handle, .. }
            | Request::MqReceive { handle, .. }
            | Request::MqNotify { handle, .. }
            | Request::MqGetSetAttr { handle, .. }
            | Request::MqStatus { handle }
            | Request::MqGrant { handle } => Some(*handle),
            _ => None,
        };
        let (ns_name, desc, nonblock, queue) = match handle.and_then(|h| self.mq_handles.get(&h)) {
            Some(h) => (h.ns.clone(), h.desc, mqfd::nonblocking(h.fd.as_fd()).unwrap_or(false), Some(h.queue)),
            None => (home, NO_DESC, false, None),
        };
        self.touch_ns(&ns_name);
        // The queue's page (every page of the namespace for a request
        // naming no description) is adopted before and published after.
        let result = match self.mq_enter(&ns_name, queue) {
            Ok(()) => self.mq_call(token, &cred, &ns_name, handle, desc, nonblock, req),
            Err(e) => Some(reply(Err(e))),
        };
        if let Some((resp, fd)) = &result {
            // Recorded with the call's effect, before the page shows it.
            let had_fds = fd.is_some() || self.extra_fd.is_some();
            self.note_answer(token, resp, had_fds);
        }
        self.deliver(&ns_name);
        self.mq_leave();
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn mq_call(
        &mut self,
        token: u64,
        cred: &Cred,
        ns_name: &str,
        handle: Option<u64>,
        desc: MqDescId,
        nonblock: bool,
        req: Request,
    ) -> Option<Reply> {
        let t = now();
        let deadline = |d: Option<(i64, i64)>| d.map(|(sec, nsec)| Deadline { sec, nsec });
        // The namespace was removed under the connection (or the handle).
        let Some(ns) = self.namespaces.get_mut(ns_name) else { return Some(reply(Err(Errno::EBADF))) };
        match req {
            Request::MqOpen { name, oflag, mode, attr } => {
                // umask, fs ids and RLIMIT_MSGQUEUE as they are now.
                let mut cred = cred.clone();
                match crate::server::cred_now(cred.pid, cred.pid.0) {
                    Ok(fresh) => cred.posix = fresh.posix,
                    Err(e) => return Some(reply(Err(e))),
                }
                let attr = attr.map(|(maxmsg, msgsize)| MqCreateAttr { maxmsg, msgsize });
                let opened = match ns.mq_open(&cred, t, &name, oflag, mode, attr) {
                    Ok(o) => o,
                    Err(e) => return Some(reply(Err(e))),
                };
                let queue = ns.mq_desc(opened.desc).map(|d| d.queue()).unwrap_or(u64::MAX);
                // The descriptor after the lookup (Linux takes it first): a
                // daemon out of descriptors undoes the open, but a queue it
                // created stays.
                let fds = self.mq_description(ns_name, queue, oflag & O_NONBLOCK != 0, oflag & O_APPEND != 0);
                let Some(ns) = self.namespaces.get_mut(ns_name) else { return Some(reply(Err(Errno::EBADF))) };
                let (fd, client) = match fds {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = ns.mq_close(&cred, opened.desc);
                        return Some(reply(Err(e)));
                    }
                };
                let id = self.next_mq_handle;
                self.next_mq_handle += 1;
                let append = oflag & O_APPEND != 0;
                self.mq_handles.insert(id, MqHandle { ns: ns_name.to_owned(), desc: opened.desc, queue, fd, append });
                // The handle counter is recorded (a restart never reuses one).
                self.touch_procs();
                self.touch_mq_handles();
                Some((Response::MqOpened { handle: id }, Some(client)))
            }
            Request::MqClose { .. } => Some(reply(ns.mq_close(cred, desc).map(|()| Response::Value(0)))),
            Request::MqDup { .. } => Some(reply(ns.mq_dup(cred, desc).map(|()| Response::Value(0)))),
            Request::MqUnlink { name } => Some(reply(ns.mq_unlink(cred, &name).map(|()| Response::Value(0)))),
            Request::MqSend { msg, prio, deadline: d, .. } => {
                let d = deadline(d);
                match ns.mq_timedsend(cred, t, desc, nonblock, msg, prio, d) {
                    Ok(Outcome::Done(())) => Some(reply(Ok(Response::Value(0)))),
                    Ok(Outcome::Blocked(w)) => {
                        self.park(token, ns_name, w, d.map(until));
                        None
                    }
                    Err(e) => Some(reply(Err(e))),
                }
            }
            Request::MqReceive { len, deadline: d, .. } => {
                let d = deadline(d);
                match ns.mq_timedreceive(cred, t, desc, nonblock, len, d) {
                    Ok(Outcome::Done(m)) => Some(reply(Ok(Response::Msg { mtype: i64::from(m.prio), data: m.data }))),
                    Ok(Outcome::Blocked(w)) => {
                        self.park(token, ns_name, w, d.map(until));
                        None
                    }
                    Err(e) => Some(reply(Err(e))),
                }
            }
            Request::MqNotify { how, .. } => {
                // MQ-NOT-2: the sigevent is checked before the descriptor.
                let how = match how.map(|(n, s, v)| NotifyHow::decode(n, s, v)).transpose() {
                    Ok(h) => h,
                    Err(e) => return Some(reply(Err(e))),
                };
                let queue = ns.mq_desc(desc).map(|d| d.queue()).unwrap_or(u64::MAX);
                let thread = matches!(how, Some(NotifyHow::Thread { .. }));
                // A registered queue refuses the call (or an earlier check
                // does): its registration's pipe must stay as it is.
                let free = ns.mq_queue(queue).is_some_and(|q| q.notify_owner().is_none());
                let pipe = match thread && free {
                    true => match self.notify_pipe(ns_name, queue) {
                        Ok(p) => Some(p),
                        Err(e) => return Some(reply(Err(e))),
                    },
                    false => None,
                };
                let Some(ns) = self.namespaces.get_mut(ns_name) else { return Some(reply(Err(Errno::EIDRM))) };
                if let Err(e) = ns.mq_notify(cred, t, desc, how) {
                    return Some(reply(Err(e)));
                }
                match (thread, pipe) {
                    (true, Some((read, write))) => {
                        self.mq_notify_pipes.insert((ns_name.to_owned(), queue), write);
                        Some((Response::Value(0), Some(read)))
                    }
                    (true, None) => {
                        // Not reached: the model refuses a registered queue.
                        ns.mq_drop_thread_registration(queue);
                        Some(reply(Err(Errno::EBUSY)))
                    }
                    (false, _) => Some(reply(Ok(Response::Value(0)))),
                }
            }
            Request::MqGetSetAttr { new_flags, .. } => {
                let old = match ns.mq_getsetattr(cred, t, desc, nonblock, new_flags) {
                    Ok(a) => a,
                    Err(e) => return Some(reply(Err(e))),
                };
                if let (Some(f), Some(h)) = (new_flags, handle.and_then(|h| self.mq_handles.get(&h))) {
                    self.durable.handles_dirty = true;
                    // The flag is the client description's: every descriptor of it sees it.
                    if let Err(e) = uipc_sys::net::set_nonblocking(h.fd.as_fd(), f & i64::from(O_NONBLOCK) != 0) {
                        return Some(reply(Err(e)));
                    }
                }
                Some(reply(Ok(Response::MqAttr {
                    flags: old.flags,
                    maxmsg: old.maxmsg,
                    msgsize: old.msgsize,
                    curmsgs: old.curmsgs,
                })))
            }
            Request::MqStatus { .. } => Some(reply(ns.mq_read_status(cred, t, desc).map(Response::Text))),
            Request::MqGrant { .. } => Some(self.mq_grant(ns_name, cred, desc).unwrap_or_else(|e| reply(Err(e)))),
            Request::MqList => {
                let list = ns
                    .mq_list()
                    .into_iter()
                    .map(|(name, q)| {
                        let p = q.perm();
                        MqInfo {
                            name,
                            uid: p.uid.0,
                            gid: p.gid.0,
                            mode: p.mode,
                            maxmsg: q.maxmsg(),
                            msgsize: q.msgsize(),
                            curmsgs: q.curmsgs(),
                            qsize: q.qsize(),
                            mtime: q.times().1 .0,
                        }
                    })
                    .collect();
                Some(reply(Ok(Response::MqList(list))))
            }
            _ => Some(reply(Err(Errno::EINVAL))),
        }
    }

    /// A new open description of the pipe of queue `queue` (made at its
    /// first handle) with `O_NONBLOCK` and `O_APPEND` as `mq_open` gave
    /// them: the daemon's copy and the client's.
    fn mq_description(
        &mut self,
        ns_name: &str,
        queue: u64,
        nonblock: bool,
        append: bool,
    ) -> Result<(OwnedFd, OwnedFd), Errno> {
        let pipe = self.mq_pipe(ns_name, queue, false)?;
        let fd = mqfd::open_description(pipe.fd.as_fd(), nonblock, append)?;
        let client = fd.try_clone().map_err(|_| Errno::EMFILE)?;
        Ok((fd, client))
    }

    /// The pipe of queue `queue` of `ns`, made if it has none: a pipe, or
    /// for a durable daemon a FIFO in the namespace's directory — which a
    /// restarted daemon opens again (`reopen`) rather than replace.
    fn mq_pipe(&mut self, ns_name: &str, queue: u64, reopen: bool) -> Result<&MqPipe, Errno> {
        let key = (ns_name.to_owned(), queue);
        if !self.mq_pipes.contains_key(&key) {
            let pipe = match &self.state_dir {
                None => MqPipe { fd: mqfd::queue_pipe()?, level: Level::Empty, _fifo: None },
                Some(dir) => {
                    let path = dir.join("ns").join(ns_name).join(fifo_name(queue));
                    let fd = match reopen {
                        true => mqfd::open_queue_fifo(&path).or_else(|e| {
                            tracing::warn!(queue, error = ?e, "state directory: a queue's FIFO cannot be opened again; \
                                 a new one is made (descriptors from before no longer show the queue's readiness)");
                            mqfd::queue_fifo(&path)
                        })?,
                        false => mqfd::queue_fifo(&path)?,
                    };
                    let level = mqfd::level(fd.as_fd())?;
                    MqPipe { fd, level, _fifo: Some(DurableFifo(path, self.page_files.unlinks.clone())) }
                }
            };
            self.mq_pipes.insert(key.clone(), pipe);
        }
        self.mq_pipes.get(&key).ok_or(Errno::EBADF)
    }

    /// The handles as the state directory records them.
    pub(crate) fn mq_handle_entries(&self) -> Vec<crate::persist::MqHandleEntry> {
        self.mq_handles
            .iter()
            .map(|(&handle, h)| crate::persist::MqHandleEntry {
                handle,
                ns: h.ns.clone(),
                desc: h.desc.0,
                queue: h.queue,
                nonblock: mqfd::nonblocking(h.fd.as_fd()).unwrap_or(false),
                append: h.append,
            })
            .collect()
    }

    /// A restarted daemon takes the handles it had handed out back (their
    /// holders' descriptors are descriptions of the queues' FIFOs, opened
    /// again here): each whose description the restored model still has
    /// gets the same number, queue and flags.
    pub(crate) fn mq_handles_restore(&mut self, handles: Vec<crate::persist::MqHandleEntry>) {
        for e in handles {
            let known = self.namespaces.get(&e.ns).and_then(|ns| ns.mq_desc(MqDescId(e.desc))).map(|d| d.queue());
            if known != Some(e.queue) {
                continue;
            }
            let fd = self
                .mq_pipe(&e.ns, e.queue, true)
                .and_then(|p| mqfd::open_description(p.fd.as_fd(), e.nonblock, e.append));
            match fd {
                Ok(fd) => {
                    let h = MqHandle { ns: e.ns, desc: MqDescId(e.desc), queue: e.queue, fd, append: e.append };
                    self.mq_handles.insert(e.handle, h);
                }
                Err(err) => {
                    tracing::warn!(handle = e.handle, queue = e.queue, error = ?err, "state directory: a queue descriptor's pipe cannot be opened again; the descriptor answers EBADF");
                }
            }
        }
    }

    /// The pipe of a new `SIGEV_THREAD` registration on queue `queue` of
    /// `ns`: (the registered process's end, the daemon's). A plain pipe,
    /// whose end of file tells the process the registration is gone, or
    /// for a durable daemon a FIFO in the namespace's directory, which
    /// outlives the daemon ([`mqfd::notify_fifo`]).
    fn notify_pipe(&self, ns_name: &str, queue: u64) -> Result<(OwnedFd, NotifyPipe), Errno> {
        match &self.state_dir {
            None => mqfd::pipe().map(|(read, write)| (read, NotifyPipe { write, _fifo: None })),
            Some(dir) => {
                let path = dir.join("ns").join(ns_name).join(notify_fifo_name(queue));
                let (process, write) = mqfd::notify_fifo(&path)?;
                let fifo = DurableFifo(path, self.page_files.unlinks.clone());
                Ok((process, NotifyPipe { write, _fifo: Some(fifo) }))
            }
        }
    }

    /// A restarted daemon takes back the `SIGEV_THREAD` registrations of
    /// namespace `ns`: each whose FIFO a process still holds is told as
    /// before; one whose process is gone (or whose FIFO is) is removed,
    /// as the process's exit would have.
    pub(crate) fn mq_notify_restore(&mut self, ns_name: &str) {
        let (Some(dir), Some(ns)) = (&self.state_dir, self.namespaces.get_mut(ns_name)) else { return };
        for queue in ns.mq_thread_registrations() {
            let path = dir.join("ns").join(ns_name).join(notify_fifo_name(queue));
            match mqfd::open_notify_fifo(&path) {
                Ok(write) => {
                    let fifo = DurableFifo(path, self.page_files.unlinks.clone());
                    self.mq_notify_pipes.insert((ns_name.to_owned(), queue), NotifyPipe { write, _fifo: Some(fifo) });
                }
                Err(e) => {
                    tracing::info!(queue, error = ?e, "state directory: a SIGEV_THREAD registration whose process is gone is removed");
                    ns.mq_drop_thread_registration(queue);
                    self.page_files.unlinks.push(path);
                }
            }
        }
    }

    /// After anything that may have changed namespace `ns`'s queues:
    /// fired notifications are sent, dropped registrations end their
    /// `SIGEV_THREAD` waits, descriptions nobody holds are dropped, queues
    /// no handle names lose their pipe, and every pipe's level follows its
    /// queue (one move per queue whose readiness changed).
    pub(crate) fn mq_sync(&mut self, ns_name: &str) {
        let Some(ns) = self.namespaces.get_mut(ns_name) else {
            self.touch_mq_handles();
            self.mq_handles.retain(|_, h| h.ns != ns_name);
            self.mq_notify_pipes.retain(|(n, _), _| n != ns_name);
            self.mq_pipes.retain(|(n, _), _| n != ns_name);
            return;
        };
        for r in ns.mq_take_removed() {
            if let Some(p) = self.mq_notify_pipes.remove(&(ns_name.to_owned(), r.queue)) {
                p.tell(b'D');
            }
        }
        for n in ns.mq_take_notifications() {
            match n.how {
                NotifyHow::Signal { signo, value } => {
                    if let Some(p) = self.procs.get(&n.owner.0) {
                        // A process that is gone or refuses us is not the sender's failure.
                        let _ = mqfd::send_mesgq_signal(p.pidfd.as_fd(), signo, n.sender.0, n.sender_uid.0, value);
                    }
                }
                NotifyHow::Thread { .. } => {
                    if let Some(p) = self.mq_notify_pipes.remove(&(ns_name.to_owned(), n.queue)) {
                        p.tell(b'F');
                    }
                }
                NotifyHow::None => {}
            }
        }
        let Some(ns) = self.namespaces.get(ns_name) else { return };
        let before = self.mq_handles.len();
        self.mq_handles.retain(|_, h| h.ns != ns_name || ns.mq_desc(h.desc).is_some());
        if self.mq_handles.len() != before {
            self.durable.handles_dirty = true;
        }
        let held: std::collections::BTreeSet<u64> =
            self.mq_handles.values().filter(|h| h.ns == ns_name).map(|h| h.queue).collect();
        self.mq_pipes.retain(|(n, q), _| n != ns_name || held.contains(q));
        for ((_, queue), p) in self.mq_pipes.iter_mut().filter(|((n, _), _)| n == ns_name) {
            // A queue whose page the event does not hold: its level is the
            // fast paths' (and the model may be behind the page).
            if self.mq_pages.owns_level(ns_name, *queue) {
                continue;
            }
            let Some(q) = ns.mq_queue(*queue) else { continue };
            let (r, w) = q.readiness();
            crate::mq_pages::follow(p, Level::of(r, w));
        }
    }
}
