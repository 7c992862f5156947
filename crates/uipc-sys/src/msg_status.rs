//! The message queues' status region: what `msgctl(IPC_STAT)` reports of
//! every queue, and what `msgctl(IPC_INFO/MSG_INFO)` report of the
//! namespace, in a [`status_region`](crate::status_region)
//! (`docs/architecture.md`, "Queries without a round trip").
//!
//! Entry (words after the slot's count and presence word): full id,
//! permission version, `msg_perm` (7 words), `live`, then `msg_qbytes`,
//! `msg_qnum`, `msg_cbytes` (2 words each), `msg_lspid`, `msg_lrpid`,
//! `msg_stime`, `msg_rtime`, `msg_ctime` (2 words each). `live` is 1 while
//! the queue has a state page some process may write: its fast-path
//! sends and receives then change the counts, pids and times in the page
//! without the daemon, and the entry holds only the daemon's last copy.
//!
//! Header: [`MsgHeader`].

use uipc_abi::Msqid64Ds;

use crate::state_page::Kind;
use crate::status_region::{put_perm, take_perm, Layout, Put, StatusRegion, Take, Words};

/// What an entry says of one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgEntry {
    /// The queue's full id.
    pub id: i32,
    /// Its permission version (unique in the namespace; `IPC_SET` changes it).
    pub perm_version: u32,
    /// Whether fast paths may have changed the queue since (see the
    /// module documentation).
    pub live: bool,
    /// What `IPC_STAT` reports, as the daemon last knew it.
    pub ds: Msqid64Ds,
}

impl Words for MsgEntry {
    const WORDS: usize = 24;

    fn encode(&self, w: &mut Put<'_>) {
        w.i32(self.id);
        w.u32(self.perm_version);
        put_perm(w, &self.ds.msg_perm);
        w.u32(u32::from(self.live));
        w.u64(self.ds.msg_qbytes);
        w.u64(self.ds.msg_qnum);
        w.u64(self.ds.msg_cbytes);
        w.i32(self.ds.msg_lspid);
        w.i32(self.ds.msg_lrpid);
        w.i64(self.ds.msg_stime);
        w.i64(self.ds.msg_rtime);
        w.i64(self.ds.msg_ctime);
    }

    fn decode(r: &mut Take<'_>) -> Self {
        let id = r.i32();
        let perm_version = r.u32();
        let msg_perm = take_perm(r);
        let live = r.u32() != 0;
        let ds = Msqid64Ds {
            msg_perm,
            msg_qbytes: r.u64(),
            msg_qnum: r.u64(),
            msg_cbytes: r.u64(),
            msg_lspid: r.i32(),
            msg_lrpid: r.i32(),
            msg_stime: r.i64(),
            msg_rtime: r.i64(),
            msg_ctime: r.i64(),
            ..Msqid64Ds::default()
        };
        MsgEntry { id, perm_version, live, ds }
    }
}

/// What `msgctl(IPC_INFO)` and `msgctl(MSG_INFO)` report of a namespace
/// (`ipc/msg.c:msgctl_info()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgHeader {
    /// `kernel.msgmax`, `kernel.msgmnb`, `kernel.msgmni`.
    pub limits: [i32; 3],
    /// Queues in use (`msgpool`).
    pub queues: u32,
    /// Messages and bytes queued (`msgmap`, `msgtql`) as of the daemon's
    /// last look at every queue.
    pub msgs: u64,
    /// See `msgs`.
    pub bytes: u64,
    /// The highest index in use, or `-1`.
    pub max_idx: i32,
    /// How many queues are live: while any is, `msgs` and `bytes` may be
    /// stale and `MSG_INFO` is the daemon's.
    pub live: u32,
}

impl Words for MsgHeader {
    const WORDS: usize = 10;

    fn encode(&self, w: &mut Put<'_>) {
        for v in self.limits {
            w.i32(v);
        }
        w.u32(self.queues);
        w.u64(self.msgs);
        w.u64(self.bytes);
        w.i32(self.max_idx);
        w.u32(self.live);
    }

    fn decode(r: &mut Take<'_>) -> Self {
        let limits = [r.i32(), r.i32(), r.i32()];
        MsgHeader { limits, queues: r.u32(), msgs: r.u64(), bytes: r.u64(), max_idx: r.i32(), live: r.u32() }
    }
}

/// The message queues' layout.
#[derive(Debug)]
pub struct MsgLayout;

impl Layout for MsgLayout {
    const KIND: Kind = Kind::MsgStatus;
    type Entry = MsgEntry;
    type Header = MsgHeader;
}

/// A namespace's message queue status region, mapped.
pub type MsgStatus = StatusRegion<MsgLayout>;
