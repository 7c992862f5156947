//! Namespace management: create, list, show, remove, and the end of
//! ephemeral namespaces.
//!
//! # Rules
//! - **Create** (`NsCreate`): anyone; the owner is the caller's euid/egid
//!   as the kernel reports them (`SO_PEERCRED`), the mode is the caller's
//!   (low 9 bits, read like a directory's: `x` = may enter). `EEXIST` if
//!   the name is taken. Initial sysctls are written as the owner, who is
//!   root of its namespace ([`ns_may_write_sysctl`]); if one is refused,
//!   nothing is created.
//! - **Implicit create**: `Hello` naming a namespace that does not exist
//!   still creates it (owner = caller, mode 0755), as it always did: `uipc
//!   run --ns NAME` and the test backends rely on it. `Join` is the strict
//!   form (`ENOENT`), used by the tools.
//! - **Enter** (`Hello`, `Join`): [`ns_may_enter`], unless the process is
//!   already in the namespace ([`Daemon::already_in`]): Linux never moves
//!   a process out of its IPC namespace when its credentials change, so a
//!   process that dropped privileges (`setuid`) and reconnects, or the
//!   child it forks, stays in a 0700 namespace it could not enter now.
//! - **List/show**: the namespaces the caller may enter; showing another
//!   is `EACCES`.
//! - **Remove** (`NsRemove`): the owner or `CAP_SYS_ADMIN`
//!   ([`ns_may_remove`], else `EPERM`); `default` is never removed
//!   (`EBUSY`, as Linux's initial namespace never goes).
//! - **Ephemeral** (`NsCreate { ephemeral }`, `uipc run --ns new`): a
//!   fresh name `new-N`, mode 0700, the creating process counted as a
//!   member; destroyed when the last process that joined it exits.
//!
//! Removal mirrors `ipc/namespace.c:free_ipcs()`: every set removed (its
//! sleepers answered `EIDRM`), every segment destroyed and its memory and
//! descriptor released, pending attaches aborted. Connections still joined
//! to it stay open and answer `EIDRM` to every later call; mappings the
//! processes made stay valid, as after Linux's teardown.
//!
//! [`ns_may_enter`]: uipc_core::perm::ns_may_enter
//! [`ns_may_remove`]: uipc_core::perm::ns_may_remove
//! [`ns_may_write_sysctl`]: uipc_core::perm::ns_may_write_sysctl

use tracing::info;
use uipc_abi::Errno;
use uipc_core::cred::Cred;
use uipc_core::perm::{ns_may_enter, ns_may_remove, NamespaceOwner};
use uipc_proto::NsInfo;

use crate::server::{now, Daemon};

/// The name a connection's namespace takes when the namespace is removed
/// under it: not a valid namespace name, so it never names one again.
pub(crate) const REMOVED: &str = "/removed";

/// What the daemon records about a namespace besides its objects.
#[derive(Clone, Debug, Default)]
pub(crate) struct NsMeta {
    /// Ends with the last process that joined it.
    pub(crate) ephemeral: bool,
}

impl Daemon {
    /// `NsCreate`: see the module's rules. Returns the name.
    pub(crate) fn ns_create(
        &mut self,
        cred: &Cred,
        name: &str,
        mode: u32,
        sysctls: &[(String, String)],
        ephemeral: bool,
    ) -> Result<String, Errno> {
        // mkdir(2) would ignore the extra bits; a namespace's mode has none.
        if mode & !0o777 != 0 {
            return Err(Errno::EINVAL);
        }
        let name = if ephemeral {
            loop {
                let n = format!("new-{}", self.next_ephemeral);
                self.next_ephemeral += 1;
                if !self.namespaces.contains_key(&n) {
                    break n;
                }
            }
        } else {
            if !uipc_proto::valid_namespace(name) {
                return Err(Errno::EINVAL);
            }
            if self.namespaces.contains_key(name) {
                return Err(Errno::EEXIST);
            }
            name.to_owned()
        };
        let mode = if ephemeral { 0o700 } else { mode };
        let ns = self.namespace(&name)?;
        ns.owner = NamespaceOwner { uid: cred.euid, gid: cred.egid, mode };
        let applied = sysctls.iter().try_for_each(|(k, v)| ns.sysctl_write(cred, k, v));
        if let Err(e) = applied {
            self.forget_namespace(&name);
            return Err(e);
        }
        self.ns_meta.insert(name.clone(), crate::namespaces::NsMeta { ephemeral });
        if ephemeral {
            if let Some(p) = self.procs.get_mut(&cred.pid.0) {
                p.namespaces.insert(name.clone());
            }
        }
        info!(namespace = name, uid = cred.euid.0, mode, ephemeral, "namespace created");
        Ok(name)
    }

