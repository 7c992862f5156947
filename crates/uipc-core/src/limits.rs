//! Per-namespace limits: the IPC sysctls of SPEC section 7, with Linux's
//! names, defaults, parsing and range errors.
//!
//! # References
//! - `ipc/ipc_sysctl.c`, `ipc/mq_sysctl.c`, `kernel/sysctl.c:__do_proc_dointvec()`,
//!   `__do_proc_doulongvec_minmax()` (Linux 6.12).

use uipc_abi::{Errno, IPCMNI};

/// The limits of one IPC namespace. A new namespace starts from
/// [`Limits::default`], never from its parent's values (SPEC 7).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Limits {
    /// `kernel.shmmax`: largest segment, bytes.
    pub shmmax: u64,
    /// `kernel.shmall`: pages in all segments.
    pub shmall: u64,
    /// `kernel.shmmni`: most segments (0..=32768).
    pub shmmni: u32,
    /// `kernel.shm_rmid_forced`.
    pub shm_rmid_forced: bool,
    /// `kernel.msgmax`: largest message.
    pub msgmax: i32,
    /// `kernel.msgmnb`: default queue capacity.
    pub msgmnb: i32,
    /// `kernel.msgmni`: most queues (0..=32768).
    pub msgmni: i32,
    /// `kernel.sem`: SEMMSL, SEMMNS, SEMOPM, SEMMNI.
    pub sem: [i32; 4],
    /// `fs.mqueue.queues_max`.
    pub mq_queues_max: i32,
    /// `fs.mqueue.msg_max`.
    pub mq_msg_max: i32,
    /// `fs.mqueue.msgsize_max`.
    pub mq_msgsize_max: i32,
    /// `fs.mqueue.msg_default`.
    pub mq_msg_default: i32,
    /// `fs.mqueue.msgsize_default`.
    pub mq_msgsize_default: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            shmmax: u64::MAX - (1 << 24),
            shmall: u64::MAX - (1 << 24),
            shmmni: 4096,
            shm_rmid_forced: false,
            msgmax: 8192,
            msgmnb: 16384,
            msgmni: 32000,
            sem: [32000, 1_024_000_000, 500, 32000],
            mq_queues_max: 256,
            mq_msg_max: 10,
            mq_msgsize_max: 8192,
            mq_msg_default: 10,
            mq_msgsize_default: 8192,
        }
    }
}

/// `HARD_MSGMAX`.
const HARD_MSGMAX: i64 = 65536;
/// `HARD_MSGSIZEMAX`.
const HARD_MSGSIZEMAX: i64 = 16 * 1024 * 1024;
/// `IPCMNI` as a sysctl bound.
const MNI: i64 = IPCMNI as i64;

/// How a sysctl's value is written and read.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// One `unsigned long` (`proc_doulongvec_minmax`, no bounds).
    Ulong,
    /// One `int` within `min..=max` (`proc_dointvec_minmax`).
    Int { min: i64, max: i64 },
    /// Several `int`s, no bounds (`proc_dointvec`).
    Ints(usize),
}

/// Every IPC sysctl: its dotted name and kind.
const SYSCTLS: &[(&str, Kind)] = &[
    ("kernel.shmmax", Kind::Ulong),
    ("kernel.shmall", Kind::Ulong),
    ("kernel.shmmni", Kind::Int { min: 0, max: MNI }),
    ("kernel.shm_rmid_forced", Kind::Int { min: 0, max: 1 }),
    ("kernel.msgmax", Kind::Int { min: 0, max: i32::MAX as i64 }),
    ("kernel.msgmnb", Kind::Int { min: 0, max: i32::MAX as i64 }),
    ("kernel.msgmni", Kind::Int { min: 0, max: MNI }),
    ("kernel.auto_msgmni", Kind::Int { min: 0, max: 1 }),
    ("kernel.sem", Kind::Ints(4)),
    ("kernel.sem_next_id", Kind::Int { min: 0, max: i32::MAX as i64 }),
    ("kernel.msg_next_id", Kind::Int { min: 0, max: i32::MAX as i64 }),
    ("kernel.shm_next_id", Kind::Int { min: 0, max: i32::MAX as i64 }),
    ("fs.mqueue.queues_max", Kind::Ints(1)),
    ("fs.mqueue.msg_max", Kind::Int { min: 1, max: HARD_MSGMAX }),
    ("fs.mqueue.msgsize_max", Kind::Int { min: 128, max: HARD_MSGSIZEMAX }),
    ("fs.mqueue.msg_default", Kind::Int { min: 1, max: HARD_MSGMAX }),
    ("fs.mqueue.msgsize_default", Kind::Int { min: 128, max: HARD_MSGSIZEMAX }),
];

