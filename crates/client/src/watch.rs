//! Client-side watch bookkeeping (`ZKWatchManager` in the Java client): which
//! of this session's callers wait on which path, how a server notification
//! fans out to them, and which paths to re-register with setWatches after a
//! reconnect.
//!
//! Owned by the session task alone (no locks). A registration travels with
//! its request and is applied when the reply is read, in reply order, so an
//! event is delivered only to watchers whose registration the server had
//! already seen when it fired.
//!
//! Two kinds of watchers reach the application:
//! - [`OneshotWatch`], a future for getData/exists/getChildren watches. It
//!   resolves with the one event that fires it, or with a session event
//!   (`EventType::None`) when the session ends. It survives reconnects.
//! - [`WatchStream`], from addWatch (persistent, persistent-recursive). It
//!   also carries session events (Disconnected, SyncConnected, Expired…),
//!   because events that happen while disconnected are not replayed for
//!   persistent watches: on SyncConnected after Disconnected, re-read state.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use corral_proto::opcode::xid;
use corral_proto::records::{SetWatches, SetWatches2, WatcherEvent};
use corral_proto::{ErrorCode, EventType, KeeperState, Request, WatcherType};
use tokio::sync::{mpsc, oneshot};

use crate::path::Chroot;

/// A change notification or a session event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// `EventType::None` for session events.
    pub event_type: EventType,
    /// `SyncConnected` for node events.
    pub keeper_state: KeeperState,
    /// The node, relative to the chroot; empty for session events.
    pub path: String,
}

impl WatchedEvent {
    fn session(state: KeeperState) -> WatchedEvent {
        WatchedEvent {
            event_type: EventType::None,
            keeper_state: state,
            path: String::new(),
        }
    }
}

/// The one-time watch set by `get_data_watch`, `exists_watch` or
/// `get_children_watch`: a future that resolves with the event that fires
/// it. If the session ends first, it resolves with a session event
/// (`EventType::None`, state `Expired`, `AuthFailed` or `Closed`).
#[derive(Debug)]
#[must_use = "a watch does nothing unless awaited"]
pub struct OneshotWatch {
    rx: oneshot::Receiver<WatchedEvent>,
}

impl Future for OneshotWatch {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| WatchedEvent::session(KeeperState::Closed)))
    }
}

/// The events of a persistent or persistent-recursive watch (`add_watch`),
/// plus session events. Ends (`None`) when the session ends, when the watch
/// is removed, or when the consumer fell more than the stream's capacity
/// behind: then [`WatchStream::lagged`] is true and the application should
/// re-read what it watches and call `add_watch` again.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<WatchedEvent>,
    lagged: Arc<AtomicBool>,
}

impl WatchStream {
    /// The next event, or `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }

    /// True when the stream was cut off because its buffer was full.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Relaxed)
    }

    /// Blocking receive, for the blocking facade.
    pub(crate) fn blocking_next(&mut self) -> Option<WatchedEvent> {
        self.rx.blocking_recv()
    }
}

