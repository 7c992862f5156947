//! [`Session`]: the API a test body uses, and the normalised transcript.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use uipc_abi::Errno;

use crate::backend::Backend;
use crate::op::{
    CtlBuf, Data, Identity, MsgCtlBuf, MsgDsView, Op, Reply, SemArg, SemBuf, SemDsView, ShmDsView, ShmInfoView,
    ShminfoView, Started, Timeout,
};

/// A process of the test, by its order of creation (`P0`, `P1`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc(pub usize);

/// The result type of the session's calls: the value, or the errno.
pub type Res<T> = Result<T, Errno>;

/// Addresses below this are printed as numbers (NULL, 1, 4095…); above it,
/// relative to a known base.
const SMALL_ADDR: u64 = 1 << 20;

/// A named address range of one process: an attach or a free region.
#[derive(Clone)]
struct Base {
    proc: usize,
    addr: u64,
    len: u64,
    name: String,
}

/// A POSIX message-queue descriptor a test holds: what the backend
/// returned, and its name in the transcript (`mqd#N`, by order of opening;
/// descriptor numbers differ between backends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mqd {
    raw: i64,
    label: Option<usize>,
}

impl Mqd {
    /// A descriptor no process holds (`EBADF`).
    pub const BAD: Mqd = Mqd { raw: -1, label: None };

    fn fact(self) -> String {
        self.label.map_or_else(|| format!("{}", self.raw), |l| format!("mqd#{l}"))
    }
}

/// Drives one backend for one test body and records what it answers.
pub struct Session<'b> {
    backend: &'b mut dyn Backend,
    /// pid of each [`Proc`], in order.
    pids: Vec<u32>,
    /// Known address bases of each process (by [`Proc`] index): attach
    /// results and free regions, with their names. Per process, because
    /// unrelated processes may use the same addresses; a fork copies them.
    bases: Vec<Base>,
    transcript: Vec<String>,
    /// Wall-clock seconds when the session started.
    t0: i64,
    /// The call each process is asleep in (by [`Proc`] index), as written
    /// in the transcript.
    asleep: BTreeMap<usize, String>,
    /// Descriptors `mq_open` returned so far.
    mqds: usize,
}

