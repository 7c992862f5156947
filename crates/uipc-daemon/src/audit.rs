//! The audit log (`uipc daemon --audit FILE`): one JSON object per line
//! for every create, remove and `IPC_SET`, every namespace creation and
//! removal, every sysctl write, and every permission denial (`EACCES`,
//! `EPERM`) returned to a client.
//!
//! ```text
//! {"time":1764020000.123456,"namespace":"default","pid":4242,"uid":1000,
//!  "object":{"kind":"shm","id":32769},"operation":"remove","outcome":"EPERM"}
//! ```
//!
//! - `time`: Unix seconds with a fractional part (wall clock).
//! - `namespace`: the namespace acted in or on (`null` before `Hello`).
//! - `pid`, `uid`: the caller's pid and effective uid as the kernel
//!   reported them (`SO_PEERCRED` at `connect`, or `/proc/PID/status`
//!   after a credential change; the one permission checks use); `ruid`:
//!   its real uid, read from `/proc/PID/status` when the record is
//!   written. Never anything the client said.
//! - `object`: `kind` (`shm`, `sem`, `namespace`, `sysctl`) and `id`,
//!   `key` or `name`.
//! - `operation`: `create`, `remove`, `set` (`IPC_SET`), `ns_create`,
//!   `ns_remove`, `ns_end` (an ephemeral namespace's last process exited;
//!   `uid` is `null`), `sysctl`, `enter`, or for other denials the call
//!   (`shmget`, `shmat`, `shmctl`, `semop`, …).
//! - `outcome`: `ok` or the errno's name.
//!
//! What to record is decided in one place, [`Daemon::dispatch`]'s
//! call to [`Daemon::audit_reply`]; this module only classifies requests
//! and writes lines.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::warn;
use uipc_abi::{Errno, IPC_64, IPC_RMID, IPC_SET};
use uipc_proto::{Request, Response};

use crate::server::Daemon;

/// An audit sink.
pub struct Audit {
    out: Box<dyn Write>,
    /// A write failed: said once, then quiet.
    failed: bool,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    /// Records to `out` (a file opened for appending, or stderr).
    pub fn new(out: Box<dyn Write>) -> Audit {
        Audit { out, failed: false }
    }
}

/// One audit record.
pub(crate) struct Event<'a> {
    pub(crate) namespace: Option<&'a str>,
    pub(crate) pid: u32,
    pub(crate) uid: Option<u32>,
    pub(crate) object: Value,
    pub(crate) operation: &'a str,
    pub(crate) outcome: Result<(), Errno>,
}

/// What a request would be recorded as: its object, its operation, and
/// whether it is recorded whatever its outcome (a change) or only when
/// denied.
pub(crate) struct Subject {
    object: Value,
    operation: &'static str,
    always: bool,
    /// `shmget`/`semget`: recorded as `create` when it made an object.
    may_create: bool,
    /// The namespace acted on, when it is not the connection's.
    target_ns: Option<String>,
}

fn ctl_subject(kind: &str, id: i32, cmd: i32, call: &'static str) -> Subject {
    let (operation, always) = match cmd & !IPC_64 {
        IPC_RMID => ("remove", true),
        IPC_SET => ("set", true),
        _ => (call, false),
    };
    Subject { object: json!({ "kind": kind, "id": id }), operation, always, may_create: false, target_ns: None }
}

fn plain(kind: &str, id: i32, call: &'static str) -> Subject {
    Subject {
        object: json!({ "kind": kind, "id": id }),
        operation: call,
        always: false,
        may_create: false,
        target_ns: None,
    }
}

fn pshm(kind: &str, name: &[u8], operation: &'static str, always: bool, may_create: bool) -> Subject {
    Subject {
        object: json!({ "kind": kind, "name": String::from_utf8_lossy(name) }),
        operation,
        always,
        may_create,
        target_ns: None,
    }
}

fn on_namespace(name: &str, operation: &'static str, always: bool) -> Subject {
    Subject {
        object: json!({ "kind": "namespace", "name": name }),
        operation,
        always,
        may_create: false,
        target_ns: Some(name.to_owned()),
    }
}