impl futures_core::Stream for WatchStream {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The sending half of a [`WatchStream`], kept by the manager.
#[derive(Debug)]
pub(crate) struct StreamSink {
    tx: mpsc::Sender<WatchedEvent>,
    lagged: Arc<AtomicBool>,
}

impl StreamSink {
    /// Delivers without waiting; false when the sink must be dropped (its
    /// stream is gone, or full and now marked lagged).
    fn deliver(&self, event: WatchedEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A new persistent watch stream: the stream for the caller and the
/// registration to send with the addWatch request.
pub(crate) fn watch_stream(
    server_path: String,
    recursive: bool,
    capacity: usize,
) -> (WatchStream, Registration) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let lagged = Arc::new(AtomicBool::new(false));
    let sink = StreamSink {
        tx,
        lagged: lagged.clone(),
    };
    (
        WatchStream { rx, lagged },
        Registration::Persistent {
            path: server_path,
            recursive,
            sink,
        },
    )
}

/// Which one-time table a getData/exists/getChildren watch goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneshotKind {
    /// getData: registered on success.
    Data,
    /// exists: the data table on success, the exist table on NoNode.
    Exists,
    /// getChildren / getChildren2: registered on success.
    Child,
}

/// A one-time watch for `kind` on `server_path`: the future for the caller
/// and the registration to send with the request.
pub(crate) fn oneshot_watch(
    server_path: String,
    kind: OneshotKind,
) -> (OneshotWatch, Registration) {
    let (tx, rx) = oneshot::channel();
    (
        OneshotWatch { rx },
        Registration::Oneshot {
            path: server_path,
            kind,
            tx,
        },
    )
}

/// What a request does to the watch tables once its reply is read.
#[derive(Debug)]
pub(crate) enum Registration {
    Oneshot {
        path: String,
        kind: OneshotKind,
        tx: oneshot::Sender<WatchedEvent>,
    },
    Persistent {
        path: String,
        recursive: bool,
        sink: StreamSink,
    },
    /// removeWatches: drop the local watchers too, on success.
    Remove { path: String, kind: WatcherType },
}

/// The paths watched by this session, per table, as the server holds them
/// (chroot included).
#[derive(Debug, Default)]
pub(crate) struct WatchManager {
    chroot: Chroot,
    data: HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    exist: HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    child: HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    persistent: HashMap<String, Vec<StreamSink>>,
    recursive: HashMap<String, Vec<StreamSink>>,
}

/// The Java client starts a new setWatches packet once the paths in the
/// current one add up to this many characters.
const SET_WATCHES_PATH_CHARS_MAX: usize = 128 * 1024;

impl WatchManager {
    pub(crate) fn new(chroot: Chroot) -> WatchManager {
        WatchManager {
            chroot,
            ..WatchManager::default()
        }
    }

    /// Whether a live recursive watcher of this session is on `server_path`.
    pub(crate) fn has_recursive(&self, server_path: &str) -> bool {
        self.recursive
            .get(server_path)
            .is_some_and(|sinks| sinks.iter().any(|sink| !sink.tx.is_closed()))
    }

    /// Applies `registration` for a reply with result code `err`.
    pub(crate) fn register(&mut self, registration: Registration, err: i32) {
        let ok = err == ErrorCode::Ok.code();
        match registration {
            Registration::Oneshot { path, kind, tx } => {
                if tx.is_closed() {
                    return;
                }
                let table = match (kind, ok) {
                    (OneshotKind::Data, true) | (OneshotKind::Exists, true) => &mut self.data,
                    (OneshotKind::Exists, false) if err == ErrorCode::NoNode.code() => {
                        &mut self.exist
                    }
                    (OneshotKind::Child, true) => &mut self.child,
                    _ => return,
                };
                table.entry(path).or_default().push(tx);
            }
            Registration::Persistent {
                path,
                recursive,
                sink,
            } => {
                if !ok || sink.tx.is_closed() {
                    return;
                }
                let table = if recursive {
                    &mut self.recursive
                } else {
                    &mut self.persistent
                };
                table.entry(path).or_default().push(sink);
            }
            Registration::Remove { path, kind } => {
                if ok {
                    self.remove(&path, kind);
                }
            }
        }
    }

