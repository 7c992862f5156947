//! One request → one core call (STYLE rule 12).

use std::os::fd::OwnedFd;

use uipc_abi::pshm::{O_APPEND, O_NONBLOCK, O_RDWR};
use uipc_abi::Errno;
use uipc_core::cred::Pid;
use uipc_core::perm::PermUpdate;
use uipc_core::posix::shm::{PshmKind, PshmOpened};
use uipc_core::sysv::msg::{MsgCmd, MsgCtlOut, MsgSet, MsgText};
use uipc_core::sysv::sem::{SemArg, SemCmd, SemCtlOut, Timeout};
use uipc_core::sysv::shm::{ShmCmd, ShmCtlOut};
use uipc_core::wait::{Interrupt, Outcome};
use uipc_proto::{CtlOut, MsgOut, PshmInfo, Request, Response, SemCtlArg, SemOut, VERSION};
use uipc_sys::{map, proc};

use crate::server::{now, Daemon};
use crate::{msg_pages, sem_pages};

type Reply = (Response, Option<OwnedFd>);

fn value(r: Result<i64, Errno>) -> Reply {
    match r {
        Ok(v) => (Response::Value(v), None),
        Err(e) => (Response::Error(e.raw()), None),
    }
}

fn error(e: Errno) -> Reply {
    (Response::Error(e.raw()), None)
}

/// The descriptor a POSIX shm open hands out: a new open file description
/// with `flags` — except for the open that created the object read-write
/// with no status flags, which gets the region's own (read-write, and
/// nobody else's yet: the daemon itself only uses offset-free calls on it),
/// saving the reopen through `/proc`.
fn descriptor(opened: &PshmOpened<uipc_sys::memfd::SharedRegion>, flags: u32) -> Result<OwnedFd, Errno> {
    if opened.created && flags == O_RDWR.cast_unsigned() {
        return opened.region.fd().try_clone_to_owned().map_err(|_| Errno::EMFILE);
    }
    opened.region.reopen(flags)
}

