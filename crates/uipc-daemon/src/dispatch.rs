//! One request → one core call (STYLE rule 12).

use std::os::fd::OwnedFd;

use uipc_abi::Errno;
use uipc_core::cred::Pid;
use uipc_core::perm::PermUpdate;
use uipc_core::sysv::shm::{ShmCmd, ShmCtlOut};
use uipc_proto::{CtlOut, Request, Response, VERSION};
use uipc_sys::{map, proc};

use crate::server::{now, Daemon};

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

impl Daemon {
    /// Answers one request of connection `token`.
    pub(crate) fn dispatch(&mut self, token: u64, req: Request) -> Reply {
        match self.dispatch_inner(token, req) {
            Ok(reply) => reply,
            Err(e) => error(e),
        }
    }

    fn dispatch_inner(&mut self, token: u64, req: Request) -> Result<Reply, Errno> {
        let conn = self.conn_mut(token).ok_or(Errno::EIO)?;
        let cred = conn.cred.clone();
        let Some(ns_name) = conn.ns.clone() else {
            // Step 2 of the protocol: nothing before Hello.
            let Request::Hello { version, namespace } = req else { return Err(Errno::EPERM) };
            if version != VERSION {
                return Err(Errno::EPROTO);
            }
            if !uipc_proto::valid_namespace(&namespace) {
                return Err(Errno::EINVAL);
            }
            self.join(&cred, &namespace)?;
            if let Some(p) = self.procs.get_mut(&cred.pid.0) {
                p.namespaces.insert(namespace.clone());
            }
            if let Some(c) = self.conn_mut(token) {
                c.ns = Some(namespace);
            }
            return Ok((Response::Welcome { version: VERSION }, None));
        };
        let t = now();
        if let Request::Sync = req {
            self.reap();
            return Ok(value(Ok(0)));
        }
        if let Request::Forked { child } = req {
            // The kernel says whose child it is, not the client.
            if proc::proc_parent(child)? != cred.pid.0 {
                return Err(Errno::EPERM);
            }
            self.track_process(child)?;
            if let Some(p) = self.procs.get_mut(&child) {
                p.namespaces.insert(ns_name.clone());
            }
            self.namespace(&ns_name)?.fork(&cred, t, Pid(child));
            return Ok(value(Ok(0)));
        }
        let ns = self.namespaces.get_mut(&ns_name).ok_or(Errno::EIO)?;
        Ok(match req {
            Request::Hello { .. } => error(Errno::EINVAL),
            Request::Sync | Request::Forked { .. } => error(Errno::EINVAL),
            Request::ShmGet { key, size, flags } => {
                value(ns.shmget(&cred, t, key, size, flags).map(|id| i64::from(id.0)))
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
                let ns = self.namespaces.get_mut(&ns_name).ok_or(Errno::EIO)?;
                match result {
                    Ok(addr) => value(ns.shmat_commit(&cred, t, pending, addr).map(|a| i64::try_from(a).unwrap_or(0))),
                    Err(e) => {
                        ns.shmat_abort(t, pending);
                        error(Errno::from_raw(e))
                    }
                }
            }
            Request::ShmDt { addr } => match ns.shmdt(&cred, t, addr) {
                Ok(ranges) => (Response::Unmap(ranges), None),
                Err(e) => error(e),
            },
            Request::Munmap { addr, len } => value(ns.munmap(&cred, t, addr, len).map(|()| 0)),
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
            Request::Exec => {
                ns.exec(cred.pid, t);
                value(Ok(0))
            }
            Request::SysctlRead { name } => match ns.sysctl_read(&name) {
                Ok(v) => (Response::Text(v), None),
                Err(e) => error(e),
            },
            Request::SysctlWrite { name, value: v } => value(ns.sysctl_write(&cred, &name, &v).map(|()| 0)),
            Request::ProcSysvipc { which } => match which.as_str() {
                "shm" => (Response::Text(ns.proc_sysvipc_shm()), None),
                _ => error(Errno::ENOENT),
            },
        })
    }
}