    /// Drops the local watchers of `kind` on `server_path`, telling each
    /// (DataWatchRemoved, ChildWatchRemoved, PersistentWatchRemoved).
    fn remove(&mut self, server_path: &str, kind: WatcherType) {
        let event = |event_type| WatchedEvent {
            event_type,
            keeper_state: KeeperState::SyncConnected,
            path: self.chroot.to_client(server_path),
        };
        let (data_event, child_event) = (
            event(EventType::DataWatchRemoved),
            event(EventType::ChildWatchRemoved),
        );
        let persistent_event = event(EventType::PersistentWatchRemoved);
        if matches!(kind, WatcherType::Data | WatcherType::Any) {
            for tables in [&mut self.data, &mut self.exist] {
                for tx in tables.remove(server_path).unwrap_or_default() {
                    let _ = tx.send(data_event.clone());
                }
            }
        }
        if matches!(kind, WatcherType::Children | WatcherType::Any) {
            for tx in self.child.remove(server_path).unwrap_or_default() {
                let _ = tx.send(child_event.clone());
            }
        }
        if kind == WatcherType::Any {
            for table in [&mut self.persistent, &mut self.recursive] {
                for sink in table.remove(server_path).unwrap_or_default() {
                    sink.deliver(persistent_event.clone());
                }
            }
        }
    }

    /// Fans a server notification out to the watchers it fires.
    pub(crate) fn dispatch(&mut self, event: &WatcherEvent) {
        let Some(event_type) = EventType::from_code(event.event_type) else {
            tracing::warn!(
                event_type = event.event_type,
                "unknown watch event type ignored"
            );
            return;
        };
        let keeper_state =
            KeeperState::from_code(event.state).unwrap_or(KeeperState::SyncConnected);
        let server_path = event.path.as_str();
        let watched = WatchedEvent {
            event_type,
            keeper_state,
            path: self.chroot.to_client(server_path),
        };

        let mut oneshots = Vec::new();
        match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                oneshots.extend(self.data.remove(server_path).unwrap_or_default());
                oneshots.extend(self.exist.remove(server_path).unwrap_or_default());
            }
            EventType::NodeDeleted => {
                oneshots.extend(self.data.remove(server_path).unwrap_or_default());
                oneshots.extend(self.exist.remove(server_path).unwrap_or_default());
                oneshots.extend(self.child.remove(server_path).unwrap_or_default());
            }
            EventType::NodeChildrenChanged => {
                oneshots.extend(self.child.remove(server_path).unwrap_or_default());
            }
            _ => {}
        }
        for tx in oneshots {
            let _ = tx.send(watched.clone());
        }

        deliver_to(&mut self.persistent, server_path, &watched);
        if event_type != EventType::NodeChildrenChanged {
            for ancestor in self_and_ancestors(server_path) {
                deliver_to(&mut self.recursive, ancestor, &watched);
            }
        }
    }

    /// Tells every persistent stream about a session event (Disconnected,
    /// SyncConnected). One-time watches stay pending across reconnects.
    pub(crate) fn session_event(&mut self, state: KeeperState) {
        let event = WatchedEvent::session(state);
        for table in [&mut self.persistent, &mut self.recursive] {
            table.retain(|_, sinks| {
                sinks.retain(|sink| sink.deliver(event.clone()));
                !sinks.is_empty()
            });
        }
    }

    /// The session ended: every watcher gets `state` and is dropped.
    pub(crate) fn terminate(&mut self, state: KeeperState) {
        let event = WatchedEvent::session(state);
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            for (_, txs) in table.drain() {
                for tx in txs {
                    let _ = tx.send(event.clone());
                }
            }
        }
        for table in [&mut self.persistent, &mut self.recursive] {
            for (_, sinks) in table.drain() {
                for sink in sinks {
                    sink.deliver(event.clone());
                }
            }
        }
    }

    /// Forgets watchers nobody waits for any more.
    fn prune(&mut self) {
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            table.retain(|_, txs| {
                txs.retain(|tx| !tx.is_closed());
                !txs.is_empty()
            });
        }
        for table in [&mut self.persistent, &mut self.recursive] {
            table.retain(|_, sinks| {
                sinks.retain(|sink| !sink.tx.is_closed());
                !sinks.is_empty()
            });
        }
    }

    /// Appends the setWatches frames (xid -8) that re-register every watch
    /// on a new connection, like the Java client: paths in the order data,
    /// exist, child, persistent, recursive, a new packet once a packet's
    /// paths reach 128 Ki characters, opcode 101 for packets without
    /// persistent watches and 105 otherwise.
    pub(crate) fn encode_set_watches(&mut self, relative_zxid: i64, out: &mut BytesMut) {
        self.prune();
        let lists: [Vec<String>; 5] = [
            self.data.keys().cloned().collect(),
            self.exist.keys().cloned().collect(),
            self.child.keys().cloned().collect(),
            self.persistent.keys().cloned().collect(),
            self.recursive.keys().cloned().collect(),
        ];
        let mut batch: [Vec<String>; 5] = Default::default();
        let mut batch_chars = 0;
        for (table, paths) in lists.into_iter().enumerate() {
            for path in paths {
                batch_chars += path.len();
                batch[table].push(path);
                if batch_chars >= SET_WATCHES_PATH_CHARS_MAX {
                    encode_set_watches_batch(relative_zxid, std::mem::take(&mut batch), out);
                    batch_chars = 0;
                }
            }
        }
        if batch.iter().any(|paths| !paths.is_empty()) {
            encode_set_watches_batch(relative_zxid, batch, out);
        }
    }

    /// True when nothing is watched (for tests and diagnostics).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }
}

