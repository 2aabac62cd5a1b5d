//! Watch events and replies leave a connection in the order the server produced them, also
//! when the client is not reading and its socket is full. On a runtime of one worker Corral
//! writes an event straight to an idle socket, and must queue it behind replies still waiting
//! for the socket; with more workers every frame goes through the connection's writer task.
//! Both are run, and Apache ZooKeeper too (skipped when it is not installed outside CI).

mod support;

use std::time::Duration;

use support::raw::{self, op, Acl, Enc, RawSession};
use support::{CorralServer, Server};

/// Enough replies of `BIG` bytes that the kernel's socket buffers cannot take them all while
/// the client does not read.
const QUEUED_READS: usize = 24;
const BIG: usize = 1_000_000;

fn world() -> Vec<Acl> {
    vec![Acl::new(31, "world", "anyone")]
}

fn event_waits_behind_queued_replies(server: &Server) {
    let name = server.name();
    let mut reader = RawSession::connect(server.addr(), 30_000).expect("connect reader");
    let mut writer = RawSession::connect(server.addr(), 30_000).expect("connect writer");
    let created = writer
        .create(op::CREATE, "/big", &vec![b'b'; BIG], &world(), 0, None)
        .expect("create /big");
    assert_eq!(created.err, 0, "{name}: create /big");

    // A watch for the node the writer creates below.
    let r = reader.exists("/w", true).expect("exists /w");
    assert_eq!(raw::err_name(r.err), "NoNode", "{name}: exists /w");

    // Many big reads the reader does not take yet: the replies fill the socket and the
    // rest wait in the server.
    let mut e = Enc::new();
    e.str("/big").bool(false);
    let xids: Vec<i32> = (0..QUEUED_READS)
        .map(|_| {
            reader
                .send_request(op::GET_DATA, e.bytes())
                .expect("send getData")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // The event is produced after every one of those replies.
    let r = writer
        .create(op::CREATE, "/w", b"", &world(), 0, None)
        .expect("create /w");
    assert_eq!(r.err, 0, "{name}: create /w");

    for xid in xids {
        let reply = reader.read_reply(xid).expect("getData reply");
        assert_eq!(reply.err, 0, "{name}: getData /big");
        let data = reply.dec().buf().expect("decode data").unwrap_or_default();
        assert_eq!(
            data.len(),
            BIG,
            "{name}: getData /big returns the whole node"
        );
        assert!(
            reader.events.is_empty(),
            "{name}: the event overtook the reply to xid {xid}: {:?}",
            reader.events
        );
    }
    reader.barrier().expect("barrier");
    let events = reader.take_events();
    assert_eq!(
        events.len(),
        1,
        "{name}: one event after the replies: {events:?}"
    );
    assert_eq!(raw::event_name(events[0].ty), "NodeCreated", "{name}");
    assert_eq!(events[0].path, "/w", "{name}");
}

#[test]
fn corral_queues_an_event_behind_replies_the_socket_could_not_take() {
    for workers in ["1", "2"] {
        let server = Server::Corral(CorralServer::start_with_env(
            &[],
            &[("TOKIO_WORKER_THREADS", workers)],
        ));
        event_waits_behind_queued_replies(&server);
    }
}

#[test]
fn zookeeper_queues_an_event_behind_replies_the_socket_could_not_take() {
    let Some(server) = Server::start_named("zookeeper", &[]) else {
        eprintln!("Apache ZooKeeper is not installed; skipping");
        return;
    };
    event_waits_behind_queued_replies(&server);
}