impl Daemon {
    /// Answers one request of connection `token`; `None` when the caller
    /// now sleeps (its answer comes when it finishes).
    ///
    /// This is also the one place that decides what goes to the audit log
    /// (see [`crate::audit`]): each request is classified before the call
    /// and recorded with its answer.
    pub(crate) fn dispatch(&mut self, token: u64, req: Request) -> Option<Reply> {
        let conn = self.conn_mut(token)?;
        let ns = conn.ns.clone();
        let who = (conn.cred.pid.0, conn.cred.euid.0);
        let audit = self.audit.is_some().then(|| (self.creation_marker(ns.as_deref()), crate::audit::subject(&req)));
        // The sets the request concerns: their pages are adopted before
        // and published after (the data plane).
        let (scope, reconcile) = (sem_pages::scope(&req), sem_pages::reconciles(&req));
        let sem_ns = ns.clone().filter(|_| reconcile);
        let rmid = matches!(req, Request::SemCtl { cmd, .. } if cmd & 0xff == uipc_abi::IPC_RMID);
        let refused = sem_ns.as_deref().and_then(|n| self.sem_enter(n, scope).err()).filter(|_| !rmid);
        // The same for message queues' pages.
        let msg_scope = msg_pages::scope(&req);
        let msg_ns = ns.clone().filter(|_| msg_scope != sem_pages::Scope::Nothing);
        let msg_rmid = matches!(req, Request::MsgCtl { cmd, .. } if cmd & 0xff == uipc_abi::IPC_RMID);
        let msg_refused = msg_ns.as_deref().and_then(|n| self.msg_enter(n, msg_scope).err()).filter(|_| !msg_rmid);
        let refused = refused.or(msg_refused);
        // And POSIX queues' pages, for a request that may touch any queue
        // of the namespace (an exec, a cancelled sleeper…; requests naming
        // a description enter their queue's in `mq_dispatch`).
        let mq_ns = ns.clone().filter(|_| {
            !Daemon::is_mq(&req)
                && msg_scope == sem_pages::Scope::All
                && sem_pages::scope(&req) == sem_pages::Scope::All
        });
        if let Some(n) = &mq_ns {
            let _ = self.mq_enter(n, None);
        }
        // And segments' attach pages, in every namespace the caller may
        // hold mappings in.
        let mut shm_scope = crate::shm_pages::scope(&req);
        if let (Some(crate::shm_pages::Scope::Process(also)), Request::ShmAtDone { token: tok, .. }) =
            (&mut shm_scope, &req)
        {
            // The attach in progress holds its segment.
            if let Some(p) = self.conn_mut(token).and_then(|c| c.pending.get(tok)) {
                also.push(p.id.0);
            }
        }
        let shm_spaces: Vec<String> = match (&ns, &shm_scope) {
            (Some(n), Some(_)) => self.spaces_of(Pid(who.0), n.clone()).into_iter().collect(),
            _ => Vec::new(),
        };
        if let Some(scope) = &shm_scope {
            for n in &shm_spaces {
                self.shm_enter(n, scope, Pid(who.0));
            }
        }
        let granted = crate::status::granted_set(&req);
        // What the request may change is recorded before its reply leaves
        // (a durable daemon's journal: `durable`).
        if let Some(n) = &ns {
            self.touch_ns(n);
        }
        self.touch_process(who.0);
        if matches!(
            req,
            Request::Hello { .. }
                | Request::Join { .. }
                | Request::Forked { .. }
                | Request::NsCreate { .. }
                | Request::NsRemove { .. }
                | Request::Unshare { .. }
        ) {
            self.touch_procs();
        }
        let reply = match req {
            _ if refused.is_some() => Some(error(refused.unwrap_or(Errno::EIDRM))),
            Request::SemOp { id, nsops, sops, timeout } => self.semop(token, id, nsops, sops, timeout),
            Request::Cancel => Some(self.cancel(token)),
            Request::MsgSnd { id, mtype, msgsz, text, flags } => self.msgsnd(token, id, mtype, msgsz, text, flags),
            Request::MsgRcv { id, msgsz, msgtyp, flags, readable } => {
                self.msgrcv(token, id, msgsz, msgtyp, flags, readable)
            }
            req if Daemon::is_mq(&req) => self.mq_dispatch(token, req),
            req => Some(self.dispatch_inner(token, req).unwrap_or_else(error)),
        };
        // Kept aside while other callers' answers are queued below: it
        // travels with this reply.
        let extra_fd = self.extra_fd.take();
        if let Some((resp, fd)) = &reply {
            // Recorded with the call's effect, before any page shows it.
            self.note_answer(token, resp, fd.is_some() || extra_fd.is_some());
        }
        if let (Some((before, subject)), Some((resp, _))) = (audit, &reply) {
            // A get never removes and Hello never forgets: a change is a creation.
            let created = self.creation_marker(ns.as_deref()) != before;
            self.audit_reply(who, ns.as_deref(), subject, created, resp);
        }
        // Whatever the call changed may have finished sleepers.
        if let Some(ns) = &ns {
            self.deliver(ns);
        }
        if let Some(n) = sem_ns {
            self.sem_leave(&n, reconcile);
        }
        if let Some(n) = msg_ns {
            self.msg_leave(&n);
        }
        if mq_ns.is_some() {
            self.mq_leave();
        }
        for n in &shm_spaces {
            self.shm_leave(n);
        }
        // Before the reply leaves: whatever the call changed is shown.
        if let Some((resp, _)) = &reply {
            self.status_note(ns.as_deref(), granted, resp);
        }
        self.status_publish_for(who.0, ns.as_deref());
        self.extra_fd = extra_fd.filter(|_| reply.is_some());
        reply
    }

