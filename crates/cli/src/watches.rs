//! The shell's watcher (zkCli's `MyWatcher`): every watch a command sets
//! (`get -w`, `ls -w`, `stat -w`, `addWatch`…) is handed to one hub task,
//! which prints each event as `WATCHER::` / `WatchedEvent …` while
//! `printwatches` is on.
//!
//! The Java client hands one notification to the shell's single watcher
//! once, however many of its watches it fires (`get -w` and `ls -w` on a
//! node that is deleted print one NodeDeleted). The Rust client resolves
//! each watch separately, all in one step of its session task; the hub
//! polls every watch at once each time it wakes, so it sees such a group
//! together and prints it once. That relies on the runtime having a single
//! worker thread (see `lib.rs`).

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use corral_client::{EventType, KeeperState, OneshotWatch, WatchStream, WatchedEvent};
use futures_core::Stream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::format;

/// A watch handed to the hub.
pub enum Watch {
    /// A one-time watch (getData, exists, getChildren).
    Once(OneshotWatch),
    /// A persistent or persistent-recursive watch (addWatch).
    Stream(WatchStream),
}

enum Message {
    Add(Watch),
    /// Answered once every event already delivered has been printed.
    Settle(oneshot::Sender<()>),
}

/// Most watches queued for the hub before commands wait.
const QUEUE_LEN: usize = 1024;

/// The handle commands use to register watches, and the `printwatches`
/// switch, shared with the session's state printer.
#[derive(Clone)]
pub struct Watches {
    tx: mpsc::Sender<Message>,
    printing: Arc<AtomicBool>,
}

impl Watches {
    /// Starts the hub task on `handle`.
    pub fn start(handle: &Handle) -> Watches {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let printing = Arc::new(AtomicBool::new(true));
        // Unconstrained by tokio's cooperative budget: once the budget ran
        // out, a watch that has fired would poll as Pending, and a `settle`
        // seen in that same pass would be answered before its event was
        // printed (then the event would come out after the command's output).
        handle.spawn(tokio::task::coop::unconstrained(hub(rx, printing.clone())));
        Watches { tx, printing }
    }

    pub async fn add(&self, watch: Watch) {
        // The hub only stops when the runtime does.
        let _ = self.tx.send(Message::Add(watch)).await;
    }

    /// Waits until the hub has printed every event that had fired by now
    /// (so that a command's events come out before its own output).
    pub async fn settle(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Settle(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn printing(&self) -> bool {
        self.printing.load(Ordering::Relaxed)
    }

    pub fn set_printing(&self, on: bool) {
        self.printing.store(on, Ordering::Relaxed);
    }

    /// Prints a session event (`type:None path:null`) if printing is on.
    pub fn print_session_event(&self, state: KeeperState) {
        if self.printing() {
            print_block(&format::watcher_block(state, EventType::None, None));
        }
    }
}

fn print_block(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Watches waiting to fire, each with an id for de-duplication.
#[derive(Default)]
struct Pending {
    next_id: u64,
    once: Vec<(u64, OneshotWatch)>,
    streams: Vec<(u64, WatchStream)>,
}

impl Pending {
    fn add(&mut self, watch: Watch) {
        self.next_id += 1;
        match watch {
            Watch::Once(w) => self.once.push((self.next_id, w)),
            Watch::Stream(s) => self.streams.push((self.next_id, s)),
        }
    }
}

async fn hub(mut rx: mpsc::Receiver<Message>, printing: Arc<AtomicBool>) {
    let mut pending = Pending::default();
    let mut open = true;
    loop {
        let (events, settled) = poll_fn(|cx| {
            let mut settled = Vec::new();
            while open {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Message::Add(w))) => pending.add(w),
                    Poll::Ready(Some(Message::Settle(done))) => settled.push(done),
                    Poll::Ready(None) => open = false,
                    Poll::Pending => break,
                }
            }
            let mut events = Vec::new();
            pending
                .once
                .retain_mut(|(id, w)| match Pin::new(w).poll(cx) {
                    Poll::Ready(event) => {
                        events.push((*id, event));
                        false
                    }
                    Poll::Pending => true,
                });
            pending.streams.retain_mut(|(id, s)| loop {
                match Pin::new(&mut *s).poll_next(cx) {
                    Poll::Ready(Some(event)) => events.push((*id, event)),
                    Poll::Ready(None) => break false,
                    Poll::Pending => break true,
                }
            });
            if events.is_empty() && settled.is_empty() {
                if !open && pending.once.is_empty() && pending.streams.is_empty() {
                    return Poll::Ready((events, settled));
                }
                return Poll::Pending;
            }
            Poll::Ready((events, settled))
        })
        .await;
        if events.is_empty() && settled.is_empty() {
            return;
        }
        let on = printing.load(Ordering::Relaxed);
        for event in dedupe(events) {
            if on {
                print_block(&format::watcher_block(
                    event.keeper_state,
                    event.event_type,
                    Some(&event.path),
                ));
            }
        }
        for done in settled {
            let _ = done.send(());
        }
    }
}

/// The events to print from one wake-up: node events only (session events
/// are the session printer's), and an event that several watches received
/// at once counts once. One watch's repeated events are all kept.
///
/// Events that arrived together come out of the watches in no particular
/// order; ZooKeeper notifies about a node before its parent's
/// NodeChildrenChanged, so those go last.
fn dedupe(mut events: Vec<(u64, WatchedEvent)>) -> Vec<WatchedEvent> {
    events.sort_by_key(|(_, e)| e.event_type == EventType::NodeChildrenChanged);
    type Key = (EventType, KeeperState, String);
    let mut seen: HashMap<Key, (HashMap<u64, usize>, usize)> = HashMap::new();
    let mut out = Vec::new();
    for (id, event) in events {
        if event.event_type == EventType::None {
            continue;
        }
        let key = (event.event_type, event.keeper_state, event.path.clone());
        let (per_watch, printed) = seen.entry(key).or_default();
        let count = per_watch.entry(id).or_default();
        *count += 1;
        if *count > *printed {
            *printed += 1;
            out.push(event);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: EventType, path: &str) -> WatchedEvent {
        WatchedEvent {
            event_type,
            keeper_state: KeeperState::SyncConnected,
            path: path.into(),
        }
    }

    #[test]
    fn one_notification_to_several_watches_prints_once() {
        let deleted = ev(EventType::NodeDeleted, "/a");
        let changed = ev(EventType::NodeDataChanged, "/p");
        let out = dedupe(vec![
            (6, ev(EventType::NodeChildrenChanged, "/")),
            (1, deleted.clone()),
            (2, deleted.clone()),
            (3, changed.clone()),
            (3, changed.clone()),
            (4, changed.clone()),
            (5, ev(EventType::None, "")),
        ]);
        assert_eq!(
            out,
            vec![
                deleted,
                changed.clone(),
                changed,
                ev(EventType::NodeChildrenChanged, "/")
            ]
        );
    }
}