fn now() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl<'b> Session<'b> {
    /// A session on `backend`.
    pub fn new(backend: &'b mut dyn Backend) -> Session<'b> {
        Session {
            backend,
            pids: Vec::new(),
            bases: Vec::new(),
            transcript: Vec::new(),
            t0: now(),
            asleep: BTreeMap::new(),
            mqds: 0,
        }
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The transcript so far.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// Records a line of the test's own (a derived fact both backends must agree on).
    pub fn note(&mut self, fact: impl Into<String>) {
        self.transcript.push(format!("note: {}", fact.into()));
    }

    fn harness<T>(&self, r: Result<T, String>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("harness failure on backend {}: {e}", self.backend.name()),
        }
    }

    /// Starts a process with identity `who`.
    pub fn spawn(&mut self, who: Identity) -> Proc {
        let r = self.backend.spawn(&who);
        let pid = self.harness(r);
        self.pids.push(pid);
        let p = Proc(self.pids.len() - 1);
        self.transcript.push(format!(
            "spawn P{} uid={} gid={} groups={:?} drop_caps={:?}",
            p.0, who.uid, who.gid, who.groups, who.drop_caps
        ));
        p
    }

    /// Starts a root process (with the capabilities this machine gives root).
    pub fn root(&mut self) -> Proc {
        self.spawn(Identity::root())
    }

    /// Starts an unprivileged process.
    pub fn user(&mut self, uid: u32, gid: u32) -> Proc {
        self.spawn(Identity::user(uid, gid))
    }

    /// The pid a backend gave process `p` (for building expectations such
    /// as "lpid is P1"; prefer comparing through the transcript).
    pub fn pid(&self, p: Proc) -> u32 {
        self.pids[p.0]
    }

    fn pid_fact(&self, pid: i64) -> String {
        if pid == 0 {
            return "0".into();
        }
        match self.pids.iter().position(|&q| i64::from(q) == pid) {
            Some(i) => format!("P{i}"),
            None => format!("pid?{pid}"),
        }
    }

    fn time_fact(&self, t: i64) -> String {
        if t == 0 {
            "never".into()
        } else if t >= self.t0 - 1 && t <= now() {
            // The kernel stamps with ktime_get_real_seconds(), the coarse
            // clock, which can trail CLOCK_REALTIME across a second boundary.
            "now".into()
        } else {
            format!("t?{t}")
        }
    }

    /// Names an address of process `p` relative to the nearest known base
    /// at or below it.
    fn addr_fact(&self, p: Proc, a: u64) -> String {
        if a < SMALL_ADDR {
            return format!("{a:#x}");
        }
        // The newest range that holds the address (a kernel may place a new
        // attach over an old one's place); else the nearest base below.
        let mine = || self.bases.iter().filter(|b| b.proc == p.0 && b.addr <= a);
        let best = mine()
            .rfind(|b| a - b.addr < b.len)
            .or_else(|| mine().filter(|b| a - b.addr < (1 << 32)).max_by_key(|b| b.addr));
        match best {
            Some(b) if b.addr == a => b.name.clone(),
            Some(b) => format!("{}+{:#x}", b.name, a - b.addr),
            None => "addr?".into(),
        }
    }

    fn add_base(&mut self, p: Proc, addr: u64, len: u64, prefix: &str) -> String {
        let name = format!("{prefix}{}", self.bases.len());
        self.bases.push(Base { proc: p.0, addr, len, name: name.clone() });
        name
    }

    fn ret_fact(r: &Result<i64, i32>) -> String {
        match r {
            Ok(v) => format!("{v}"),
            Err(e) => format!("{:?}", Errno::from_raw(*e)),
        }
    }

    fn ds_fact(&self, d: &ShmDsView) -> String {
        format!(
            "key={} uid={} gid={} cuid={} cgid={} mode={:o} seq={} segsz={} atime={} dtime={} ctime={} cpid={} lpid={} nattch={} unused={}",
            d.key,
            d.uid,
            d.gid,
            d.cuid,
            d.cgid,
            d.mode,
            d.seq,
            d.segsz,
            self.time_fact(d.atime),
            self.time_fact(d.dtime),
            self.time_fact(d.ctime),
            self.pid_fact(i64::from(d.cpid)),
            self.pid_fact(i64::from(d.lpid)),
            d.nattch,
            d.unused_or
        )
    }

    fn sem_ds_fact(&self, d: &SemDsView) -> String {
        format!(
            "key={} uid={} gid={} cuid={} cgid={} mode={:o} seq={} otime={} ctime={} nsems={} unused={}",
            d.key,
            d.uid,
            d.gid,
            d.cuid,
            d.cgid,
            d.mode,
            d.seq,
            self.time_fact(d.otime),
            self.time_fact(d.ctime),
            d.nsems,
            d.unused_or
        )
    }

    fn msg_ds_fact(&self, d: &MsgDsView) -> String {
        format!(
            "key={} uid={} gid={} cuid={} cgid={} mode={:o} seq={} stime={} rtime={} ctime={} cbytes={} qnum={} qbytes={} lspid={} lrpid={} unused={}",
            d.key,
            d.uid,
            d.gid,
            d.cuid,
            d.cgid,
            d.mode,
            d.seq,
            self.time_fact(d.stime),
            self.time_fact(d.rtime),
            self.time_fact(d.ctime),
            d.cbytes,
            d.qnum,
            d.qbytes,
            self.pid_fact(i64::from(d.lspid)),
            self.pid_fact(i64::from(d.lrpid)),
            d.unused_or
        )
    }

    /// The transcript's rendering of a reply's data (with a leading space).
    fn data_fact(&self, data: &Data) -> String {
        match data {
            Data::None | Data::Attached { .. } => String::new(),
            Data::ShmDs(d) => format!(" {{{}}}", self.ds_fact(d)),
            Data::Shminfo(i) => format!(" {i:?}"),
            Data::ShmInfo(i) => format!(" {i:?}"),
            Data::Bytes(b) => format!(" {b:?}"),
            Data::SemDs(d) => format!(" {{{}}}", self.sem_ds_fact(d)),
            Data::Seminfo(i) => format!(" {i:?}"),
            Data::Values(v) => format!(" {v:?}"),
            Data::Msg { mtype, text } => format!(" {{mtype={mtype} text={:?}}}", String::from_utf8_lossy(text)),
            Data::MsgDs(d) => format!(" {{{}}}", self.msg_ds_fact(d)),
            Data::Msginfo(i) => format!(" {i:?}"),
            Data::MqMsg { prio, text } => format!(" {{prio={prio} text={:?}}}", String::from_utf8_lossy(text)),
            Data::MqAttr { flags, maxmsg, msgsize, curmsgs } => {
                format!(" {{flags={flags:#o} maxmsg={maxmsg} msgsize={msgsize} curmsgs={curmsgs}}}")
            }
        }
    }

    fn call(&mut self, p: Proc, op: Op, what: String) -> Reply {
        let pid = self.pids[p.0];
        let r = self.backend.call(pid, &op);
        let reply = self.harness(r);
        let line = format!("P{} {what} -> {}{}", p.0, Self::ret_fact(&reply.ret), self.data_fact(&reply.data));
        self.transcript.push(line);
        reply
    }

    fn errno(r: &Reply) -> Res<i64> {
        r.ret.map_err(Errno::from_raw)
    }

    /// `shmget(key, size, flags)`.
    pub fn shmget(&mut self, p: Proc, key: i32, size: u64, flags: i32) -> Res<i32> {
        let r = self.call(p, Op::ShmGet { key, size, flags }, format!("shmget({key}, {size}, {flags:#o})"));
        Self::errno(&r).map(|v| i32::try_from(v).expect("shmid fits in int"))
    }

    /// `shmat(id, addr, flags)`: returns the address attached.
    pub fn shmat(&mut self, p: Proc, id: i32, addr: u64, flags: i32) -> Res<u64> {
        let what = format!("shmat({id}, {}, {flags:#o})", self.addr_fact(p, addr));
        let r = self.call(p, Op::ShmAt { id, addr, flags }, what);
        let a = Self::errno(&r).map(|v| u64::try_from(v).expect("address is non-negative"));
        if let Ok(a) = a {
            if a >= SMALL_ADDR {
                let len = match r.data {
                    Data::Attached { len } => len,
                    _ => 0,
                };
                self.add_base(p, a, len, "A");
            }
            let fact = self.addr_fact(p, a);
            if let Some(last) = self.transcript.last_mut() {
                *last = format!("{} @{fact}", last.rsplit_once(" -> ").map_or("", |x| x.0));
            }
        }
        a
    }

    /// `shmdt(addr)`.
    pub fn shmdt(&mut self, p: Proc, addr: u64) -> Res<()> {
        let what = format!("shmdt({})", self.addr_fact(p, addr));
        let r = self.call(p, Op::ShmDt { addr }, what);
        Self::errno(&r).map(drop)
    }

    /// `shmctl(id, cmd, NULL)` (IPC_RMID, SHM_LOCK, SHM_UNLOCK, or any
    /// command with a NULL buffer).
    pub fn shmctl(&mut self, p: Proc, id: i32, cmd: i32) -> Res<i64> {
        let r = self.call(p, Op::ShmCtl { id, cmd, buf: CtlBuf::Null }, format!("shmctl({id}, {cmd}, NULL)"));
        Self::errno(&r)
    }

    /// `shmctl(id, cmd, buf)` with `buf` a pointer to unmapped memory.
    pub fn shmctl_fault(&mut self, p: Proc, id: i32, cmd: i32) -> Res<i64> {
        let r = self.call(p, Op::ShmCtl { id, cmd, buf: CtlBuf::Fault }, format!("shmctl({id}, {cmd}, BADPTR)"));
        Self::errno(&r)
    }

    /// `shmctl(id, cmd, &ds)` for IPC_STAT, SHM_STAT, SHM_STAT_ANY: the
    /// return value and the structure.
    pub fn shmctl_stat(&mut self, p: Proc, id: i32, cmd: i32) -> Res<(i64, ShmDsView)> {
        let r = self.call(p, Op::ShmCtl { id, cmd, buf: CtlBuf::Out }, format!("shmctl({id}, {cmd}, &ds)"));
        let v = Self::errno(&r)?;
        match r.data {
            Data::ShmDs(d) => Ok((v, d)),
            other => panic!("shmctl stat returned {other:?}"),
        }
    }

    /// `shmctl(id, IPC_STAT, &ds)`: the structure.
    pub fn shm_stat(&mut self, p: Proc, id: i32) -> Res<ShmDsView> {
        self.shmctl_stat(p, id, uipc_abi::IPC_STAT).map(|(_, d)| d)
    }

    /// `shmctl(id, IPC_SET, &ds)` with uid, gid and mode set.
    pub fn shmctl_set(&mut self, p: Proc, id: i32, uid: u32, gid: u32, mode: u32) -> Res<i64> {
        let r = self.call(
            p,
            Op::ShmCtl { id, cmd: uipc_abi::IPC_SET, buf: CtlBuf::Set { uid, gid, mode } },
            format!("shmctl({id}, IPC_SET, {{uid={uid} gid={gid} mode={mode:o}}})"),
        );
        Self::errno(&r)
    }

    /// `shmctl(id, IPC_INFO, &info)`.
    pub fn shm_ipc_info(&mut self, p: Proc, id: i32) -> Res<(i64, ShminfoView)> {
        let r = self.call(
            p,
            Op::ShmCtl { id, cmd: uipc_abi::IPC_INFO, buf: CtlBuf::Out },
            format!("shmctl({id}, IPC_INFO, &info)"),
        );
        let v = Self::errno(&r)?;
        match r.data {
            Data::Shminfo(i) => Ok((v, i)),
            other => panic!("IPC_INFO returned {other:?}"),
        }
    }

    /// `shmctl(id, SHM_INFO, &info)`.
    pub fn shm_info(&mut self, p: Proc, id: i32) -> Res<(i64, ShmInfoView)> {
        let r = self.call(
            p,
            Op::ShmCtl { id, cmd: uipc_abi::SHM_INFO, buf: CtlBuf::Out },
            format!("shmctl({id}, SHM_INFO, &info)"),
        );
        let v = Self::errno(&r)?;
        match r.data {
            Data::ShmInfo(i) => Ok((v, i)),
            other => panic!("SHM_INFO returned {other:?}"),
        }
    }

    /// `munmap(addr, len)`.
    pub fn munmap(&mut self, p: Proc, addr: u64, len: u64) -> Res<()> {
        let what = format!("munmap({}, {len:#x})", self.addr_fact(p, addr));
        let r = self.call(p, Op::Munmap { addr, len }, what);
        Self::errno(&r).map(drop)
    }

    /// `mprotect(addr, len, prot)`.
    pub fn mprotect(&mut self, p: Proc, addr: u64, len: u64, prot: i32) -> Res<()> {
        let what = format!("mprotect({}, {len:#x}, {prot})", self.addr_fact(p, addr));
        let r = self.call(p, Op::Mprotect { addr, len, prot }, what);
        Self::errno(&r).map(drop)
    }

    /// Stores `bytes` at `addr` in process `p`.
    pub fn write(&mut self, p: Proc, addr: u64, bytes: &[u8]) -> Res<()> {
        let what = format!("write({}, {bytes:?})", self.addr_fact(p, addr));
        let r = self.call(p, Op::Write { addr, bytes: bytes.to_vec() }, what);
        Self::errno(&r).map(drop)
    }

    /// Loads `len` bytes from `addr` in process `p`.
    pub fn read(&mut self, p: Proc, addr: u64, len: u64) -> Res<Vec<u8>> {
        let what = format!("read({}, {len})", self.addr_fact(p, addr));
        let r = self.call(p, Op::Read { addr, len }, what);
        Self::errno(&r)?;
        match r.data {
            Data::Bytes(b) => Ok(b),
            other => panic!("read returned {other:?}"),
        }
    }

    /// Finds `len` bytes of unused address space in `p`, for explicit
    /// attach addresses. The region gets a name (`F0`, `F1`…) in the transcript.
    pub fn find_free(&mut self, p: Proc, len: u64) -> u64 {
        let pid = self.pids[p.0];
        let r = self.backend.call(pid, &Op::FindFree { len });
        let reply = self.harness(r);
        let a = u64::try_from(reply.ret.expect("FindFree cannot fail")).expect("address");
        let name = self.add_base(p, a, len, "F");
        self.transcript.push(format!("P{} find_free({len:#x}) -> {name}", p.0));
        a
    }

    /// `fork()` in `p`: returns the child.
    pub fn fork(&mut self, p: Proc) -> Proc {
        let child_pid = self.call(p, Op::Fork, "fork()".into()).ret.expect("fork failed");
        self.pids.push(u32::try_from(child_pid).expect("pid"));
        let c = Proc(self.pids.len() - 1);
        let inherited: Vec<Base> =
            self.bases.iter().filter(|b| b.proc == p.0).map(|b| Base { proc: c.0, ..b.clone() }).collect();
        self.bases.extend(inherited);
        if let Some(last) = self.transcript.last_mut() {
            *last = format!("P{} fork() -> P{}", p.0, c.0);
        }
        c
    }

    /// `execve()` in `p` (the process keeps its pid).
    pub fn exec(&mut self, p: Proc) {
        let r = self.call(p, Op::Exec, "exec()".into());
        r.ret.expect("exec failed");
    }

    /// `exit(0)` in `p`; returns once it is gone.
    pub fn exit(&mut self, p: Proc) {
        let r = self.call(p, Op::Exit, "exit()".into());
        r.ret.expect("exit failed");
    }

    /// SIGKILL to `p`; returns once it is gone.
    pub fn kill(&mut self, p: Proc) {
        let r = self.call(p, Op::Kill, "kill(SIGKILL)".into());
        r.ret.expect("kill failed");
    }

    /// `semget(key, nsems, flags)`.
    pub fn semget(&mut self, p: Proc, key: i32, nsems: i32, flags: i32) -> Res<i32> {
        let r = self.call(p, Op::SemGet { key, nsems, flags }, format!("semget({key}, {nsems}, {flags:#o})"));
        Self::errno(&r).map(|v| i32::try_from(v).expect("semid fits in int"))
    }

    fn sem_bufs(sops: &[(u16, i16, i16)]) -> Vec<SemBuf> {
        sops.iter().map(|&(num, op, flg)| SemBuf { num, op, flg }).collect()
    }

    fn semop_what(id: i32, sops: &[SemBuf], timeout: Option<Timeout>) -> String {
        let ops: Vec<String> = sops.iter().map(|b| format!("{{{}, {}, {:#o}}}", b.num, b.op, b.flg)).collect();
        let ops = ops.join(", ");
        match timeout {
            None => format!("semop({id}, [{ops}])"),
            Some(Timeout::Val { sec, nsec }) => format!("semtimedop({id}, [{ops}], {{{sec}, {nsec}}})"),
            Some(Timeout::Fault) => format!("semtimedop({id}, [{ops}], BADPTR)"),
        }
    }

    fn semop_op(&mut self, p: Proc, id: i32, sops: &[(u16, i16, i16)], timeout: Option<Timeout>) -> Res<i64> {
        let sops = Self::sem_bufs(sops);
        let what = Self::semop_what(id, &sops, timeout);
        let r = self.call(p, Op::SemOp { id, sops, timeout }, what);
        Self::errno(&r)
    }

    /// `semop(id, sops, nsops)` with `(sem_num, sem_op, sem_flg)` triples;
    /// a call that sleeps is a harness failure (use [`Session::semop_async`]).
    pub fn semop(&mut self, p: Proc, id: i32, sops: &[(u16, i16, i16)]) -> Res<i64> {
        self.semop_op(p, id, sops, None)
    }

    /// `semtimedop(id, sops, nsops, &{sec, nsec})` (`None`: a NULL timeout);
    /// may sleep until the timeout.
    pub fn semtimedop(&mut self, p: Proc, id: i32, sops: &[(u16, i16, i16)], timeout: Option<(i64, i64)>) -> Res<i64> {
        match timeout {
            Some((sec, nsec)) => self.semop_op(p, id, sops, Some(Timeout::Val { sec, nsec })),
            // semtimedop with NULL is semop; written as semop.
            None => self.semop_op(p, id, sops, None),
        }
    }

    /// `semtimedop(id, sops, nsops, timeout)` with `timeout` a pointer to
    /// unmapped memory.
    pub fn semtimedop_fault(&mut self, p: Proc, id: i32, sops: &[(u16, i16, i16)]) -> Res<i64> {
        self.semop_op(p, id, sops, Some(Timeout::Fault))
    }

    /// `semop` (or `semtimedop` with `timeout`) that may sleep: `None` once
    /// `p` is asleep inside the call (transcript "… blocks"; collect the
    /// result with [`Session::finish`]), `Some` if it completed at once.
    pub fn semop_async(
        &mut self,
        p: Proc,
        id: i32,
        sops: &[(u16, i16, i16)],
        timeout: Option<(i64, i64)>,
    ) -> Option<Res<i64>> {
        let timeout = timeout.map(|(sec, nsec)| Timeout::Val { sec, nsec });
        let sops = Self::sem_bufs(sops);
        let what = Self::semop_what(id, &sops, timeout);
        self.start_op(p, Op::SemOp { id, sops, timeout }, what).map(|r| Self::errno(&r))
    }

    /// Starts `op`, which may sleep: `None` once `p` is asleep in it
    /// (transcript "… blocks"), else its reply.
    fn start_op(&mut self, p: Proc, op: Op, what: String) -> Option<Reply> {
        let pid = self.pids[p.0];
        let r = self.backend.start(pid, &op);
        match self.harness(r) {
            Started::Done(reply) => {
                let line = format!("P{} {what} -> {}{}", p.0, Self::ret_fact(&reply.ret), self.data_fact(&reply.data));
                self.transcript.push(line);
                Some(reply)
            }
            Started::Blocked => {
                self.transcript.push(format!("P{} {what} blocks", p.0));
                self.asleep.insert(p.0, what);
                None
            }
        }
    }

    /// The result of the call `p` is asleep in (after [`Session::semop_async`]
    /// returned `None`): it must have been woken, timed out or interrupted.
    pub fn finish(&mut self, p: Proc) -> Res<i64> {
        let reply = self.finish_reply(p);
        Self::errno(&reply)
    }

    /// The reply of the call `p` is asleep in, recorded in the transcript.
    fn finish_reply(&mut self, p: Proc) -> Reply {
        let pid = self.pids[p.0];
        let r = self.backend.finish(pid);
        let reply = self.harness(r);
        let what = self.asleep.remove(&p.0).unwrap_or_else(|| "call".into());
        let line = format!("P{} {what} finished -> {}{}", p.0, Self::ret_fact(&reply.ret), self.data_fact(&reply.data));
        self.transcript.push(line);
        reply
    }

    /// The message `p`'s sleeping `msgrcv` (started with
    /// [`Session::msgrcv_async`]) got, or its errno.
    pub fn finish_msg(&mut self, p: Proc) -> Res<(i64, Vec<u8>)> {
        let reply = self.finish_reply(p);
        Self::msg_of(&reply)
    }

    fn msg_of(r: &Reply) -> Res<(i64, Vec<u8>)> {
        Self::errno(r)?;
        match &r.data {
            Data::Msg { mtype, text } => Ok((*mtype, text.clone())),
            other => panic!("msgrcv returned {other:?}"),
        }
    }

    fn msgsnd_what(id: i32, mtype: i64, text: &[u8], flags: i32) -> String {
        format!("msgsnd({id}, {{{mtype}, {:?}}}, {}, {flags:#o})", String::from_utf8_lossy(text), text.len())
    }

    /// `msgget(key, flags)`.
    pub fn msgget(&mut self, p: Proc, key: i32, flags: i32) -> Res<i32> {
        let r = self.call(p, Op::MsgGet { key, flags }, format!("msgget({key}, {flags:#o})"));
        Self::errno(&r).map(|v| i32::try_from(v).unwrap_or(-1))
    }

    /// `msgsnd(id, &{mtype, text}, len, flags)`; a call that sleeps is a
    /// harness failure (use [`Session::msgsnd_async`]).
    pub fn msgsnd(&mut self, p: Proc, id: i32, mtype: i64, text: &[u8], flags: i32) -> Res<i64> {
        let op = Op::MsgSnd { id, mtype, text: text.to_vec(), flags, fault: false };
        let r = self.call(p, op, Self::msgsnd_what(id, mtype, text, flags));
        Self::errno(&r)
    }

    /// `msgsnd` with `msgp` a pointer to unmapped memory and `len` bytes.
    pub fn msgsnd_fault(&mut self, p: Proc, id: i32, len: usize, flags: i32) -> Res<i64> {
        let op = Op::MsgSnd { id, mtype: 1, text: vec![0; len], flags, fault: true };
        let r = self.call(p, op, format!("msgsnd({id}, BADPTR, {len}, {flags:#o})"));
        Self::errno(&r)
    }

    /// `msgsnd` that may sleep: `None` once `p` is asleep in it (collect
    /// with [`Session::finish`]), `Some` if it completed at once.
    pub fn msgsnd_async(&mut self, p: Proc, id: i32, mtype: i64, text: &[u8], flags: i32) -> Option<Res<i64>> {
        let op = Op::MsgSnd { id, mtype, text: text.to_vec(), flags, fault: false };
        self.start_op(p, op, Self::msgsnd_what(id, mtype, text, flags)).map(|r| Self::errno(&r))
    }

    /// `msgrcv(id, buf, size, msgtyp, flags)`: `(mtype, text)`; a call that
    /// sleeps is a harness failure (use [`Session::msgrcv_async`]).
    pub fn msgrcv(&mut self, p: Proc, id: i32, size: u64, msgtyp: i64, flags: i32) -> Res<(i64, Vec<u8>)> {
        let op = Op::MsgRcv { id, size, msgtyp, flags, fault: false };
        let r = self.call(p, op, format!("msgrcv({id}, buf, {size}, {msgtyp}, {flags:#o})"));
        Self::msg_of(&r)
    }

    /// `msgrcv` into a pointer to unmapped memory.
    pub fn msgrcv_fault(&mut self, p: Proc, id: i32, size: u64, msgtyp: i64, flags: i32) -> Res<i64> {
        let op = Op::MsgRcv { id, size, msgtyp, flags, fault: true };
        let r = self.call(p, op, format!("msgrcv({id}, BADPTR, {size}, {msgtyp}, {flags:#o})"));
        Self::errno(&r)
    }

    /// `msgrcv` that may sleep: `None` once `p` is asleep in it (collect
    /// with [`Session::finish_msg`]), `Some` if it completed at once.
    pub fn msgrcv_async(
        &mut self,
        p: Proc,
        id: i32,
        size: u64,
        msgtyp: i64,
        flags: i32,
    ) -> Option<Res<(i64, Vec<u8>)>> {
        let op = Op::MsgRcv { id, size, msgtyp, flags, fault: false };
        let what = format!("msgrcv({id}, buf, {size}, {msgtyp}, {flags:#o})");
        self.start_op(p, op, what).map(|r| Self::msg_of(&r))
    }

    fn msg_cmd(cmd: i32) -> String {
        match cmd {
            uipc_abi::IPC_RMID => "IPC_RMID".into(),
            uipc_abi::IPC_SET => "IPC_SET".into(),
            uipc_abi::IPC_STAT => "IPC_STAT".into(),
            uipc_abi::IPC_INFO => "IPC_INFO".into(),
            uipc_abi::MSG_STAT => "MSG_STAT".into(),
            uipc_abi::MSG_INFO => "MSG_INFO".into(),
            uipc_abi::MSG_STAT_ANY => "MSG_STAT_ANY".into(),
            other => format!("{other}"),
        }
    }

    fn msgctl_op(&mut self, p: Proc, id: i32, cmd: i32, buf: MsgCtlBuf) -> Reply {
        let shown = match &buf {
            MsgCtlBuf::Null => "NULL".to_owned(),
            MsgCtlBuf::Out => "&buf".to_owned(),
            MsgCtlBuf::Fault => "BADPTR".to_owned(),
            MsgCtlBuf::Set { uid, gid, mode, qbytes } => {
                format!("{{uid={uid} gid={gid} mode={mode:o} qbytes={qbytes}}}")
            }
        };
        let what = format!("msgctl({id}, {}, {shown})", Self::msg_cmd(cmd));
        self.call(p, Op::MsgCtl { id, cmd, buf }, what)
    }

    /// `msgctl(id, cmd, NULL)` (IPC_RMID, unknown commands).
    pub fn msgctl(&mut self, p: Proc, id: i32, cmd: i32) -> Res<i64> {
        let r = self.msgctl_op(p, id, cmd, MsgCtlBuf::Null);
        Self::errno(&r)
    }

    /// `msgctl(id, cmd, BADPTR)`.
    pub fn msgctl_fault(&mut self, p: Proc, id: i32, cmd: i32) -> Res<i64> {
        let r = self.msgctl_op(p, id, cmd, MsgCtlBuf::Fault);
        Self::errno(&r)
    }

    /// `msgctl(id, cmd, &ds)` for IPC_STAT, MSG_STAT, MSG_STAT_ANY.
    pub fn msgctl_stat(&mut self, p: Proc, id: i32, cmd: i32) -> Res<(i64, MsgDsView)> {
        let r = self.msgctl_op(p, id, cmd, MsgCtlBuf::Out);
        let v = Self::errno(&r)?;
        match r.data {
            Data::MsgDs(d) => Ok((v, d)),
            other => panic!("msgctl stat returned {other:?}"),
        }
    }

    /// `msgctl(id, IPC_STAT, &ds)`.
    pub fn msg_stat(&mut self, p: Proc, id: i32) -> Res<MsgDsView> {
        self.msgctl_stat(p, id, uipc_abi::IPC_STAT).map(|(_, d)| d)
    }

    /// `msgctl(id, IPC_SET, &ds)` with these fields.
    pub fn msgctl_set(&mut self, p: Proc, id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> Res<i64> {
        let r = self.msgctl_op(p, id, uipc_abi::IPC_SET, MsgCtlBuf::Set { uid, gid, mode, qbytes });
        Self::errno(&r)
    }

    /// `msgctl(0, cmd, &info)` for IPC_INFO or MSG_INFO.
    pub fn msg_info(&mut self, p: Proc, cmd: i32) -> Res<(i64, uipc_abi::Msginfo)> {
        let r = self.msgctl_op(p, 0, cmd, MsgCtlBuf::Out);
        let v = Self::errno(&r)?;
        match r.data {
            Data::Msginfo(i) => Ok((v, i)),
            other => panic!("msgctl info returned {other:?}"),
        }
    }

    /// `mq_open(name, oflag, mode, attr)` as a C program calls it;
    /// `attr` is `(mq_maxmsg, mq_msgsize)` or NULL.
    pub fn mq_open(&mut self, p: Proc, name: &str, oflag: i32, mode: u32, attr: Option<(i64, i64)>) -> Res<Mqd> {
        self.mq_open_bytes(p, name.as_bytes(), oflag, mode, attr)
    }

    /// [`Session::mq_open`] with any bytes as the name (long names).
    pub fn mq_open_bytes(&mut self, p: Proc, name: &[u8], oflag: i32, mode: u32, attr: Option<(i64, i64)>) -> Res<Mqd> {
        let op = Op::MqOpen { name: name.to_vec(), oflag, mode, attr };
        let pid = self.pids[p.0];
        let r = self.backend.call(pid, &op);
        let reply = self.harness(r);
        let shown = Self::name_fact(name);
        let what = format!("mq_open({shown}, {oflag:#o}, {mode:#o}, {attr:?})");
        let res = Self::errno(&reply).map(|raw| {
            self.mqds += 1;
            Mqd { raw, label: Some(self.mqds - 1) }
        });
        let ret = match res {
            Ok(q) => q.fact(),
            Err(e) => format!("{e:?}"),
        };
        self.transcript.push(format!("P{} {what} -> {ret}", p.0));
        res
    }

    fn name_fact(name: &[u8]) -> String {
        if name.len() > 40 {
            format!("{:?}…({} bytes)", String::from_utf8_lossy(&name[..8]), name.len())
        } else {
            format!("{:?}", String::from_utf8_lossy(name))
        }
    }

    /// `mq_send(q, text, len, prio)`.
    pub fn mq_send(&mut self, p: Proc, q: Mqd, text: &[u8], prio: u32) -> Res<()> {
        self.mq_send_op(p, q, text, prio, None)
    }

    /// `mq_timedsend(q, text, len, prio, &{sec, nsec})` (absolute deadline).
    pub fn mq_timedsend(&mut self, p: Proc, q: Mqd, text: &[u8], prio: u32, deadline: (i64, i64)) -> Res<()> {
        self.mq_send_op(p, q, text, prio, Some(deadline))
    }

    fn mq_send_op(&mut self, p: Proc, q: Mqd, text: &[u8], prio: u32, deadline: Option<(i64, i64)>) -> Res<()> {
        let what = format!("mq_timedsend({}, {:?}, {prio}, {deadline:?})", q.fact(), String::from_utf8_lossy(text));
        let r = self.call(p, Op::MqSend { mqd: q.raw, text: text.to_vec(), prio, deadline }, what);
        Self::errno(&r).map(|_| ())
    }

    /// `mq_receive(q, buf, len, &prio)`: the message and its priority.
    pub fn mq_receive(&mut self, p: Proc, q: Mqd, len: u64) -> Res<(Vec<u8>, u32)> {
        self.mq_receive_op(p, q, len, None)
    }

    /// `mq_timedreceive(q, buf, len, &prio, &{sec, nsec})`.
    pub fn mq_timedreceive(&mut self, p: Proc, q: Mqd, len: u64, deadline: (i64, i64)) -> Res<(Vec<u8>, u32)> {
        self.mq_receive_op(p, q, len, Some(deadline))
    }

    fn mq_receive_op(&mut self, p: Proc, q: Mqd, len: u64, deadline: Option<(i64, i64)>) -> Res<(Vec<u8>, u32)> {
        let what = format!("mq_timedreceive({}, buf, {len}, {deadline:?})", q.fact());
        let r = self.call(p, Op::MqReceive { mqd: q.raw, len, deadline }, what);
        Self::mq_msg_of(&r)
    }

    /// `mq_send` that may sleep: `None` once `p` is asleep in it (collect
    /// with [`Session::finish`]), `Some` if it completed at once.
    pub fn mq_send_async(&mut self, p: Proc, q: Mqd, text: &[u8], prio: u32) -> Option<Res<()>> {
        let what = format!("mq_timedsend({}, {:?}, {prio}, None)", q.fact(), String::from_utf8_lossy(text));
        let op = Op::MqSend { mqd: q.raw, text: text.to_vec(), prio, deadline: None };
        self.start_op(p, op, what).map(|r| Self::errno(&r).map(|_| ()))
    }

    /// `mq_receive` that may sleep: `None` once `p` is asleep in it
    /// (collect with [`Session::finish_mq`]), `Some` if it completed at once.
    pub fn mq_receive_async(&mut self, p: Proc, q: Mqd, len: u64) -> Option<Res<(Vec<u8>, u32)>> {
        let what = format!("mq_timedreceive({}, buf, {len}, None)", q.fact());
        self.start_op(p, Op::MqReceive { mqd: q.raw, len, deadline: None }, what).map(|r| Self::mq_msg_of(&r))
    }

    /// The message `p`'s sleeping `mq_receive` (started with
    /// [`Session::mq_receive_async`]) got, or its errno.
    pub fn finish_mq(&mut self, p: Proc) -> Res<(Vec<u8>, u32)> {
        let reply = self.finish_reply(p);
        Self::mq_msg_of(&reply)
    }

    fn mq_msg_of(r: &Reply) -> Res<(Vec<u8>, u32)> {
        Self::errno(r)?;
        match &r.data {
            Data::MqMsg { prio, text } => Ok((text.clone(), *prio)),
            other => panic!("mq_receive returned {other:?}"),
        }
    }

    fn mq_getsetattr(&mut self, p: Proc, q: Mqd, new_flags: Option<i64>) -> Res<[i64; 4]> {
        let what = match new_flags {
            Some(f) => format!("mq_setattr({}, {{flags={f:#o}}})", q.fact()),
            None => format!("mq_getattr({})", q.fact()),
        };
        let r = self.call(p, Op::MqGetSetAttr { mqd: q.raw, new_flags }, what);
        Self::errno(&r)?;
        match r.data {
            Data::MqAttr { flags, maxmsg, msgsize, curmsgs } => Ok([flags, maxmsg, msgsize, curmsgs]),
            other => panic!("mq_getsetattr returned {other:?}"),
        }
    }

    /// `mq_getattr(q)`: `[mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs]`.
    pub fn mq_getattr(&mut self, p: Proc, q: Mqd) -> Res<[i64; 4]> {
        self.mq_getsetattr(p, q, None)
    }

    /// `mq_setattr(q, &{flags}, &old)`: the old attributes.
    pub fn mq_setattr(&mut self, p: Proc, q: Mqd, flags: i64) -> Res<[i64; 4]> {
        self.mq_getsetattr(p, q, Some(flags))
    }

    /// `mq_notify(q, sevp)`: `None` is NULL, else `(sigev_notify, sigev_signo)`.
    pub fn mq_notify(&mut self, p: Proc, q: Mqd, how: Option<(i32, i32)>) -> Res<()> {
        let what = format!("mq_notify({}, {how:?})", q.fact());
        let r = self.call(p, Op::MqNotify { mqd: q.raw, how }, what);
        Self::errno(&r).map(|_| ())
    }

    /// `mq_unlink(name)`.
    pub fn mq_unlink(&mut self, p: Proc, name: &str) -> Res<()> {
        self.mq_unlink_bytes(p, name.as_bytes())
    }

    /// [`Session::mq_unlink`] with any bytes as the name.
    pub fn mq_unlink_bytes(&mut self, p: Proc, name: &[u8]) -> Res<()> {
        let what = format!("mq_unlink({})", Self::name_fact(name));
        let r = self.call(p, Op::MqUnlink { name: name.to_vec() }, what);
        Self::errno(&r).map(|_| ())
    }

    /// `read(q, buf, 128)` of a descriptor not read before: the queue's
    /// status line (MQ-FS-3), with `NOTIFY_PID`'s pid as a process name.
    pub fn mq_read(&mut self, p: Proc, q: Mqd) -> Res<String> {
        let pid = self.pids[p.0];
        let r = self.backend.call(pid, &Op::MqRead { mqd: q.raw });
        let reply = self.harness(r);
        let res = Self::errno(&reply).map(|_| match reply.data {
            Data::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("read returned {other:?}"),
        });
        // The line's layout is compared as is, the pid by whom it names.
        let shown = match &res {
            Ok(line) => {
                let (head, tail) = line.split_once("NOTIFY_PID:").unwrap_or((line, ""));
                let owner = tail.trim().parse::<i64>().map_or_else(|_| tail.to_owned(), |n| self.pid_fact(n));
                format!("{} {head:?} NOTIFY_PID={owner} (width {})", line.len(), tail.len())
            }
            Err(e) => format!("{e:?}"),
        };
        self.transcript.push(format!("P{} read({}) -> {shown}", p.0, q.fact()));
        res
    }

    /// `mq_close(q)`.
    pub fn mq_close(&mut self, p: Proc, q: Mqd) -> Res<()> {
        let what = format!("mq_close({})", q.fact());
        let r = self.call(p, Op::MqClose { mqd: q.raw }, what);
        Self::errno(&r).map(|_| ())
    }

    /// Sends SIGUSR1 to `p` (handled, without SA_RESTART: a sleeping
    /// `semop` fails with `EINTR`; an idle process is unaffected).
    pub fn signal(&mut self, p: Proc) {
        let r = self.call(p, Op::Signal, "kill(SIGUSR1)".into());
        r.ret.expect("kill(SIGUSR1) failed");
    }

    fn sem_cmd(cmd: i32) -> String {
        let name = match cmd {
            uipc_abi::IPC_RMID => "IPC_RMID",
            uipc_abi::IPC_SET => "IPC_SET",
            uipc_abi::IPC_STAT => "IPC_STAT",
            uipc_abi::IPC_INFO => "IPC_INFO",
            uipc_abi::GETPID => "GETPID",
            uipc_abi::GETVAL => "GETVAL",
            uipc_abi::GETALL => "GETALL",
            uipc_abi::GETNCNT => "GETNCNT",
            uipc_abi::GETZCNT => "GETZCNT",
            uipc_abi::SETVAL => "SETVAL",
            uipc_abi::SETALL => "SETALL",
            uipc_abi::SEM_STAT => "SEM_STAT",
            uipc_abi::SEM_INFO => "SEM_INFO",
            uipc_abi::SEM_STAT_ANY => "SEM_STAT_ANY",
            other => return format!("{other}"),
        };
        name.into()
    }

    fn semctl_op(&mut self, p: Proc, id: i32, semnum: i32, cmd: i32, arg: SemArg, shown: &str) -> Reply {
        let what = format!("semctl({id}, {semnum}, {}{shown})", Self::sem_cmd(cmd));
        self.call(p, Op::SemCtl { id, semnum, cmd, arg }, what)
    }

    /// `semctl(id, semnum, cmd)` with no fourth argument (0): GETVAL,
    /// GETPID, GETNCNT, GETZCNT, IPC_RMID, unknown commands. GETPID's
    /// answer is written in the transcript as a process name.
    pub fn semctl(&mut self, p: Proc, id: i32, semnum: i32, cmd: i32) -> Res<i64> {
        let r = self.semctl_op(p, id, semnum, cmd, SemArg::None, "");
        if let (uipc_abi::GETPID, Ok(v)) = (cmd, r.ret) {
            let fact = self.pid_fact(v);
            if let Some(last) = self.transcript.last_mut() {
                *last = format!("{} -> pid:{fact}", last.rsplit_once(" -> ").map_or("", |x| x.0));
            }
        }
        Self::errno(&r)
    }

    /// `semctl(id, semnum, SETVAL, val)`.
    pub fn semctl_setval(&mut self, p: Proc, id: i32, semnum: i32, val: i32) -> Res<i64> {
        let r = self.semctl_op(p, id, semnum, uipc_abi::SETVAL, SemArg::Val(val), &format!(", {val}"));
        Self::errno(&r)
    }

    /// `semctl(id, 0, GETALL, array)`: the values.
    pub fn semctl_getall(&mut self, p: Proc, id: i32) -> Res<Vec<u16>> {
        let r = self.semctl_op(p, id, 0, uipc_abi::GETALL, SemArg::Out, ", &array");
        Self::errno(&r)?;
        match r.data {
            Data::Values(v) => Ok(v),
            other => panic!("GETALL returned {other:?}"),
        }
    }

    /// `semctl(id, 0, SETALL, array)` (a short array is padded with zeros).
    pub fn semctl_setall(&mut self, p: Proc, id: i32, values: &[u16]) -> Res<i64> {
        let r = self.semctl_op(p, id, 0, uipc_abi::SETALL, SemArg::Array(values.to_vec()), &format!(", {values:?}"));
        Self::errno(&r)
    }

    /// `semctl(id, 0, cmd, &ds)` for IPC_STAT, SEM_STAT, SEM_STAT_ANY: the
    /// return value and the structure.
    pub fn semctl_stat(&mut self, p: Proc, id: i32, cmd: i32) -> Res<(i64, SemDsView)> {
        let r = self.semctl_op(p, id, 0, cmd, SemArg::Out, ", &ds");
        let v = Self::errno(&r)?;
        match r.data {
            Data::SemDs(d) => Ok((v, d)),
            other => panic!("semctl stat returned {other:?}"),
        }
    }

    /// `semctl(id, 0, IPC_STAT, &ds)`: the structure.
    pub fn sem_stat(&mut self, p: Proc, id: i32) -> Res<SemDsView> {
        self.semctl_stat(p, id, uipc_abi::IPC_STAT).map(|(_, d)| d)
    }

    /// `semctl(id, 0, IPC_SET, &ds)` with uid, gid and mode set.
    pub fn semctl_set(&mut self, p: Proc, id: i32, uid: u32, gid: u32, mode: u32) -> Res<i64> {
        let shown = format!(", {{uid={uid} gid={gid} mode={mode:o}}}");
        let r = self.semctl_op(p, id, 0, uipc_abi::IPC_SET, SemArg::Set { uid, gid, mode }, &shown);
        Self::errno(&r)
    }

    /// `semctl(0, 0, cmd, &info)` for IPC_INFO or SEM_INFO.
    pub fn sem_info(&mut self, p: Proc, cmd: i32) -> Res<(i64, uipc_abi::Seminfo)> {
        let r = self.semctl_op(p, 0, 0, cmd, SemArg::Out, ", &info");
        let v = Self::errno(&r)?;
        match r.data {
            Data::Seminfo(i) => Ok((v, i)),
            other => panic!("semctl info returned {other:?}"),
        }
    }

    /// `semctl(id, semnum, cmd, arg)` with `arg` a pointer to unmapped memory.
    pub fn semctl_fault(&mut self, p: Proc, id: i32, semnum: i32, cmd: i32) -> Res<i64> {
        let r = self.semctl_op(p, id, semnum, cmd, SemArg::Fault, ", BADPTR");
        Self::errno(&r)
    }

    /// Writes a namespace sysctl (`kernel.shmmni`…) as the namespace's root.
    pub fn sysctl_set(&mut self, name: &str, value: &str) -> Res<()> {
        let r = self.backend.sysctl_set(name, value);
        let r = self.harness(r);
        self.transcript.push(format!("sysctl {name}={value} -> {}", Self::ret_fact(&r.map(|()| 0))));
        r.map_err(Errno::from_raw)
    }

    /// Reads a namespace sysctl.
    pub fn sysctl_get(&mut self, name: &str) -> Res<String> {
        let r = self.backend.sysctl_get(name);
        let r = self.harness(r);
        self.transcript.push(format!("sysctl {name} -> {r:?}"));
        r.map_err(Errno::from_raw)
    }
}
