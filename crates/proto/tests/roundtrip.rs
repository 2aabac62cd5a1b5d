//! Property tests: everything the crate encodes decodes back to the same
//! value, and no input, however mangled, makes a decoder panic.

use std::fmt::Debug;

use bytes::BytesMut;
use corral_proto::records::*;
use corral_proto::request::{CreateKind, CreateOp, MultiOp, ReadOp, Request};
use corral_proto::response::{
    read_multi_response, write_multi_response, MultiResponseItem, Response,
};
use corral_proto::{
    decode_frame, decode_reply, decode_request, encode_reply_record, Acl, ErrorCode, Id,
    JuteReader, OpCode, Stat,
};
use proptest::collection::vec;
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "/[a-z0-9/._-]{0,12}", "\\PC{0,6}"]
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(string())
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(string(), 0..4)
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

/// Znode data, which may be null.
fn opt_data() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(data())
}

fn stat() -> impl Strategy<Value = Stat> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<i32>(), any::<i32>(), any::<i32>()),
        (any::<i64>(), any::<i32>(), any::<i32>(), any::<i64>()),
    )
        .prop_map(
            |(
                (czxid, mzxid, ctime, mtime),
                (version, cversion, aversion),
                (ephemeral_owner, data_length, num_children, pzxid),
            )| Stat {
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                ephemeral_owner,
                data_length,
                num_children,
                pzxid,
            },
        )
}

fn id() -> impl Strategy<Value = Id> {
    (string(), string()).prop_map(|(scheme, id)| Id { scheme, id })
}

fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec(
        (any::<i32>(), id()).prop_map(|(perms, id)| Acl { perms, id }),
        0..3,
    )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    (-130i32..=0).prop_filter_map("known code", ErrorCode::from_code)
}

/// Encodes `value`, decodes it back, and checks equality and that every byte
/// was consumed.
fn assert_round_trip<T: Record + PartialEq + Debug>(value: &T) {
    let bytes = encode_record(value);
    let mut r = JuteReader::new(&bytes, MAX);
    let back = T::read(&mut r).expect("decodes");
    assert_eq!(&back, value);
    assert_eq!(r.expect_end(), Ok(()));
}

macro_rules! round_trip_tests {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(value in $strategy) {
                    assert_round_trip(&value);
                }
            )*
        }
    };
}

