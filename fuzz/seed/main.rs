//! Writes one valid frame per message variant into `<dir>/decode_request/`
//! and `<dir>/decode_response/` (the fuzzers' seed corpora).

use std::path::Path;
use uipc_abi::{ShmInfo, Shmid64Ds, Shminfo64};
use uipc_proto::{encode, CtlOut, PermSet, Request, Response, VERSION};

fn write<T: serde::Serialize>(dir: &Path, name: &str, msg: &T) {
    let frame = encode(msg).expect("seed message encodes");
    std::fs::write(dir.join(name), frame).expect("write seed");
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    let root = Path::new(&root);
    let rq = root.join("decode_request");
    let rs = root.join("decode_response");
    std::fs::create_dir_all(&rq).expect("mkdir");
    std::fs::create_dir_all(&rs).expect("mkdir");

    let requests: Vec<(&str, Request)> = vec![
        ("hello", Request::Hello { version: VERSION, namespace: "default".into() }),
        ("shmget", Request::ShmGet { key: 0x1234, size: 4096, flags: 0o1666 }),
        ("shmget_neg", Request::ShmGet { key: -1, size: u64::MAX, flags: i32::MIN }),
        ("shmat", Request::ShmAt { id: 7, addr: 0x7f00_0000_0000, flags: 0o10000 }),
        ("shmatdone_ok", Request::ShmAtDone { token: 42, result: Ok(0x7f00_0000_1000) }),
        ("shmatdone_err", Request::ShmAtDone { token: 43, result: Err(12) }),
        ("shmdt", Request::ShmDt { addr: 0x7f00_0000_1000 }),
        ("munmap", Request::Munmap { addr: 0x1000, len: 0x2000 }),
        ("mprotect", Request::Mprotect { addr: 0x1000, len: 0x2000, prot: 1 }),
        ("unshare", Request::Unshare { newipc: true }),
        ("recheck", Request::Recheck { tid: 1 }),
        ("nsof", Request::NsOf { pid: 1 }),
        ("sem_grant", Request::SemGrant { id: 32768 }),
        ("msg_grant", Request::MsgGrant { id: 32768 }),
        ("shm_stat", Request::ShmStat { id: 32768, cmd: 2, region: true }),
        ("shm_stat_idx", Request::ShmStat { id: 0, cmd: 13, region: false }),
        ("shm_attach", Request::ShmAttach { id: 7, flags: 0o10000, at: 0x7f00_0000_0000 }),
        ("msgget", Request::MsgGet { key: 42, flags: 0o1666 }),
        ("msgsnd", Request::MsgSnd { id: 0, mtype: Some(1), msgsz: 3, text: Some(b"abc".to_vec()), flags: 0 }),
        ("msgrcv", Request::MsgRcv { id: 0, msgsz: 64, msgtyp: -5, flags: 0o10000, readable: true }),
        ("msgctl", Request::MsgCtl { id: 0, cmd: 1, set: Some(uipc_proto::MsgSetArg { perm: uipc_proto::PermSet { uid: 0, gid: 0, mode: 0o600 }, qbytes: 100 }) }),
        ("pshm_open", Request::PshmOpen { name: b"/psql.123".to_vec(), oflag: 0o302, mode: 0o600, umask: 0o022 }),
        ("sem_open", Request::SemOpen { name: b"/mp-x".to_vec(), oflag: 0o300, mode: 0o600, umask: 0o022, value: 1 }),
        ("pshm_unlink", Request::PshmUnlink { name: b"/psql.123".to_vec(), sem: false }),
        ("pshm_list", Request::PshmList),
        ("mq_open", Request::MqOpen { name: b"q".to_vec(), oflag: 0o102, mode: 0o600, attr: Some((10, 8192)) }),
        ("mq_send", Request::MqSend { handle: 1, msg: b"hello".to_vec(), prio: 5, deadline: Some((1, 999_999_999)) }),
        ("mq_receive", Request::MqReceive { handle: 1, len: 8192, deadline: None }),
        ("mq_notify", Request::MqNotify { handle: 1, how: Some((0, 10, 42)) }),
        ("mq_getsetattr", Request::MqGetSetAttr { handle: 1, new_flags: Some(0o4000) }),
        ("mq_unlink", Request::MqUnlink { name: b"q".to_vec() }),
        ("shmctl", Request::ShmCtl { id: 3, cmd: 2, set: None }),
        ("shmctl_set", Request::ShmCtl { id: 3, cmd: 1, set: Some(PermSet { uid: 1000, gid: 100, mode: 0o600 }) }),
        ("forked", Request::Forked { child: 4242 }),
        ("sysctl_read", Request::SysctlRead { name: "kernel.shmmni".into() }),
        ("sysctl_write", Request::SysctlWrite { name: "kernel.shmmax".into(), value: "18446744073692774399\n".into() }),
        ("proc_sysvipc", Request::ProcSysvipc { which: "shm".into() }),
        ("once", Request::Once { client: u64::MAX, seq: 1 }),
    ];
    for (name, req) in &requests {
        write(&rq, name, req);
    }

    let responses: Vec<(&str, Response)> = vec![
        ("welcome", Response::Welcome { version: VERSION }),
        ("sem_grant", Response::SemGrant { alter: true, read: true, perm_version: 3, slot: Some(0) }),
        ("msg_grant", Response::MsgGrant { receive: true, perm_version: 2 }),
        ("shm_stat", Response::ShmStat { ret: 32768, ds: uipc_abi::Shmid64Ds { shm_segsz: 4096, shm_nattch: 2, ..Default::default() }, perm_version: 7 }),
        ("value", Response::Value(-1)),
        ("value_big", Response::Value(i64::MAX)),
        ("error", Response::Error(22)),
        (
            "attach",
            Response::Attach { token: 9, size: 8192, addr: Some(0x7f00_0000_0000), write: true, exec: false, remap: true },
        ),
        ("attach_any", Response::Attach { token: 10, size: 1, addr: None, write: false, exec: true, remap: false }),
        ("unmap", Response::Unmap(vec![(0x1000, 0x3000), (0x8000, 0x9000)])),
        ("unmap_empty", Response::Unmap(Vec::new())),
        ("ctl_none", Response::Ctl { ret: 0, out: CtlOut::None }),
        ("ctl_shmds", Response::Ctl { ret: 0, out: CtlOut::ShmDs(Shmid64Ds::default()) }),
        ("ctl_shminfo", Response::Ctl { ret: 4095, out: CtlOut::Shminfo(Shminfo64::default()) }),
        ("ctl_shm_info", Response::Ctl { ret: 2, out: CtlOut::ShmInfo(ShmInfo::default()) }),
        ("text", Response::Text("4096\n".into())),
        ("fd", Response::Fd),
        (
            "pshm_objects",
            Response::PshmObjects(vec![uipc_proto::PshmInfo {
                name: b"sem.x".to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o644,
                size: 32,
                mtime: 1,
                ctime: 2,
            }]),
        ),
        ("mq_opened", Response::MqOpened { handle: 3 }),
        ("mq_attr", Response::MqAttr { flags: 0o4000, maxmsg: 10, msgsize: 8192, curmsgs: 1 }),
        ("text_proc", Response::Text("       key      shmid perms size\n      4660          0   666 4096\n".into())),
    ];
    for (name, resp) in &responses {
        write(&rs, name, resp);
    }
    println!("seeded {} requests and {} responses under {}", requests.len(), responses.len(), root.display());
}