fn encode_set_watches_batch(relative_zxid: i64, batch: [Vec<String>; 5], out: &mut BytesMut) {
    let [data_watches, exist_watches, child_watches, persistent_watches, persistent_recursive_watches] =
        batch;
    let request = if persistent_watches.is_empty() && persistent_recursive_watches.is_empty() {
        Request::SetWatches(SetWatches {
            relative_zxid,
            data_watches,
            exist_watches,
            child_watches,
        })
    } else {
        Request::SetWatches2(SetWatches2 {
            relative_zxid,
            data_watches,
            exist_watches,
            child_watches,
            persistent_watches,
            persistent_recursive_watches,
        })
    };
    request.encode(xid::SET_WATCHES, out);
}

fn deliver_to(table: &mut HashMap<String, Vec<StreamSink>>, path: &str, event: &WatchedEvent) {
    if let Some(sinks) = table.get_mut(path) {
        sinks.retain(|sink| sink.deliver(event.clone()));
        if sinks.is_empty() {
            table.remove(path);
        }
    }
}

/// `/a/b/c`, `/a/b`, `/a`, `/`.
fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.rfind('/') {
            _ if current == "/" => None,
            Some(0) => Some("/"),
            Some(at) => Some(&current[..at]),
            None => None,
        };
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::decode_request;

    fn event(event_type: EventType, path: &str) -> WatcherEvent {
        WatcherEvent {
            event_type: event_type.code(),
            state: KeeperState::SyncConnected.code(),
            path: path.into(),
        }
    }

    fn try_get(watch: &mut OneshotWatch) -> Option<WatchedEvent> {
        watch.rx.try_recv().ok()
    }

    #[test]
    fn ancestors_walk_up_to_the_root() {
        assert_eq!(
            self_and_ancestors("/a/b/c").collect::<Vec<_>>(),
            vec!["/a/b/c", "/a/b", "/a", "/"]
        );
        assert_eq!(self_and_ancestors("/").collect::<Vec<_>>(), vec!["/"]);
    }

    #[test]
    fn an_exists_watch_on_a_missing_node_fires_on_create_once() {
        let mut m = WatchManager::new(Chroot::none());
        let (mut w, reg) = oneshot_watch("/a".into(), OneshotKind::Exists);
        m.register(reg, ErrorCode::NoNode.code());
        m.dispatch(&event(EventType::NodeChildrenChanged, "/a"));
        assert_eq!(try_get(&mut w), None);
        m.dispatch(&event(EventType::NodeCreated, "/a"));
        assert_eq!(try_get(&mut w).unwrap().event_type, EventType::NodeCreated);
        assert!(m.is_empty());
    }

    #[test]
    fn a_failed_get_data_sets_no_watch() {
        let mut m = WatchManager::new(Chroot::none());
        let (_w, reg) = oneshot_watch("/a".into(), OneshotKind::Data);
        m.register(reg, ErrorCode::NoNode.code());
        assert!(m.is_empty());
    }

    #[test]
    fn delete_fires_data_and_child_watches_and_paths_lose_the_chroot() {
        let mut m = WatchManager::new(Chroot::new("/app").unwrap());
        let (mut d, reg) = oneshot_watch("/app/a".into(), OneshotKind::Data);
        m.register(reg, 0);
        let (mut c, reg) = oneshot_watch("/app/a".into(), OneshotKind::Child);
        m.register(reg, 0);
        m.dispatch(&event(EventType::NodeDeleted, "/app/a"));
        for w in [&mut d, &mut c] {
            let got = try_get(w).unwrap();
            assert_eq!(got.event_type, EventType::NodeDeleted);
            assert_eq!(got.path, "/a");
        }
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_events() {
        let mut m = WatchManager::new(Chroot::none());
        let (mut s, reg) = watch_stream("/a".into(), true, 8);
        m.register(reg, 0);
        m.dispatch(&event(EventType::NodeCreated, "/a/b/c"));
        m.dispatch(&event(EventType::NodeChildrenChanged, "/a/b"));
        m.dispatch(&event(EventType::NodeDataChanged, "/ab"));
        assert_eq!(s.rx.try_recv().unwrap().path, "/a/b/c");
        assert!(s.rx.try_recv().is_err());
    }

    #[test]
    fn a_full_stream_is_cut_off_and_marked_lagged() {
        let mut m = WatchManager::new(Chroot::none());
        let (mut s, reg) = watch_stream("/a".into(), false, 1);
        m.register(reg, 0);
        m.dispatch(&event(EventType::NodeDataChanged, "/a"));
        m.dispatch(&event(EventType::NodeDataChanged, "/a"));
        assert!(s.lagged());
        assert!(s.rx.try_recv().is_ok());
        assert!(matches!(
            s.rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn set_watches_uses_101_without_persistent_watches_and_105_with_them() {
        let mut m = WatchManager::new(Chroot::none());
        let (_d, reg) = oneshot_watch("/d".into(), OneshotKind::Data);
        m.register(reg, 0);
        let mut out = BytesMut::new();
        m.encode_set_watches(7, &mut out);
        let (header, req) = decode_request(&out[4..], 1 << 20).unwrap();
        assert_eq!(header.xid, -8);
        assert!(
            matches!(req, Request::SetWatches(ref r) if r.relative_zxid == 7 && r.data_watches == ["/d"])
        );

        let (_s, reg) = watch_stream("/p".into(), false, 1);
        m.register(reg, 0);
        let mut out = BytesMut::new();
        m.encode_set_watches(7, &mut out);
        let (_, req) = decode_request(&out[4..], 1 << 20).unwrap();
        assert!(matches!(req, Request::SetWatches2(ref r) if r.persistent_watches == ["/p"]));
    }

    #[test]
    fn remove_tells_the_removed_watchers() {
        let mut m = WatchManager::new(Chroot::none());
        let (mut d, reg) = oneshot_watch("/a".into(), OneshotKind::Data);
        m.register(reg, 0);
        m.register(
            Registration::Remove {
                path: "/a".into(),
                kind: WatcherType::Data,
            },
            0,
        );
        assert_eq!(
            try_get(&mut d).unwrap().event_type,
            EventType::DataWatchRemoved
        );
    }

    #[test]
    fn terminate_resolves_every_watch_with_the_final_state() {
        let mut m = WatchManager::new(Chroot::none());
        let (mut d, reg) = oneshot_watch("/a".into(), OneshotKind::Data);
        m.register(reg, 0);
        m.terminate(KeeperState::Expired);
        let got = try_get(&mut d).unwrap();
        assert_eq!(
            (got.event_type, got.keeper_state),
            (EventType::None, KeeperState::Expired)
        );
    }
}