    /// What changes when a request creates something: the objects of the
    /// connection's namespace and the number of namespaces.
    fn creation_marker(&self, ns: Option<&str>) -> (u32, u32, u32, usize, u64) {
        let space = ns.and_then(|n| self.namespaces.get(n));
        let counts = space.map(|n| n.object_counts()).unwrap_or_default();
        (counts.shm, counts.sem, counts.msg, self.namespaces.len(), space.map_or(0, |n| n.pshm_created()))
    }

    /// `msgsnd`: done at once, or the caller is parked.
    fn msgsnd(
        &mut self,
        token: u64,
        id: i32,
        mtype: Option<i64>,
        msgsz: i64,
        text: Option<Vec<u8>>,
        flags: i32,
    ) -> Option<Reply> {
        let conn = self.conn_mut(token)?;
        let cred = conn.cred.clone();
        let Some(ns_name) = conn.ns.clone() else { return Some(error(Errno::EPERM)) };
        let Some(ns) = self.namespaces.get_mut(&ns_name) else { return Some(error(Errno::EIDRM)) };
        let text = match (mtype, text.as_deref()) {
            (None, _) => MsgText::Unreadable,
            (Some(t), None) => MsgText::TypeOnly(t),
            (Some(t), Some(d)) => MsgText::Read(t, d),
        };
        match ns.msgsnd(&cred, now(), id, text, msgsz, flags) {
            Ok(Outcome::Done(v)) => Some(value(Ok(v))),
            Err(e) => Some(error(e)),
            Ok(Outcome::Blocked(w)) => {
                self.park(token, &ns_name, w, None);
                None
            }
        }
    }

    /// `msgrcv`: a message at once, or the caller is parked.
    fn msgrcv(&mut self, token: u64, id: i32, msgsz: i64, msgtyp: i64, flags: i32, readable: bool) -> Option<Reply> {
        let conn = self.conn_mut(token)?;
        let cred = conn.cred.clone();
        let Some(ns_name) = conn.ns.clone() else { return Some(error(Errno::EPERM)) };
        let Some(ns) = self.namespaces.get_mut(&ns_name) else { return Some(error(Errno::EIDRM)) };
        match ns.msgrcv(&cred, now(), id, msgsz, msgtyp, flags, readable) {
            Ok(Outcome::Done(m)) => Some((Response::Msg { mtype: m.mtype, data: m.data }, None)),
            Err(e) => Some(error(e)),
            Ok(Outcome::Blocked(w)) => {
                self.park(token, &ns_name, w, None);
                None
            }
        }
    }

    /// `semtimedop`: done at once, or the caller is parked.
    fn semop(
        &mut self,
        token: u64,
        id: i32,
        nsops: u32,
        sops: Option<Vec<(u16, i16, i16)>>,
        timeout: Option<(i64, i64)>,
    ) -> Option<Reply> {
        let conn = self.conn_mut(token)?;
        let cred = conn.cred.clone();
        let Some(ns_name) = conn.ns.clone() else { return Some(error(Errno::EPERM)) };
        let sops: Option<Vec<uipc_abi::Sembuf>> = sops
            .map(|v| v.into_iter().map(|(n, o, f)| uipc_abi::Sembuf { sem_num: n, sem_op: o, sem_flg: f }).collect());
        let nsops = usize::try_from(nsops).unwrap_or(usize::MAX);
        // The namespace was removed under the connection.
        let Some(ns) = self.namespaces.get_mut(&ns_name) else { return Some(error(Errno::EIDRM)) };
        let limit = timeout.map(|(sec, nsec)| Timeout { sec, nsec });
        match ns.semtimedop(&cred, now(), id, nsops, sops.as_deref(), limit) {
            Ok(Outcome::Done(v)) => Some(value(Ok(v))),
            Err(e) => Some(error(e)),
            Ok(Outcome::Blocked(w)) => {
                let wait = timeout.map(|(sec, nsec)| {
                    std::time::Duration::new(u64::try_from(sec).unwrap_or(0), u32::try_from(nsec).unwrap_or(0))
                });
                self.park(token, &ns_name, w, wait);
                None
            }
        }
    }

