//! Round trips of every message, and the decoder's refusals.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use uipc_proto::{decode, encode, CtlOut, PermSet, ProtoError, Request, Response, MAX_FRAME};

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), "[a-z0-9-]{0,40}").prop_map(|(version, namespace)| Request::Hello { version, namespace }),
        (any::<i32>(), any::<u64>(), any::<i32>()).prop_map(|(key, size, flags)| Request::ShmGet { key, size, flags }),
        (any::<i32>(), any::<u64>(), any::<i32>()).prop_map(|(id, addr, flags)| Request::ShmAt { id, addr, flags }),
        (any::<u64>(), any::<Result<u64, i32>>()).prop_map(|(token, result)| Request::ShmAtDone { token, result }),
        any::<u64>().prop_map(|addr| Request::ShmDt { addr }),
        (any::<u64>(), any::<u64>()).prop_map(|(addr, len)| Request::Munmap { addr, len }),
        (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(addr, len, prot)| Request::Mprotect { addr, len, prot }),
        (any::<i32>(), any::<i32>(), any::<Option<(u32, u32, u32)>>()).prop_map(|(id, cmd, set)| Request::ShmCtl {
            id,
            cmd,
            set: set.map(|(uid, gid, mode)| PermSet { uid, gid, mode })
        }),
        any::<u32>().prop_map(|child| Request::Forked { child }),
        Just(Request::Exec),
        Just(Request::Sync),
        Just(Request::Cancel),
        Just(Request::Waiters),
        (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(|(key, nsems, flags)| Request::SemGet {
            key,
            nsems,
            flags
        }),
        (any::<i32>(), any::<u32>(), any::<Option<Vec<(u16, i16, i16)>>>(), any::<Option<(i64, i64)>>())
            .prop_map(|(id, nsops, sops, timeout)| Request::SemOp { id, nsops, sops, timeout }),
        (any::<i32>(), any::<i32>(), any::<i32>(), any::<Option<Vec<u16>>>()).prop_map(|(id, semnum, cmd, a)| {
            Request::SemCtl { id, semnum, cmd, arg: uipc_proto::SemCtlArg::Array(a) }
        }),
        ".{0,50}".prop_map(|name| Request::SysctlRead { name }),
        (".{0,50}", ".{0,50}").prop_map(|(name, value)| Request::SysctlWrite { name, value }),
        ".{0,10}".prop_map(|which| Request::ProcSysvipc { which }),
        (any::<u16>(), "[a-z0-9-]{0,40}").prop_map(|(version, namespace)| Request::Join { version, namespace }),
        (".{0,20}", any::<u32>(), prop::collection::vec((".{0,20}", ".{0,20}"), 0..4), any::<bool>())
            .prop_map(|(name, mode, sysctls, ephemeral)| Request::NsCreate { name, mode, sysctls, ephemeral }),
        Just(Request::NsList),
        ".{0,20}".prop_map(|name| Request::NsShow { name }),
        ".{0,20}".prop_map(|name| Request::NsRemove { name }),
        any::<bool>().prop_map(|newipc| Request::Unshare { newipc }),
        any::<u32>().prop_map(|tid| Request::Recheck { tid }),
        any::<u32>().prop_map(|pid| Request::NsOf { pid }),
        any::<i32>().prop_map(|id| Request::SemGrant { id }),
        any::<i32>().prop_map(|id| Request::MsgGrant { id }),
        any::<u64>().prop_map(|handle| Request::MqGrant { handle }),
        (any::<i32>(), any::<i32>(), any::<bool>()).prop_map(|(id, cmd, region)| Request::ShmStat { id, cmd, region }),
        (any::<i32>(), any::<i32>(), any::<u64>()).prop_map(|(id, flags, at)| Request::ShmAttach { id, flags, at }),
        (any::<i32>(), any::<i32>()).prop_map(|(key, flags)| Request::MsgGet { key, flags }),
        (any::<i32>(), any::<Option<i64>>(), any::<i64>(), any::<Option<Vec<u8>>>(), any::<i32>())
            .prop_map(|(id, mtype, msgsz, text, flags)| Request::MsgSnd { id, mtype, msgsz, text, flags }),
        (any::<i32>(), any::<i64>(), any::<i64>(), any::<i32>(), any::<bool>())
            .prop_map(|(id, msgsz, msgtyp, flags, readable)| Request::MsgRcv { id, msgsz, msgtyp, flags, readable }),
        (any::<i32>(), any::<i32>(), any::<Option<(u32, u32, u32, u64)>>()).prop_map(|(id, cmd, set)| {
            Request::MsgCtl {
                id,
                cmd,
                set: set
                    .map(|(uid, gid, mode, qbytes)| uipc_proto::MsgSetArg { perm: PermSet { uid, gid, mode }, qbytes }),
            }
        }),
        (prop::collection::vec(any::<u8>(), 0..300), any::<i32>(), any::<u32>(), any::<u32>())
            .prop_map(|(name, oflag, mode, umask)| Request::PshmOpen { name, oflag, mode, umask }),
        (prop::collection::vec(any::<u8>(), 0..300), any::<i32>(), any::<(u32, u32, u32)>())
            .prop_map(|(name, oflag, (mode, umask, value))| Request::SemOpen { name, oflag, mode, umask, value }),
        (prop::collection::vec(any::<u8>(), 0..300), any::<bool>())
            .prop_map(|(name, sem)| Request::PshmUnlink { name, sem }),
        Just(Request::PshmList),
        mq_request(),
    ]
}