    /// The description of namespace `name`, with its sysctls if `full`.
    pub(crate) fn ns_info(&self, name: &str, full: bool) -> Option<NsInfo> {
        let ns = self.namespaces.get(name)?;
        let counts = ns.object_counts();
        let processes = self.procs.values().filter(|p| p.namespaces.contains(name)).count();
        Some(NsInfo {
            name: name.to_owned(),
            uid: ns.owner.uid.0,
            gid: ns.owner.gid.0,
            mode: ns.owner.mode,
            ephemeral: self.ns_meta.get(name).is_some_and(|m| m.ephemeral),
            processes: u32::try_from(processes).unwrap_or(u32::MAX),
            shm: counts.shm,
            shm_bytes: counts.shm_bytes,
            sem: counts.sem,
            msg: counts.msg,
            sysctls: if full { ns.sysctls() } else { Vec::new() },
        })
    }

    /// `NsList`: the namespaces `cred` may enter, by name.
    pub(crate) fn ns_list(&self, cred: &Cred) -> Vec<NsInfo> {
        self.namespaces
            .iter()
            .filter(|(_, ns)| ns_may_enter(cred, &ns.owner).is_ok())
            .filter_map(|(name, _)| self.ns_info(name, false))
            .collect()
    }

    /// `NsShow`.
    ///
    /// # Errors
    /// `ENOENT` (no such namespace), `EACCES` (the caller may not enter it).
    pub(crate) fn ns_show(&self, cred: &Cred, name: &str) -> Result<NsInfo, Errno> {
        let ns = self.namespaces.get(name).ok_or(Errno::ENOENT)?;
        ns_may_enter(cred, &ns.owner)?;
        self.ns_info(name, true).ok_or(Errno::ENOENT)
    }

    /// `NsRemove`.
    ///
    /// # Errors
    /// `ENOENT` (no such namespace), `EBUSY` (`default`), `EPERM` (neither
    /// the owner nor `CAP_SYS_ADMIN`).
    pub(crate) fn ns_remove(&mut self, cred: &Cred, name: &str) -> Result<(), Errno> {
        let ns = self.namespaces.get(name).ok_or(Errno::ENOENT)?;
        if name == "default" {
            return Err(Errno::EBUSY);
        }
        ns_may_remove(cred, &ns.owner)?;
        self.destroy_namespace(name);
        Ok(())
    }

    /// `Join`: enters an existing namespace.
    ///
    /// # Errors
    /// `ENOENT` (no such namespace), `EACCES` ([`ns_may_enter`]).
    pub(crate) fn join_existing(&mut self, cred: &Cred, name: &str) -> Result<(), Errno> {
        let ns = self.namespaces.get(name).ok_or(Errno::ENOENT)?;
        if self.already_in(cred, name) {
            return Ok(());
        }
        ns_may_enter(cred, &ns.owner)
    }

    /// The namespace process `pid` is in: that of its oldest connection
    /// (its main one; a thread's own namespace and pooled connections come
    /// later), else that of its nearest ancestor that has one (a process
    /// that has not called uipc yet is where it was started).
    pub(crate) fn namespace_of(&self, pid: u32) -> Option<String> {
        let mut p = pid;
        for _ in 0..4096 {
            let oldest = self
                .conns
                .iter()
                .filter(|(_, c)| c.cred.pid.0 == p)
                .find_map(|(_, c)| c.ns.clone().filter(|n| self.namespaces.contains_key(n)));
            if oldest.is_some() {
                return oldest;
            }
            p = uipc_sys::proc::proc_parent(p).ok().filter(|&parent| parent > 1)?;
        }
        None
    }