    /// The sleeping caller was interrupted: its semop ends with EINTR unless
    /// it already finished (then its real answer was sent first).
    fn cancel(&mut self, token: u64) -> Reply {
        let Some(conn) = self.conn_mut(token) else { return error(Errno::EIO) };
        if let (Some(w), Some(ns_name)) = (conn.parked, conn.ns.clone()) {
            let result = self.namespaces.get_mut(&ns_name).and_then(|ns| ns.interrupt(w, Interrupt::Signal));
            if let Some(r) = result {
                self.answer_parked(&ns_name, w, r, None);
            }
        }
        value(Ok(0))
    }

    /// The namespaces process `pid` may hold mappings in: `home` (its
    /// connection's) and those it left by `unshare(CLONE_NEWIPC)`.
    fn spaces_of(&self, pid: Pid, home: String) -> std::collections::BTreeSet<String> {
        let mut spaces = self.procs.get(&pid.0).map(|p| p.namespaces.clone()).unwrap_or_default();
        spaces.insert(home);
        spaces
    }

    fn dispatch_inner(&mut self, token: u64, req: Request) -> Result<Reply, Errno> {
        let conn = self.conn_mut(token).ok_or(Errno::EIO)?;
        let cred = conn.cred.clone();
        let joined = conn.ns.is_some();
        // Namespace management needs no session: allowed before Hello.
        match req {
            Request::NsCreate { name, mode, sysctls, ephemeral } => {
                let name = self.ns_create(&cred, &name, mode, &sysctls, ephemeral)?;
                return Ok((Response::Text(name), None));
            }
            Request::NsList => return Ok((Response::Namespaces(self.ns_list(&cred)), None)),
            Request::NsShow { name } => return Ok((Response::Namespace(self.ns_show(&cred, &name)?), None)),
            Request::NsRemove { name } => {
                self.ns_remove(&cred, &name)?;
                return Ok(value(Ok(0)));
            }
            Request::Join { .. } if joined => return Err(Errno::EINVAL),
            _ => {}
        }
        let Some(ns_name) = self.conn_mut(token).and_then(|c| c.ns.clone()) else {
            // Step 2 of the protocol: nothing before Hello.
            let (version, namespace, strict) = match req {
                Request::Hello { version, namespace } => (version, namespace, false),
                Request::Join { version, namespace } => (version, namespace, true),
                _ => return Err(Errno::EPERM),
            };
            if version != VERSION {
                return Err(Errno::EPROTO);
            }
            if !uipc_proto::valid_namespace(&namespace) {
                return Err(Errno::EINVAL);
            }
            if strict {
                self.join_existing(&cred, &namespace)?;
            } else {
                self.join(&cred, &namespace)?;
            }
            if let Some(p) = self.procs.get_mut(&cred.pid.0) {
                p.namespaces.insert(namespace.clone());
            }
            if let Some(c) = self.conn_mut(token) {
                c.ns = Some(namespace);
            }
            return Ok((Response::Welcome { version: VERSION }, None));
        };
        let t = now();
        if let Request::Recheck { tid } = req {
            // The process that connected is the one asking (its pidfd keeps
            // the pid from being reused while the connection lives); `tid`
            // must be one of its threads (any of them: a process is one
            // trust domain, its threads share its memory).
            let fresh = crate::server::cred_now(cred.pid, tid)?;
            if let Some(c) = self.conn_mut(token) {
                c.cred = fresh;
            }
            return Ok(value(Ok(0)));
        }
        if let Request::NsOf { pid } = req {
            // setns(2): "EPERM The calling thread did not have the required
            // capability (CAP_SYS_ADMIN)" — ipcns_install() asks for it.
            if !cred.capable(uipc_core::cred::Cap::SYS_ADMIN) {
                return Err(Errno::EPERM);
            }
            let name = self.namespace_of(pid).ok_or(Errno::EINVAL)?;
            return Ok((Response::Text(name), None));
        }
        if let Request::Sync = req {
            self.reap();
            return Ok(value(Ok(0)));
        }
        if let Request::Forked { child } = req {
            // The kernel says whose child it is, not the client.
            if proc::proc_parent(child)? != cred.pid.0 {
                return Err(Errno::EPERM);
            }
            // The namespace was removed under the connection.
            if !self.namespaces.contains_key(&ns_name) {
                return Err(Errno::EIDRM);
            }
            self.track_process(child)?;
            // The child inherits the parent's mappings in every namespace
            // it holds some in: its own, and those it left by unshare.
            for name in self.spaces_of(cred.pid, ns_name) {
                let Some(space) = self.namespaces.get_mut(&name) else { continue };
                space.fork(&cred, t, Pid(child));
                if let Some(p) = self.procs.get_mut(&child) {
                    p.namespaces.insert(name);
                }
            }
            return Ok(value(Ok(0)));
        }
        if let Request::Exec = req {
            if !self.namespaces.contains_key(&ns_name) {
                return Err(Errno::EIDRM);
            }
            // Every mapping goes, in each namespace the process holds some in.
            for name in self.spaces_of(cred.pid, ns_name) {
                if let Some(space) = self.namespaces.get_mut(&name) {
                    space.exec(cred.pid, t);
                }
            }
            return Ok(value(Ok(0)));
        }
        // shmdt and munmap act on the caller's address space, not on its
        // namespace: a mapping made before unshare(CLONE_NEWIPC) is found
        // in the namespace it was made in.
        if let Request::ShmDt { addr } = req {
            let home = ns_name.clone();
            let owner = self
                .spaces_of(cred.pid, ns_name)
                .into_iter()
                .find(|n| {
                    self.namespaces.get(n).and_then(|ns| ns.mm(cred.pid)).is_some_and(|mm| mm.find(addr).is_some())
                })
                .unwrap_or(home);
            let ns = self.namespaces.get_mut(&owner).ok_or(Errno::EIDRM)?;
            return Ok(match ns.shmdt(&cred, t, addr) {
                Ok(ranges) => (Response::Unmap(ranges), None),
                Err(e) => error(e),
            });
        }
        if let Request::Munmap { addr, len } = req {
            let mut result = Ok(());
            for name in self.spaces_of(cred.pid, ns_name.clone()) {
                if let Some(space) = self.namespaces.get_mut(&name) {
                    let r = space.munmap(&cred, t, addr, len);
                    if name == ns_name {
                        result = r;
                    }
                }
            }
            return Ok(value(result.map(|()| 0)));
        }
        if let Request::Mprotect { addr, len, prot } = req {
            // mm/mprotect.c:do_mprotect_pkey() returns 0 for an empty range
            // before it looks at prot; otherwise "EINVAL prot is invalid"
            // (mprotect(2)) — decoded once, here.
            let prot = match uipc_core::mm::Prot::from_bits(prot) {
                None if len == 0 => return Ok(value(Ok(0))),
                p => p.ok_or(Errno::EINVAL)?,
            };
            let mut result = Ok(());
            for name in self.spaces_of(cred.pid, ns_name.clone()) {
                if let Some(space) = self.namespaces.get_mut(&name) {
                    let r = space.mprotect(&cred, t, addr, len, prot);
                    result = result.and(r);
                }
            }
            return Ok(value(result.map(|()| 0)));
        }
        // The namespace was removed under the connection.
        let ns = self.namespaces.get_mut(&ns_name).ok_or(Errno::EIDRM)?;
        Ok(match req {
            Request::Hello { .. } | Request::Join { .. } => error(Errno::EINVAL),
            Request::NsCreate { .. } | Request::NsList | Request::NsShow { .. } | Request::NsRemove { .. } => {
                error(Errno::EINVAL)
            }
            Request::Sync
            | Request::Forked { .. }
            | Request::Exec
            | Request::Recheck { .. }
            | Request::NsOf { .. }
            | Request::ShmDt { .. }
            | Request::Munmap { .. }
            | Request::Mprotect { .. }
            | Request::SemOp { .. }
            | Request::MsgSnd { .. }
            | Request::MsgRcv { .. }
            | Request::Cancel
            | Request::Once { .. } => error(Errno::EINVAL),
            Request::MsgGet { key, flags } => value(ns.msgget(&cred, t, key, flags).map(|id| i64::from(id.0))),
            Request::MsgCtl { id, cmd, set } => {
                let cmd = MsgCmd::decode(id, cmd)?;
                let set = set.map(|s| MsgSet {
                    perm: PermUpdate { uid: s.perm.uid, gid: s.perm.gid, mode: s.perm.mode },
                    qbytes: s.qbytes,
                });
                let (ret, out) = ns.msgctl(&cred, t, id, cmd, set)?;
                let out = match out {
                    MsgCtlOut::None => MsgOut::None,
                    MsgCtlOut::Ds(d) => MsgOut::MsgDs(d),
                    MsgCtlOut::Info(i) => MsgOut::Msginfo(i),
                };
                (Response::MsgCtl { ret, out }, None)
            }
            Request::MqOpen { .. }
            | Request::MqClose { .. }
            | Request::MqDup { .. }
            | Request::MqUnlink { .. }
            | Request::MqSend { .. }
            | Request::MqReceive { .. }
            | Request::MqNotify { .. }
            | Request::MqGetSetAttr { .. }
            | Request::MqStatus { .. }
            | Request::MqGrant { .. }
            | Request::MqList => error(Errno::EINVAL),
            Request::SemGrant { id } => {
                let ns_name = ns_name.clone();
                return self.sem_grant(&ns_name, &cred, id);
            }
            Request::MsgGrant { id } => {
                let ns_name = ns_name.clone();
                return self.msg_grant(&ns_name, &cred, id);
            }
            Request::ShmStat { id, cmd, region } => {
                let ns_name = ns_name.clone();
                return self.shm_stat_grant(&ns_name, &cred, id, cmd, region);
            }
            Request::Stat { kind, id, cmd, region } => {
                let ns_name = ns_name.clone();
                return match kind {
                    uipc_proto::StatusKind::Sem => self.sem_stat_grant(&ns_name, &cred, id, cmd, region),
                    uipc_proto::StatusKind::Msg => self.msg_stat_grant(&ns_name, &cred, id, cmd, region),
                    uipc_proto::StatusKind::Shm => Err(Errno::EINVAL),
                };
            }
            Request::StatusRegion { kind } => {
                let ns_name = ns_name.clone();
                return self.status_region(&ns_name, kind);
            }
            Request::ShmAttachGrant { id, flags, at } => {
                if flags & uipc_abi::SHM_REMAP != 0 {
                    return Err(Errno::EINVAL);
                }
                let pending = ns.shmat_prepare(&cred, id, 0, flags)?;
                let at = ns.shmat_commit(&cred, t, pending, at)?;
                let ns_name = ns_name.clone();
                return Ok(self.shm_grant(&ns_name, &cred, id, i64::try_from(at).unwrap_or(0)));
            }
            Request::ShmGetGrant { key, size, flags } => {
                let before = ns.shm_in_use();
                let id = ns.shmget(&cred, t, key, size, flags)?;
                if ns.shm_in_use() == before {
                    return Ok(value(Ok(i64::from(id.0))));
                }
                let memory = ns.shm_segment(id.0).map(|s| s.region().fd().try_clone_to_owned());
                let Some(Ok(memory)) = memory else { return Ok(value(Ok(i64::from(id.0)))) };
                let ns_name = ns_name.clone();
                let (resp, page) = self.shm_grant(&ns_name, &cred, id.0, i64::from(id.0));
                // The memory first, then the page (if granted).
                return Ok(match page {
                    Some(page) => {
                        self.extra_fd = Some(page);
                        (resp, Some(memory))
                    }
                    None => (resp, Some(memory)),
                });
            }
            Request::ShmRecord { attaches } => {
                let mut n = 0;
                for (id, at, flags) in attaches {
                    if ns.shm_record_attach(&cred, id, at, flags).is_ok() {
                        n += 1;
                    }
                }
                value(Ok(n))
            }
            Request::ShmAttach { id, flags, at } => {
                // ShmAt and ShmAtDone in one: the checks, then the mapping
                // the client made is recorded.
                if flags & uipc_abi::SHM_REMAP != 0 {
                    return Err(Errno::EINVAL);
                }
                let pending = ns.shmat_prepare(&cred, id, 0, flags)?;
                value(ns.shmat_commit(&cred, t, pending, at).map(|a| i64::try_from(a).unwrap_or(0)))
            }
            Request::SemGet { key, nsems, flags } => {
                value(ns.semget(&cred, t, key, nsems, flags).map(|id| i64::from(id.0)))
            }
            Request::SemCtl { id, semnum, cmd, arg } => {
                let cmd = SemCmd::decode(id, cmd)?;
                let arg = match &arg {
                    SemCtlArg::None => SemArg::None,
                    SemCtlArg::Val(v) => SemArg::Val(*v),
                    SemCtlArg::Array(a) => SemArg::Array(a.as_deref()),
                    SemCtlArg::Set(p) => SemArg::Set(PermUpdate { uid: p.uid, gid: p.gid, mode: p.mode }),
                };
                let (ret, out) = ns.semctl(&cred, t, id, semnum, cmd, arg)?;
                let out = match out {
                    SemCtlOut::None => SemOut::None,
                    SemCtlOut::Ds(d) => SemOut::SemDs(d),
                    SemCtlOut::Info(i) => SemOut::Seminfo(i),
                    SemCtlOut::Values(v) => SemOut::Values(v),
                };
                (Response::SemCtl { ret, out }, None)
            }
            Request::Waiters => {
                let tokens: Vec<u64> =
                    self.parked.iter().filter(|((n, _), _)| *n == ns_name).map(|(_, t)| *t).collect();
                let mut pids: Vec<u32> =
                    tokens.iter().filter_map(|t| self.conn_mut(*t).map(|c| c.cred.pid.0)).collect();
                pids.sort_unstable();
                (Response::Pids(pids), None)
            }
            Request::ShmGet { key, size, flags } => {
                let before = ns.shm_in_use();
                let id = ns.shmget(&cred, t, key, size, flags)?;
                // The creator (its owner, who may attach it read-write or
                // make itself able to) gets the memory beside the answer,
                // so its first attach takes one round trip (`ShmAttach`).
                let fd = (ns.shm_in_use() != before)
                    .then(|| ns.shm_segment(id.0).and_then(|s| s.region().fd().try_clone_to_owned().ok()))
                    .flatten();
                (Response::Value(i64::from(id.0)), fd)
            }
            Request::ShmAt { id, addr, flags } => {
                let pending = ns.shmat_prepare(&cred, id, addr, flags)?;
                let region = pending.region.clone();
                // A read-only attach gets a read-only open file description,
                // so its mapping can never be made writable.
                let fd = if pending.prot.write {
                    region.fd().try_clone_to_owned().map_err(|_| Errno::EMFILE)
                } else {
                    map::reopen_read_only(region.fd())
                };
                let fd = match fd {
                    Ok(fd) => fd,
                    Err(e) => {
                        ns.shmat_abort(t, pending);
                        return Err(e);
                    }
                };
                let conn = self.conn_mut(token).ok_or(Errno::EIO)?;
                let tok = conn.next_token;
                conn.next_token += 1;
                let resp = Response::Attach {
                    token: tok,
                    size: pending.size,
                    addr: pending.addr,
                    write: pending.prot.write,
                    exec: pending.prot.exec,
                    remap: pending.remap,
                };
                conn.pending.insert(tok, pending);
                (resp, Some(fd))
            }
            Request::ShmAtDone { token: tok, result } => {
                let pending = self.conns_pending_take(token, tok).ok_or(Errno::EINVAL)?;
                let ns = self.namespaces.get_mut(&ns_name).ok_or(Errno::EIDRM)?;
                match result {
                    Ok(addr) => value(ns.shmat_commit(&cred, t, pending, addr).map(|a| i64::try_from(a).unwrap_or(0))),
                    Err(e) => {
                        ns.shmat_abort(t, pending);
                        error(Errno::from_raw(e))
                    }
                }
            }
            Request::ShmCtl { id, cmd, set } => {
                let cmd = ShmCmd::decode(id, cmd)?;
                let set = set.map(|s| PermUpdate { uid: s.uid, gid: s.gid, mode: s.mode });
                let (ret, out) = ns.shmctl(&cred, t, id, cmd, set)?;
                let out = match out {
                    ShmCtlOut::None => CtlOut::None,
                    ShmCtlOut::Ds(d) => CtlOut::ShmDs(d),
                    ShmCtlOut::Info(i) => CtlOut::Shminfo(i),
                    ShmCtlOut::ShmInfo(i) => CtlOut::ShmInfo(i),
                };
                (Response::Ctl { ret: i64::from(ret), out }, None)
            }
            Request::Unshare { newipc } => {
                ns.unshare(cred.pid, t, newipc);
                value(Ok(0))
            }
            Request::SysctlRead { name } => match ns.sysctl_read(&name) {
                Ok(v) => (Response::Text(v), None),
                Err(e) => error(e),
            },
            Request::SysctlWrite { name, value: v } => {
                // The answer is what write(2) of the /proc file returns: the bytes consumed.
                let consumed = i64::try_from(uipc_core::limits::sysctl_consumed(&name, &v)).unwrap_or(i64::MAX);
                value(ns.sysctl_write(&cred, &name, &v).map(|()| consumed))
            }
            Request::PshmOpen { name, oflag, mode, umask } => {
                let mut cred = cred;
                cred.posix.umask = umask & 0o777;
                let opened = ns.pshm_open(&cred, &name, oflag, mode)?;
                // PSHM-OPEN-1: a new open file description with the access
                // mode asked for (and O_APPEND/O_NONBLOCK), close-on-exec.
                let status = oflag & (O_APPEND | O_NONBLOCK);
                let flags = u32::try_from(opened.access.flags() | status).map_err(|_| Errno::EINVAL)?;
                (Response::Fd, Some(descriptor(&opened, flags)?))
            }
            Request::SemOpen { name, oflag, mode, umask, value } => {
                let mut cred = cred;
                cred.posix.umask = umask & 0o777;
                let opened = ns.sem_open(&cred, &name, oflag, mode, value)?;
                let flags = u32::try_from(opened.access.flags()).map_err(|_| Errno::EINVAL)?;
                (Response::Fd, Some(descriptor(&opened, flags)?))
            }
            Request::PshmUnlink { name, sem } => {
                let kind = if sem { PshmKind::Sem } else { PshmKind::Shm };
                value(ns.pshm_unlink(&cred, &name, kind).map(|()| 0))
            }
            Request::PshmList => {
                let objects = ns
                    .pshm_list()
                    .into_iter()
                    .map(|e| {
                        let st = e.region.stat();
                        PshmInfo {
                            name: e.name,
                            uid: e.perm.uid.0,
                            gid: e.perm.gid.0,
                            mode: e.perm.mode,
                            size: st.map_or(0, |s| s.0),
                            mtime: st.map_or(0, |s| s.1),
                            ctime: st.map_or(0, |s| s.2),
                        }
                    })
                    .collect();
                (Response::PshmObjects(objects), None)
            }
            Request::ProcSysvipc { which } => match which.as_str() {
                "shm" => (Response::Text(ns.proc_sysvipc_shm()), None),
                "sem" => (Response::Text(ns.proc_sysvipc_sem()), None),
                "msg" => (Response::Text(ns.proc_sysvipc_msg()), None),
                _ => error(Errno::ENOENT),
            },
        })
    }
}
