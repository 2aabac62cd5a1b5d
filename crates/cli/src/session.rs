//! The shell's connection to an ensemble (zkCli's `ZooKeeper zk`): a task
//! that connects, publishes the client to the commands, and prints the
//! session's state changes as zkCli's watcher does (`WatchedEvent
//! state:SyncConnected type:None path:null`, `Disconnected`, `Expired`,
//! `Closed`…).
//!
//! In the interactive shell the task starts at once and, like the Java
//! client, keeps trying when no server answers; a command issued meanwhile
//! waits for the attempt under way and fails with ConnectionLoss if it
//! fails. A one-shot command connects on first use, once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_client::{Client, Error, KeeperState, SessionState};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::watches::Watches;

/// How the shell connects.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_timeout: Duration,
    pub read_only: bool,
    /// Keep trying after a failed attempt (interactive) or give up (one-shot).
    pub retry: bool,
}

/// How long one connection attempt may take before the commands waiting for
/// it fail with ConnectionLoss. The Java client fails them after one try of
/// each host; the Rust client retries until its connect timeout.
const ATTEMPT_MAX: Duration = Duration::from_secs(5);
/// Pause between attempts while no server answers.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long `close` waits for the server to confirm.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Where the connection stands, as commands see it.
#[derive(Debug, Clone)]
enum Link {
    /// Not started yet (one-shot mode connects on first use).
    Idle,
    Connecting,
    Ready(Client),
    /// The last attempt found no server.
    Failed,
    /// Closed by the user, expired, or refused (auth failed).
    Closed,
}

/// Follows a session's connection from another thread (tab completion).
#[derive(Clone)]
pub struct Tracker {
    link: watch::Receiver<Link>,
}

impl Tracker {
    /// The client if connected now.
    pub fn current(&self) -> Option<Client> {
        match &*self.link.borrow() {
            Link::Ready(client) if client.state().is_connected() => Some(client.clone()),
            _ => None,
        }
    }
}

pub struct Session {
    host: String,
    settings: Settings,
    watches: Watches,
    handle: Handle,
    link_tx: Arc<watch::Sender<Link>>,
    link: watch::Receiver<Link>,
    task: Mutex<Option<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl Session {
    /// A session for `host`; `eager` starts connecting now.
    pub fn new(
        handle: Handle,
        host: &str,
        settings: Settings,
        watches: Watches,
        eager: bool,
    ) -> Self {
        let (link_tx, link) = watch::channel(Link::Idle);
        let session = Session {
            host: host.to_owned(),
            settings,
            watches,
            handle,
            link_tx: Arc::new(link_tx),
            link,
            task: Mutex::new(None),
            stop: watch::channel(false).0,
        };
        if eager {
            session.start();
        }
        session
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Starts connecting, unless already started.
    pub fn start(&self) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_some() {
            return;
        }
        self.link_tx.send_replace(Link::Connecting);
        *task = Some(self.handle.spawn(run(
            self.host.clone(),
            self.settings.clone(),
            self.link_tx.clone(),
            self.watches.clone(),
            self.stop.subscribe(),
        )));
    }

    /// The connected client, waiting for an attempt under way.
    pub async fn client(&self) -> Result<Client, Error> {
        self.start();
        let mut link = self.link.clone();
        loop {
            match link.borrow_and_update().clone() {
                Link::Ready(client) => return Ok(client),
                Link::Failed => return Err(Error::ConnectionLoss),
                Link::Closed => return Err(Error::ClientClosed),
                Link::Idle | Link::Connecting => {}
            }
            if link.changed().await.is_err() {
                return Err(Error::ClientClosed);
            }
        }
    }

    /// A view of this session's connection for tab completion.
    pub fn tracker(&self) -> Tracker {
        Tracker {
            link: self.link.clone(),
        }
    }

    /// The state in the prompt, named like the Java client's `States`.
    pub fn state_name(&self) -> &'static str {
        match &*self.link.borrow() {
            Link::Idle | Link::Connecting | Link::Failed => "CONNECTING",
            Link::Closed => "CLOSED",
            Link::Ready(client) => match client.state() {
                SessionState::Connecting | SessionState::Disconnected => "CONNECTING",
                SessionState::Connected => "CONNECTED",
                SessionState::ConnectedReadOnly => "CONNECTEDREADONLY",
                SessionState::Expired | SessionState::Closed => "CLOSED",
                SessionState::AuthFailed => "AUTH_FAILED",
            },
        }
    }