/// Classifies a request for the audit log.
pub(crate) fn subject(req: &Request) -> Subject {
    match req {
        Request::ShmGet { key, .. } | Request::ShmGetGrant { key, .. } => Subject {
            object: json!({ "kind": "shm", "key": key }),
            operation: "shmget",
            always: false,
            may_create: true,
            target_ns: None,
        },
        Request::SemGet { key, .. } => Subject {
            object: json!({ "kind": "sem", "key": key }),
            operation: "semget",
            always: false,
            may_create: true,
            target_ns: None,
        },
        Request::MsgGet { key, .. } => Subject {
            object: json!({ "kind": "msg", "key": key }),
            operation: "msgget",
            always: false,
            may_create: true,
            target_ns: None,
        },
        Request::MsgCtl { id, cmd, .. } => ctl_subject("msg", *id, *cmd, "msgctl"),
        Request::MsgSnd { id, .. } => plain("msg", *id, "msgsnd"),
        Request::MsgRcv { id, .. } => plain("msg", *id, "msgrcv"),
        Request::ShmCtl { id, cmd, .. } => ctl_subject("shm", *id, *cmd, "shmctl"),
        Request::SemCtl { id, cmd, .. } => ctl_subject("sem", *id, *cmd, "semctl"),
        Request::ShmAt { id, .. } | Request::ShmAttach { id, .. } | Request::ShmAttachGrant { id, .. } => {
            plain("shm", *id, "shmat")
        }
        Request::ShmStat { id, cmd, .. } => ctl_subject("shm", *id, *cmd, "shmctl"),
        Request::SemOp { id, .. } => plain("sem", *id, "semop"),
        Request::Hello { namespace, .. } | Request::Join { namespace, .. } => on_namespace(namespace, "enter", false),
        Request::NsCreate { name, .. } => on_namespace(name, "ns_create", true),
        Request::NsRemove { name } => on_namespace(name, "ns_remove", true),
        Request::NsShow { name } => on_namespace(name, "ns_show", false),
        Request::SysctlWrite { name, value } => Subject {
            object: json!({ "kind": "sysctl", "name": name, "value": value }),
            operation: "sysctl",
            always: true,
            may_create: false,
            target_ns: None,
        },
        Request::PshmOpen { name, .. } => pshm("posix_shm", name, "shm_open", false, true),
        Request::SemOpen { name, .. } => pshm("posix_sem", name, "sem_open", false, true),
        Request::PshmUnlink { name, sem } => {
            pshm(if *sem { "posix_sem" } else { "posix_shm" }, name, "unlink", true, false)
        }
        other => Subject {
            object: Value::Null,
            operation: request_name(other),
            always: false,
            may_create: false,
            target_ns: None,
        },
    }
}

fn request_name(req: &Request) -> &'static str {
    match req {
        Request::ShmDt { .. } => "shmdt",
        Request::ShmAtDone { .. } => "shmat",
        Request::Munmap { .. } => "munmap",
        Request::ShmRecord { .. } => "shm_record",
        Request::Forked { .. } => "fork",
        Request::Exec => "exec",
        Request::SysctlRead { .. } => "sysctl_read",
        Request::ProcSysvipc { .. } => "proc_sysvipc",
        Request::NsList => "ns_list",
        _ => "request",
    }
}

impl Daemon {
    /// Sends audit records to `audit` from now on (`uipc daemon --audit`).
    pub fn with_audit(mut self, audit: Audit) -> Daemon {
        self.audit = Some(audit);
        self
    }

    /// Writes one record, if auditing.
    pub(crate) fn audit_event(&mut self, e: Event<'_>) {
        let Some(audit) = self.audit.as_mut() else { return };
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let outcome = match e.outcome {
            Ok(()) => "ok".to_owned(),
            Err(err) => err.name().map_or_else(|| format!("E{}", err.raw()), str::to_owned),
        };
        // The real uid now, from the kernel (records are rare: a read of
        // /proc per record is cheap); null if the process is gone.
        let ruid = e.uid.and_then(|_| uipc_sys::proc::proc_ids(e.pid).ok()).map(|ids| ids.ruid);
        let line = json!({
            "time": time,
            "namespace": e.namespace,
            "pid": e.pid,
            "uid": e.uid,
            "ruid": ruid,
            "object": e.object,
            "operation": e.operation,
            "outcome": outcome,
        });
        let written = writeln!(audit.out, "{line}").and_then(|()| audit.out.flush());
        if let Err(err) = written {
            if !audit.failed {
                warn!("audit log: {err}");
                audit.failed = true;
            }
        }
    }

    /// Records the answer to a request if it is a change or a denial
    /// (the module's rules). `created` says whether a `*get` made an object;
    /// `ns` is the connection's namespace when the request came.
    pub(crate) fn audit_reply(
        &mut self,
        cred: (u32, u32),
        ns: Option<&str>,
        subject: Subject,
        created: bool,
        reply: &Response,
    ) {
        let outcome = match reply {
            Response::Error(e) => Err(Errno::from_raw(*e)),
            _ => Ok(()),
        };
        let denied = matches!(outcome, Err(Errno::EACCES | Errno::EPERM));
        let mut object = subject.object;
        let operation = if subject.may_create && created && outcome.is_ok() {
            if let (Response::Value(id) | Response::ShmGranted { value: id, .. }, Value::Object(map)) =
                (reply, &mut object)
            {
                map.insert("id".into(), json!(id));
            }
            "create"
        } else if subject.operation == "enter" && created && outcome.is_ok() {
            // Hello made the namespace it named.
            "ns_create"
        } else {
            subject.operation
        };
        if !(subject.always || denied || operation == "create" || operation == "ns_create") {
            return;
        }
        let mut target = subject.target_ns;
        if let (Response::Text(name), "ns_create") = (reply, operation) {
            // An ephemeral namespace's name is the daemon's choice.
            object = json!({ "kind": "namespace", "name": name });
            target = Some(name.clone());
        }
        let namespace = target.as_deref().or(ns);
        self.audit_event(Event { namespace, pid: cred.0, uid: Some(cred.1), object, operation, outcome });
    }
}