/// The names of every IPC sysctl uipc knows.
pub fn sysctl_names() -> impl Iterator<Item = &'static str> {
    SYSCTLS.iter().map(|(n, _)| *n)
}

/// Whether `name` is one of the `*_next_id` knobs (writable only with
/// `CAP_CHECKPOINT_RESTORE`, COM-ID-6).
pub fn is_next_id(name: &str) -> bool {
    name.ends_with("_next_id")
}

fn kind_of(name: &str) -> Result<Kind, Errno> {
    SYSCTLS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k).ok_or(Errno::ENOENT)
}

/// Parses a sysctl write the way `__do_proc_dointvec()` does: up to `max`
/// whitespace-separated integers (sign allowed only if `signed`); garbage
/// is `EINVAL`; an empty write is `EINVAL`; extra values are ignored.
fn parse_values(text: &str, max: usize, signed: bool) -> Result<Vec<i128>, Errno> {
    let mut out = Vec::new();
    for word in text.split_ascii_whitespace().take(max) {
        let v: i128 = word.parse().map_err(|_| Errno::EINVAL)?;
        if v < 0 && !signed {
            return Err(Errno::EINVAL);
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(Errno::EINVAL);
    }
    Ok(out)
}

/// How many bytes of `value` a successful write to sysctl `name` consumes,
/// as `__do_proc_dointvec()` and `__do_proc_doulongvec_minmax()` report
/// it (the count `write(2)` returns): through the last value the file
/// holds (1, or 4 for `kernel.sem`) and the white space after it; values
/// beyond are left unread.
pub fn sysctl_consumed(name: &str, value: &str) -> usize {
    let max = match kind_of(name) {
        Ok(Kind::Ints(n)) => n,
        _ => 1,
    };
    let bytes = value.as_bytes();
    let mut i = 0;
    for _ in 0..max {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// A parsed sysctl write: the values to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// One value (already range-checked).
    One(i128),
    /// Several ints (`kernel.sem`), fewer than the full set possible.
    Many(Vec<i32>),
}

/// Parses and range-checks a write of `value` to sysctl `name`.
///
/// # Errors
/// `ENOENT` for an unknown name, `EINVAL` for a malformed or out-of-range value.
pub(crate) fn parse_write(name: &str, value: &str) -> Result<Parsed, Errno> {
    match kind_of(name)? {
        Kind::Ulong => {
            let v = parse_values(value, 1, false)?[0];
            if v > i128::from(u64::MAX) {
                return Err(Errno::EINVAL);
            }
            Ok(Parsed::One(v))
        }
        Kind::Int { min, max } => {
            let v = parse_values(value, 1, true)?[0];
            // proc_dointvec_minmax: outside [min, max] → EINVAL.
            if v < i128::from(min) || v > i128::from(max) {
                return Err(Errno::EINVAL);
            }
            Ok(Parsed::One(v))
        }
        Kind::Ints(n) => {
            let vs = parse_values(value, n, true)?;
            let ints =
                vs.into_iter().map(|v| i32::try_from(v).map_err(|_| Errno::EINVAL)).collect::<Result<Vec<_>, _>>()?;
            Ok(Parsed::Many(ints))
        }
    }
}

fn narrow(v: i128) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl Limits {
    /// Applies a parsed write of a limit (not the `*_next_id` knobs, which
    /// live in the registries).
    ///
    /// # Errors
    /// `ERANGE` when `kernel.sem` gets a SEMMNI outside 0..=32768; the old
    /// SEMMNI is kept and the other three values stay written
    /// (`ipc/ipc_sysctl.c:proc_ipc_sem_dointvec()`).
    pub(crate) fn apply(&mut self, name: &str, parsed: Parsed) -> Result<(), Errno> {
        match (name, parsed) {
            ("kernel.shmmax", Parsed::One(v)) => self.shmmax = u64::try_from(v).unwrap_or(u64::MAX),
            ("kernel.shmall", Parsed::One(v)) => self.shmall = u64::try_from(v).unwrap_or(u64::MAX),
            ("kernel.shmmni", Parsed::One(v)) => self.shmmni = u32::try_from(v).unwrap_or(0),
            ("kernel.shm_rmid_forced", Parsed::One(v)) => self.shm_rmid_forced = v == 1,
            ("kernel.msgmax", Parsed::One(v)) => self.msgmax = narrow(v),
            ("kernel.msgmnb", Parsed::One(v)) => self.msgmnb = narrow(v),
            ("kernel.msgmni", Parsed::One(v)) => self.msgmni = narrow(v),
            ("kernel.auto_msgmni", _) => {}
            ("kernel.sem", Parsed::Many(vs)) => {
                let old_semmni = self.sem[3];
                for (slot, v) in self.sem.iter_mut().zip(vs) {
                    *slot = v;
                }
                if self.sem[3] < 0 || i64::from(self.sem[3]) > MNI {
                    self.sem[3] = old_semmni;
                    return Err(Errno::ERANGE);
                }
            }
            ("fs.mqueue.queues_max", Parsed::Many(vs)) => self.mq_queues_max = vs[0],
            ("fs.mqueue.msg_max", Parsed::One(v)) => self.mq_msg_max = narrow(v),
            ("fs.mqueue.msgsize_max", Parsed::One(v)) => self.mq_msgsize_max = narrow(v),
            ("fs.mqueue.msg_default", Parsed::One(v)) => self.mq_msg_default = narrow(v),
            ("fs.mqueue.msgsize_default", Parsed::One(v)) => self.mq_msgsize_default = narrow(v),
            _ => return Err(Errno::ENOENT),
        }
        Ok(())
    }

    /// Renders a limit as reading `/proc/sys/...` shows it (without the newline).
    ///
    /// # Errors
    /// `ENOENT` for an unknown or `*_next_id` name.
    pub(crate) fn render(&self, name: &str) -> Result<String, Errno> {
        Ok(match name {
            "kernel.shmmax" => self.shmmax.to_string(),
            "kernel.shmall" => self.shmall.to_string(),
            "kernel.shmmni" => self.shmmni.to_string(),
            "kernel.shm_rmid_forced" => u8::from(self.shm_rmid_forced).to_string(),
            "kernel.msgmax" => self.msgmax.to_string(),
            "kernel.msgmnb" => self.msgmnb.to_string(),
            "kernel.msgmni" => self.msgmni.to_string(),
            "kernel.auto_msgmni" => "0".to_string(),
            "kernel.sem" => self.sem.map(|v| v.to_string()).join("\t"),
            "fs.mqueue.queues_max" => self.mq_queues_max.to_string(),
            "fs.mqueue.msg_max" => self.mq_msg_max.to_string(),
            "fs.mqueue.msgsize_max" => self.mq_msgsize_max.to_string(),
            "fs.mqueue.msg_default" => self.mq_msg_default.to_string(),
            "fs.mqueue.msgsize_default" => self.mq_msgsize_default.to_string(),
            _ => return Err(Errno::ENOENT),
        })
    }
}