fn mq_request() -> impl Strategy<Value = Request> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        (bytes(), any::<i32>(), any::<u32>(), any::<Option<(i64, i64)>>())
            .prop_map(|(name, oflag, mode, attr)| Request::MqOpen { name, oflag, mode, attr }),
        any::<u64>().prop_map(|handle| Request::MqClose { handle }),
        any::<u64>().prop_map(|handle| Request::MqDup { handle }),
        bytes().prop_map(|name| Request::MqUnlink { name }),
        (any::<u64>(), bytes(), any::<u32>(), any::<Option<(i64, i64)>>())
            .prop_map(|(handle, msg, prio, deadline)| Request::MqSend { handle, msg, prio, deadline }),
        (any::<u64>(), any::<u64>(), any::<Option<(i64, i64)>>())
            .prop_map(|(handle, len, deadline)| Request::MqReceive { handle, len, deadline }),
        (any::<u64>(), any::<Option<(i32, i32, u64)>>()).prop_map(|(handle, how)| Request::MqNotify { handle, how }),
        (any::<u64>(), any::<Option<i64>>())
            .prop_map(|(handle, new_flags)| Request::MqGetSetAttr { handle, new_flags }),
        any::<u64>().prop_map(|handle| Request::MqStatus { handle }),
        Just(Request::MqList),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u16>().prop_map(|version| Response::Welcome { version }),
        any::<i64>().prop_map(Response::Value),
        any::<i32>().prop_map(Response::Error),
        (any::<u64>(), any::<u64>(), any::<Option<u64>>(), any::<(bool, bool, bool)>()).prop_map(
            |(token, size, addr, (write, exec, remap))| Response::Attach { token, size, addr, write, exec, remap }
        ),
        prop::collection::vec(any::<(u64, u64)>(), 0..10).prop_map(Response::Unmap),
        any::<i64>().prop_map(|ret| Response::Ctl { ret, out: CtlOut::None }),
        ".{0,100}".prop_map(Response::Text),
        (
            ".{0,20}",
            any::<(u32, u32, u32, bool)>(),
            any::<(u32, u32, u64, u32, u32)>(),
            prop::collection::vec((".{0,20}", ".{0,20}"), 0..4)
        )
            .prop_map(|(name, (uid, gid, mode, ephemeral), (processes, shm, shm_bytes, sem, msg), sysctls)| {
                Response::Namespace(uipc_proto::NsInfo {
                    name,
                    uid,
                    gid,
                    mode,
                    ephemeral,
                    processes,
                    shm,
                    shm_bytes,
                    sem,
                    msg,
                    sysctls,
                })
            }),
        prop::collection::vec(".{0,20}".prop_map(|name| uipc_proto::NsInfo { name, ..Default::default() }), 0..4)
            .prop_map(Response::Namespaces),
        (any::<i64>(), any::<Vec<u8>>()).prop_map(|(mtype, data)| Response::Msg { mtype, data }),
        (any::<i64>(), any::<(i64, u64, u64, i32, i32)>()).prop_map(|(ret, (stime, cbytes, qbytes, lspid, lrpid))| {
            let ds = uipc_abi::Msqid64Ds {
                msg_stime: stime,
                msg_cbytes: cbytes,
                msg_qbytes: qbytes,
                msg_lspid: lspid,
                msg_lrpid: lrpid,
                ..Default::default()
            };
            Response::MsgCtl { ret, out: uipc_proto::MsgOut::MsgDs(ds) }
        }),
        (any::<i64>(), any::<(i32, i32, i32, u16)>()).prop_map(|(ret, (msgpool, msgmap, msgtql, msgseg))| {
            let info = uipc_abi::Msginfo { msgpool, msgmap, msgtql, msgseg, ..Default::default() };
            Response::MsgCtl { ret, out: uipc_proto::MsgOut::Msginfo(info) }
        }),
        Just(Response::Fd),
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..40), any::<(u32, u32, u32, u64, i64, i64)>()).prop_map(
                |(name, (uid, gid, mode, size, mtime, ctime))| uipc_proto::PshmInfo {
                    name,
                    uid,
                    gid,
                    mode,
                    size,
                    mtime,
                    ctime
                }
            ),
            0..4
        )
        .prop_map(Response::PshmObjects),
        any::<u64>().prop_map(|handle| Response::MqOpened { handle }),
        any::<(i64, i64, i64, i64)>().prop_map(|(flags, maxmsg, msgsize, curmsgs)| Response::MqAttr {
            flags,
            maxmsg,
            msgsize,
            curmsgs
        }),
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..20), any::<(u32, u32, u32)>(), any::<(i64, i64, i64, u64, i64)>())
                .prop_map(|(name, (uid, gid, mode), (maxmsg, msgsize, curmsgs, qsize, mtime))| uipc_proto::MqInfo {
                    name,
                    uid,
                    gid,
                    mode,
                    maxmsg,
                    msgsize,
                    curmsgs,
                    qsize,
                    mtime
                }),
            0..4
        )
        .prop_map(Response::MqList),
        (any::<(bool, bool)>(), any::<u32>(), any::<Option<u32>>())
            .prop_map(|((alter, read), perm_version, slot)| Response::SemGrant { alter, read, perm_version, slot }),
        (any::<bool>(), any::<u32>()).prop_map(|(receive, perm_version)| Response::MsgGrant { receive, perm_version }),
        (any::<(bool, bool)>(), any::<u32>()).prop_map(|((read, write), perm_version)| Response::MqGrant {
            read,
            write,
            perm_version
        }),
        (any::<i64>(), any::<(i32, u32, u64, i64, i32, u64)>(), any::<u32>()).prop_map(
            |(ret, (key, mode, segsz, atime, lpid, nattch), perm_version)| {
                let mut ds = uipc_abi::Shmid64Ds {
                    shm_segsz: segsz,
                    shm_atime: atime,
                    shm_lpid: lpid,
                    shm_nattch: nattch,
                    ..Default::default()
                };
                ds.shm_perm.key = key;
                ds.shm_perm.mode = mode;
                Response::ShmStat { ret, ds, perm_version }
            }
        ),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in arb_request()) {
        let bytes = encode(&req).unwrap();
        let (back, used) = decode::<Request>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, req);
        prop_assert_eq!(used, bytes.len());
        // Every strict prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode::<Request>(&bytes[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn responses_round_trip(resp in arb_response()) {
        let bytes = encode(&resp).unwrap();
        let (back, _) = decode::<Response>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, resp);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<Request>(&bytes);
        let _ = decode::<Response>(&bytes);
    }
}

#[test]
fn oversized_length_is_refused_before_reading_the_payload() {
    let mut bytes = u32::try_from(MAX_FRAME + 1).unwrap().to_le_bytes().to_vec();
    bytes.push(0);
    assert_eq!(decode::<Request>(&bytes), Err(ProtoError::TooLarge(MAX_FRAME + 1)));
    assert_eq!(decode::<Request>(&u32::MAX.to_le_bytes()), Err(ProtoError::TooLarge(u32::MAX as usize)));
}

#[test]
fn trailing_bytes_and_bad_tags_are_malformed() {
    let mut bytes = encode(&Request::ShmDt { addr: 4096 }).unwrap();
    bytes[0] += 1;
    bytes.push(0);
    assert_eq!(decode::<Request>(&bytes), Err(ProtoError::Malformed));
    assert_eq!(decode::<Request>(&[1, 0, 0, 0, 250]), Err(ProtoError::Malformed));
    // A string length beyond the frame.
    assert_eq!(decode::<Request>(&[3, 0, 0, 0, 9, 0xff, 0x7f]), Err(ProtoError::Malformed));
}