round_trip_tests! {
    stat_round_trips: stat();
    id_round_trips: id();
    acl_round_trips: acls().prop_filter_map("one", |a| a.into_iter().next());
    connect_request_round_trips: (any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>(), data(), proptest::option::of(any::<bool>()))
        .prop_map(|(protocol_version, last_zxid_seen, timeout_ms, session_id, passwd, read_only)| ConnectRequest {
            protocol_version, last_zxid_seen, timeout_ms, session_id, passwd, read_only,
        });
    connect_response_round_trips: (any::<i32>(), any::<i32>(), any::<i64>(), data(), proptest::option::of(any::<bool>()))
        .prop_map(|(protocol_version, timeout_ms, session_id, passwd, read_only)| ConnectResponse {
            protocol_version, timeout_ms, session_id, passwd, read_only,
        });
    request_header_round_trips: (any::<i32>(), any::<i32>()).prop_map(|(xid, opcode)| RequestHeader { xid, opcode });
    reply_header_round_trips: (any::<i32>(), any::<i64>(), any::<i32>()).prop_map(|(xid, zxid, err)| ReplyHeader { xid, zxid, err });
    multi_header_round_trips: (any::<i32>(), any::<bool>(), any::<i32>()).prop_map(|(opcode, done, err)| MultiHeader { opcode, done, err });
    auth_packet_round_trips: (any::<i32>(), string(), opt_data()).prop_map(|(auth_type, scheme, auth)| AuthPacket { auth_type, scheme, auth });
    watcher_event_round_trips: (any::<i32>(), any::<i32>(), string()).prop_map(|(event_type, state, path)| WatcherEvent { event_type, state, path });
    error_response_round_trips: any::<i32>().prop_map(|err| ErrorResponse { err });
    create_request_round_trips: (string(), opt_data(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest { path, data, acl, flags });
    create_ttl_request_round_trips: (string(), opt_data(), acls(), any::<i32>(), any::<i64>())
        .prop_map(|(path, data, acl, flags, ttl)| CreateTtlRequest { path, data, acl, flags, ttl });
    create_response_round_trips: string().prop_map(|path| CreateResponse { path });
    create2_response_round_trips: (string(), stat()).prop_map(|(path, stat)| Create2Response { path, stat });
    delete_request_round_trips: (string(), any::<i32>()).prop_map(|(path, version)| DeleteRequest { path, version });
    exists_request_round_trips: (string(), any::<bool>()).prop_map(|(path, watch)| ExistsRequest { path, watch });
    exists_response_round_trips: stat().prop_map(|stat| ExistsResponse { stat });
    get_data_request_round_trips: (string(), any::<bool>()).prop_map(|(path, watch)| GetDataRequest { path, watch });
    get_data_response_round_trips: (opt_data(), stat()).prop_map(|(data, stat)| GetDataResponse { data, stat });
    set_data_request_round_trips: (string(), opt_data(), any::<i32>()).prop_map(|(path, data, version)| SetDataRequest { path, data, version });
    set_data_response_round_trips: stat().prop_map(|stat| SetDataResponse { stat });
    get_acl_request_round_trips: string().prop_map(|path| GetAclRequest { path });
    get_acl_response_round_trips: (acls(), stat()).prop_map(|(acl, stat)| GetAclResponse { acl, stat });
    set_acl_request_round_trips: (string(), acls(), any::<i32>()).prop_map(|(path, acl, version)| SetAclRequest { path, acl, version });
    set_acl_response_round_trips: stat().prop_map(|stat| SetAclResponse { stat });
    get_children_request_round_trips: (string(), any::<bool>()).prop_map(|(path, watch)| GetChildrenRequest { path, watch });
    get_children_response_round_trips: strings().prop_map(|children| GetChildrenResponse { children });
    get_children2_request_round_trips: (string(), any::<bool>()).prop_map(|(path, watch)| GetChildren2Request { path, watch });
    get_children2_response_round_trips: (strings(), stat()).prop_map(|(children, stat)| GetChildren2Response { children, stat });
    check_version_request_round_trips: (string(), any::<i32>()).prop_map(|(path, version)| CheckVersionRequest { path, version });
    sync_request_round_trips: string().prop_map(|path| SyncRequest { path });
    sync_response_round_trips: string().prop_map(|path| SyncResponse { path });
    get_all_children_number_request_round_trips: string().prop_map(|path| GetAllChildrenNumberRequest { path });
    get_all_children_number_response_round_trips: any::<i32>().prop_map(|total_number| GetAllChildrenNumberResponse { total_number });
    get_ephemerals_request_round_trips: string().prop_map(|prefix_path| GetEphemeralsRequest { prefix_path });
    get_ephemerals_response_round_trips: strings().prop_map(|ephemerals| GetEphemeralsResponse { ephemerals });
    set_watches_round_trips: (any::<i64>(), strings(), strings(), strings())
        .prop_map(|(relative_zxid, data_watches, exist_watches, child_watches)| SetWatches {
            relative_zxid, data_watches, exist_watches, child_watches,
        });
    set_watches2_round_trips: (any::<i64>(), strings(), strings(), strings(), strings(), strings())
        .prop_map(|(relative_zxid, data_watches, exist_watches, child_watches, persistent_watches, persistent_recursive_watches)| SetWatches2 {
            relative_zxid, data_watches, exist_watches, child_watches, persistent_watches, persistent_recursive_watches,
        });
    add_watch_request_round_trips: (string(), any::<i32>()).prop_map(|(path, mode)| AddWatchRequest { path, mode });
    check_watches_request_round_trips: (string(), any::<i32>()).prop_map(|(path, watch_type)| CheckWatchesRequest { path, watch_type });
    remove_watches_request_round_trips: (string(), any::<i32>()).prop_map(|(path, watch_type)| RemoveWatchesRequest { path, watch_type });
    client_info_round_trips: (string(), string()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user });
    who_am_i_response_round_trips: vec((string(), string()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }), 0..3)
        .prop_map(|client_info| WhoAmIResponse { client_info });
    reconfig_request_round_trips: (opt_string(), opt_string(), opt_string(), any::<i64>())
        .prop_map(|(joining_servers, leaving_servers, new_members, cur_config_id)| ReconfigRequest {
            joining_servers, leaving_servers, new_members, cur_config_id,
        });
    get_sasl_request_round_trips: data().prop_map(|token| GetSaslRequest { token });
    set_sasl_response_round_trips: data().prop_map(|token| SetSaslResponse { token });
}