    /// Is the caller's process in namespace `name` already, whatever its
    /// credentials now? Either one of its connections is joined to `name`
    /// (a pooled connection opened after `setuid`, a thread's own
    /// namespace), or its parent's `Forked` put it there, or — in a
    /// private daemon (`uipc run`'s, [`Daemon::only_tree`]) or for an
    /// ephemeral namespace (`uipc run --ns new`) — it has joined nowhere
    /// yet and an ancestor is in `name`: a process started by a member
    /// through any number of processes that never called uipc (`setpriv`,
    /// `su`, a shell), or re-parented to a member that is a subreaper, as
    /// `uipc run` is. A child starts in its parent's namespace
    /// (`copy_ipcs()`), and Linux checks no credential when a process stays
    /// in its IPC namespace or inherits it; only `setns(2)` into another
    /// one needs privilege. (An ancestor that is a member could as well
    /// have handed its connection down.) A shared daemon's named
    /// namespaces keep their owner and mode rules for a process that
    /// names one itself.
    pub(crate) fn already_in(&self, cred: &Cred, name: &str) -> bool {
        let pid = cred.pid;
        let mut joined = self.conns.values().filter(|c| c.cred.pid == pid).filter_map(|c| c.ns.as_deref()).peekable();
        if joined.peek().is_some() {
            return joined.any(|n| n == name);
        }
        if self.procs.get(&pid.0).is_some_and(|p| p.namespaces.contains(name)) {
            return true;
        }
        let inherited = self.tree.is_some() || self.ns_meta.get(name).is_some_and(|m| m.ephemeral);
        if !inherited {
            return false;
        }
        let mut p = pid.0;
        for _ in 0..4096 {
            match uipc_sys::proc::proc_parent(p) {
                Ok(parent) if parent > 1 => p = parent,
                _ => return false,
            }
            if self.procs.get(&p).is_some_and(|rec| rec.namespaces.contains(name)) {
                return true;
            }
        }
        false
    }

    /// Tears namespace `name` down (`free_ipcs()`), answers its sleepers
    /// with `EIDRM`, and forgets it.
    pub(crate) fn destroy_namespace(&mut self, name: &str) {
        let t = now();
        let members: Vec<u64> =
            self.conns.iter().filter(|(_, c)| c.ns.as_deref() == Some(name)).map(|(t, _)| *t).collect();
        for token in &members {
            let pending = self.conns.get_mut(token).map(|c| std::mem::take(&mut c.pending)).unwrap_or_default();
            if let Some(ns) = self.namespaces.get_mut(name) {
                for (_, p) in pending {
                    ns.shmat_abort(t, p);
                }
            }
        }
        if let Some(ns) = self.namespaces.get_mut(name) {
            ns.free_ipcs();
        }
        // Every sleeper of every set got EIDRM from freeary().
        self.deliver(name);
        let left: Vec<_> = self.parked.keys().filter(|(n, _)| n == name).map(|(_, w)| *w).collect();
        for w in left {
            self.answer_parked(name, w, Err(Errno::EIDRM), None);
        }
        for token in &members {
            if let Some(c) = self.conns.get_mut(token) {
                c.ns = Some(REMOVED.to_owned());
            }
        }
        self.timers.retain(|_, (n, _)| n != name);
        self.forget_namespace(name);
        info!(namespace = name, "namespace removed");
    }

    /// Drops namespace `name` and every reference to it.
    fn forget_namespace(&mut self, name: &str) {
        self.ns_gone(name);
        self.touch_procs();
        for p in self.procs.values_mut() {
            p.namespaces.remove(name);
        }
        self.namespaces.remove(name);
        self.sem_pages_forget(name);
        self.msg_pages_forget(name);
        self.mq_pages_forget(name);
        self.shm_pages_forget(name);
        self.status_forget(name);
        self.ns_meta.remove(name);
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(dir.join("ns").join(name));
        }
    }

    /// Process `pid` (already forgotten) has exited: each ephemeral
    /// namespace among `names` that no living process joined ends.
    pub(crate) fn end_ephemeral(&mut self, names: &std::collections::BTreeSet<String>, pid: u32) {
        for name in names {
            let ephemeral = self.ns_meta.get(name).is_some_and(|m| m.ephemeral);
            if ephemeral && !self.procs.values().any(|p| p.namespaces.contains(name)) {
                self.destroy_namespace(name);
                self.audit_event(crate::audit::Event {
                    namespace: Some(name),
                    pid,
                    uid: None,
                    object: serde_json::json!({ "kind": "namespace", "name": name }),
                    operation: "ns_end",
                    outcome: Ok(()),
                });
            }
        }
    }
}