    /// zkCli's `zk.getState().isAlive()`: commands other than the shell's
    /// own print "Not connected" when it is false.
    pub fn is_alive(&self) -> bool {
        !matches!(self.state_name(), "CLOSED" | "AUTH_FAILED")
    }

    /// Closes the session the way the Java client's `close()` does, which
    /// first finishes connecting a session that has not been used yet.
    pub async fn close_connected(&self) {
        if matches!(*self.link.borrow(), Link::Idle) {
            let _ = self.client().await;
        }
        self.close(true).await;
    }

    /// Closes the session. With `announce`, the `Closed` event is printed
    /// (the `close` and `quit` commands); a one-shot run ends silently.
    pub async fn close(&self, announce: bool) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(task) = task else {
            self.link_tx.send_replace(Link::Closed);
            return;
        };
        let link = self.link.borrow().clone();
        match link {
            Link::Ready(client) if !announce => {
                // Keep the state printer quiet: it is stopped first.
                self.stop.send_replace(true);
                let _ = tokio::time::timeout(CLOSE_WAIT, client.close()).await;
            }
            Link::Ready(client) => {
                let _ = tokio::time::timeout(CLOSE_WAIT, client.close()).await;
                // The task prints Closed and ends.
                let _ = tokio::time::timeout(CLOSE_WAIT, task).await;
            }
            _ => {
                self.stop.send_replace(true);
                let _ = tokio::time::timeout(CLOSE_WAIT, task).await;
                if announce {
                    self.watches.print_session_event(KeeperState::Closed);
                }
            }
        }
        self.link_tx.send_replace(Link::Closed);
    }
}

/// Connects (again and again if `settings.retry`), then prints state changes
/// until the session ends.
async fn run(
    host: String,
    settings: Settings,
    link: Arc<watch::Sender<Link>>,
    watches: Watches,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        link.send_replace(Link::Connecting);
        let attempt = Client::builder()
            .session_timeout(settings.session_timeout)
            .connect_timeout(settings.session_timeout.min(ATTEMPT_MAX))
            .read_only(settings.read_only)
            .connect(&host);
        let result = tokio::select! {
            result = attempt => result,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match result {
            Ok(client) => {
                follow(client, &link, &watches, stop).await;
                return;
            }
            Err(_) => {
                link.send_replace(Link::Failed);
                if !settings.retry {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
    }
}

/// Publishes `client` and prints its state changes until it ends.
async fn follow(
    client: Client,
    link: &watch::Sender<Link>,
    watches: &Watches,
    mut stop: watch::Receiver<bool>,
) {
    let mut states = client.state_watcher();
    let first = *states.borrow_and_update();
    if let Some(state) = announced(first) {
        watches.print_session_event(state);
    }
    link.send_replace(Link::Ready(client));
    loop {
        tokio::select! {
            changed = states.changed() => {
                let state = if changed.is_ok() {
                    *states.borrow_and_update()
                } else {
                    SessionState::Closed
                };
                if let Some(keeper_state) = announced(state) {
                    watches.print_session_event(keeper_state);
                }
                // The client stays published: its state names the end
                // (CLOSED, AUTH_FAILED) and makes the session not alive.
                if state.is_terminal() {
                    return;
                }
            }
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// The event zkCli's watcher prints for a state, if any.
fn announced(state: SessionState) -> Option<KeeperState> {
    match state {
        SessionState::Connecting => None,
        other => Some(other.keeper_state()),
    }
}