fn create_op() -> impl Strategy<Value = CreateOp> {
    (
        prop_oneof![
            Just(CreateKind::Create),
            Just(CreateKind::Create2),
            Just(CreateKind::CreateContainer),
            Just(CreateKind::CreateTtl)
        ],
        string(),
        opt_data(),
        acls(),
        any::<i32>(),
        any::<i64>(),
    )
        .prop_map(|(kind, path, data, acl, flags, ttl)| CreateOp {
            kind,
            path,
            data,
            acl,
            flags,
            // Only createTTL carries a ttl on the wire; the others decode as -1.
            ttl_ms: if kind == CreateKind::CreateTtl {
                ttl
            } else {
                -1
            },
        })
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create_op().prop_map(MultiOp::Create),
        (string(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (string(), opt_data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (string(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn read_op() -> impl Strategy<Value = ReadOp> {
    prop_oneof![
        (string(), any::<bool>())
            .prop_map(|(path, watch)| ReadOp::GetData(GetDataRequest { path, watch })),
        (string(), any::<bool>())
            .prop_map(|(path, watch)| ReadOp::GetChildren(GetChildrenRequest { path, watch })),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_op().prop_map(Request::Create),
        (string(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        (string(), any::<bool>())
            .prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
        (string(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetData(GetDataRequest { path, watch })),
        (string(), opt_data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        string().prop_map(|path| Request::GetAcl(GetAclRequest { path })),
        (string(), acls(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        (string(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetChildren(GetChildrenRequest { path, watch })),
        (string(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetChildren2(GetChildren2Request { path, watch })),
        string().prop_map(|path| Request::Sync(SyncRequest { path })),
        Just(Request::Ping),
        (string(), any::<i32>())
            .prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
        vec(multi_op(), 0..5).prop_map(Request::Multi),
        vec(read_op(), 0..5).prop_map(Request::MultiRead),
        (opt_string(), opt_string(), opt_string(), any::<i64>()).prop_map(
            |(joining_servers, leaving_servers, new_members, cur_config_id)| {
                Request::Reconfig(ReconfigRequest {
                    joining_servers,
                    leaving_servers,
                    new_members,
                    cur_config_id,
                })
            }
        ),
        (string(), 1..=3i32).prop_map(|(path, watch_type)| Request::CheckWatches(
            CheckWatchesRequest { path, watch_type }
        )),
        (string(), 1..=3i32).prop_map(|(path, watch_type)| Request::RemoveWatches(
            RemoveWatchesRequest { path, watch_type }
        )),
        (string(), opt_data()).prop_map(|(scheme, auth)| Request::Auth(AuthPacket {
            auth_type: 0,
            scheme,
            auth
        })),
        (any::<i64>(), strings(), strings(), strings()).prop_map(
            |(relative_zxid, data_watches, exist_watches, child_watches)| {
                Request::SetWatches(SetWatches {
                    relative_zxid,
                    data_watches,
                    exist_watches,
                    child_watches,
                })
            }
        ),
        data().prop_map(|token| Request::Sasl(GetSaslRequest { token })),
        string()
            .prop_map(|prefix_path| Request::GetEphemerals(GetEphemeralsRequest { prefix_path })),
        string()
            .prop_map(|path| Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path })),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings()
        )
            .prop_map(
                |(
                    relative_zxid,
                    data_watches,
                    exist_watches,
                    child_watches,
                    persistent_watches,
                    persistent_recursive_watches,
                )| {
                    Request::SetWatches2(SetWatches2 {
                        relative_zxid,
                        data_watches,
                        exist_watches,
                        child_watches,
                        persistent_watches,
                        persistent_recursive_watches,
                    })
                }
            ),
        (string(), 0..=1i32)
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

fn multi_response_item() -> impl Strategy<Value = MultiResponseItem> {
    prop_oneof![
        string().prop_map(|path| MultiResponseItem::Create { path }),
        (string(), stat()).prop_map(|(path, stat)| MultiResponseItem::Create2 { path, stat }),
        Just(MultiResponseItem::Delete),
        stat().prop_map(|stat| MultiResponseItem::SetData { stat }),
        Just(MultiResponseItem::Check),
        (opt_data(), stat()).prop_map(|(data, stat)| MultiResponseItem::GetData { data, stat }),
        strings().prop_map(|children| MultiResponseItem::GetChildren { children }),
        error_code().prop_map(MultiResponseItem::Error),
    ]
}

/// A response body paired with the opcode of a request it can answer.
fn response() -> impl Strategy<Value = (OpCode, Response)> {
    prop_oneof![
        prop_oneof![
            Just(OpCode::Delete),
            Just(OpCode::Ping),
            Just(OpCode::SetWatches),
            Just(OpCode::Auth),
            Just(OpCode::CloseSession)
        ]
        .prop_map(|op| (op, Response::Empty)),
        string().prop_map(|path| (OpCode::Create, Response::Create(CreateResponse { path }))),
        (string(), stat()).prop_map(|(path, stat)| (
            OpCode::CreateTtl,
            Response::Create2(Create2Response { path, stat })
        )),
        stat().prop_map(|stat| (OpCode::Exists, Response::Exists(ExistsResponse { stat }))),
        (opt_data(), stat()).prop_map(|(data, stat)| (
            OpCode::GetData,
            Response::GetData(GetDataResponse { data, stat })
        )),
        stat().prop_map(|stat| (OpCode::SetData, Response::SetData(SetDataResponse { stat }))),
        (acls(), stat()).prop_map(|(acl, stat)| (
            OpCode::GetAcl,
            Response::GetAcl(GetAclResponse { acl, stat })
        )),
        stat().prop_map(|stat| (OpCode::SetAcl, Response::SetAcl(SetAclResponse { stat }))),
        strings().prop_map(|children| (
            OpCode::GetChildren,
            Response::GetChildren(GetChildrenResponse { children })
        )),
        (strings(), stat()).prop_map(|(children, stat)| {
            (
                OpCode::GetChildren2,
                Response::GetChildren2(GetChildren2Response { children, stat }),
            )
        }),
        string().prop_map(|path| (OpCode::Sync, Response::Sync(SyncResponse { path }))),
        vec(multi_response_item(), 0..5).prop_map(|items| (OpCode::Multi, Response::Multi(items))),
        (opt_data(), stat()).prop_map(|(data, stat)| (
            OpCode::Reconfig,
            Response::Reconfig(GetDataResponse { data, stat })
        )),
        data().prop_map(|token| (OpCode::Sasl, Response::Sasl(SetSaslResponse { token }))),
        strings().prop_map(|ephemerals| {
            (
                OpCode::GetEphemerals,
                Response::GetEphemerals(GetEphemeralsResponse { ephemerals }),
            )
        }),
        any::<i32>().prop_map(|total_number| {
            (
                OpCode::GetAllChildrenNumber,
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number }),
            )
        }),
        Just((
            OpCode::AddWatch,
            Response::AddWatch(ErrorResponse { err: 0 })
        )),
        vec(
            (string(), string()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }),
            0..3
        )
        .prop_map(|client_info| (
            OpCode::WhoAmI,
            Response::WhoAmI(WhoAmIResponse { client_info })
        )),
    ]
}

proptest! {
    #[test]
    fn every_request_survives_encode_frame_and_decode(request in request(), xid in any::<i32>()) {
        let mut buf = BytesMut::new();
        request.encode(xid, &mut buf);
        let frame = decode_frame(&mut buf, MAX).unwrap().expect("a whole frame");
        prop_assert!(buf.is_empty());
        let (header, back) = decode_request(&frame, MAX).unwrap();
        prop_assert_eq!(header, RequestHeader { xid, opcode: request.opcode().code() });
        prop_assert_eq!(back, request);
    }

    #[test]
    fn every_response_survives_encode_and_decode((opcode, response) in response(), xid in any::<i32>(), zxid in any::<i64>()) {
        let mut buf = BytesMut::new();
        corral_proto::encode_reply(&mut buf, xid, zxid, ErrorCode::Ok, |b| response.write(b));
        let frame = decode_frame(&mut buf, MAX).unwrap().expect("a whole frame");
        let (header, mut r) = decode_reply(&frame, MAX).unwrap();
        prop_assert_eq!(header, ReplyHeader { xid, zxid, err: 0 });
        prop_assert_eq!(Response::read(opcode, &mut r).unwrap(), response);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn multi_responses_round_trip(items in vec(multi_response_item(), 0..8)) {
        let mut body = BytesMut::new();
        write_multi_response(&mut body, &items);
        let mut r = JuteReader::new(&body, MAX);
        prop_assert_eq!(read_multi_response(&mut r).unwrap(), items);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn every_prefix_of_a_request_decodes_or_fails_without_panicking(request in request()) {
        let mut buf = BytesMut::new();
        request.encode(1, &mut buf);
        for cut in 0..buf.len() {
            let _ = decode_request(&buf[4..cut.max(4)], MAX);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in vec(any::<u8>(), 0..256), field_len_max in 0usize..64) {
        let _ = decode_request(&bytes, field_len_max);
        let _ = decode_record::<ConnectRequest>(&bytes, field_len_max);
        let _ = decode_record::<ConnectResponse>(&bytes, field_len_max);
        let _ = read_multi_response(&mut JuteReader::new(&bytes, field_len_max));
        if let Ok((_, r)) = decode_reply(&bytes, field_len_max) {
            for opcode in [OpCode::Multi, OpCode::GetData, OpCode::GetAcl, OpCode::WhoAmI] {
                let _ = Response::read(opcode, &mut r.clone());
            }
        }
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = decode_frame(&mut buf, 64) {
            let _ = decode_request(&frame, field_len_max);
        }
    }

    #[test]
    fn arbitrary_multi_bodies_never_panic(ops in vec((any::<i32>(), any::<bool>(), vec(any::<u8>(), 0..16)), 0..6)) {
        let mut frame = BytesMut::new();
        RequestHeader { xid: 1, opcode: OpCode::Multi.code() }.write(&mut frame);
        for (opcode, done, body) in &ops {
            MultiHeader { opcode: *opcode, done: *done, err: -1 }.write(&mut frame);
            frame.extend_from_slice(body);
        }
        let _ = decode_request(&frame, MAX);
        frame[4..8].copy_from_slice(&OpCode::MultiRead.code().to_be_bytes());
        let _ = decode_request(&frame, MAX);
    }
}

#[test]
fn a_reply_built_by_the_server_helpers_reads_back_on_the_client() {
    let mut buf = BytesMut::new();
    let record = GetDataResponse {
        data: Some(b"v".to_vec()),
        stat: Stat::default(),
    };
    encode_reply_record(&mut buf, 4, 10, &record);
    let frame = decode_frame(&mut buf, MAX).unwrap().unwrap();
    let (header, mut r) = decode_reply(&frame, MAX).unwrap();
    assert_eq!(
        header,
        ReplyHeader {
            xid: 4,
            zxid: 10,
            err: 0
        }
    );
    assert_eq!(
        Response::read(OpCode::GetData, &mut r),
        Ok(Response::GetData(record))
    );
}
