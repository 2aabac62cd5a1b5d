//! How a client is configured and started: [`ClientBuilder`] parses the
//! connect string, shuffles its hosts, spawns the session task and waits
//! for the first connection.

use std::sync::Arc;
use std::time::Duration;

use corral_proto::jute::DEFAULT_MAX_BUFFER_BYTES;
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot, watch};

use crate::client::Client;
use crate::connect_string::ConnectString;
use crate::error::Error;
use crate::session::{SessionConfig, SessionTask, Shared, TaskChannels};
use crate::state::SessionState;
use crate::watch::WatchManager;

/// Settings for a new [`Client`]; start from [`Client::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), corral_client::Error> {
/// use std::time::Duration;
/// let client = corral_client::Client::builder()
///     .session_timeout(Duration::from_secs(10))
///     .auth("digest", b"user:password")
///     .connect("h1:2181,h2:2181/app")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    session_timeout: Duration,
    connect_timeout: Option<Duration>,
    auth: Vec<(String, Vec<u8>)>,
    can_be_read_only: bool,
    session: Option<(i64, Vec<u8>)>,
    max_in_flight: usize,
    request_queue_len: usize,
    watch_stream_capacity: usize,
    max_packet_bytes: usize,
    shuffle_hosts: bool,
    renew_expired: bool,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            session_timeout: Duration::from_secs(10),
            connect_timeout: None,
            auth: Vec::new(),
            can_be_read_only: false,
            session: None,
            max_in_flight: 1024,
            request_queue_len: 1024,
            watch_stream_capacity: 1024,
            max_packet_bytes: DEFAULT_MAX_BUFFER_BYTES,
            shuffle_hosts: true,
            renew_expired: false,
        }
    }
}

impl ClientBuilder {
    /// The session timeout to ask for (default 10 s). The server clamps it
    /// to its [minSessionTimeout, maxSessionTimeout]; see
    /// [`Client::session_timeout`] for the negotiated value.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`ClientBuilder::connect`] keeps trying the hosts for a new
    /// session before failing with [`Error::ConnectFailed`] (default: the
    /// session timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Credentials sent on every connection before any request, e.g.
    /// `auth("digest", b"user:password")`. May be given several times.
    pub fn auth(mut self, scheme: &str, auth: &[u8]) -> Self {
        self.auth.push((scheme.to_owned(), auth.to_vec()));
        self
    }

    /// Accept read-only servers (`canBeReadOnly`); default false.
    pub fn read_only(mut self, allowed: bool) -> Self {
        self.can_be_read_only = allowed;
        self
    }

    /// Reattach to an existing session (from [`Client::session_id`] and
    /// [`Client::session_password`]) instead of creating one.
    pub fn session(mut self, session_id: i64, password: &[u8]) -> Self {
        self.session = Some((session_id, password.to_vec()));
        self
    }

    /// Most requests sent and not yet answered (default 1024); callers wait
    /// beyond that.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Most requests queued for the session task (default 1024); callers
    /// wait beyond that.
    pub fn request_queue_len(mut self, requests: usize) -> Self {
        self.request_queue_len = requests.max(1);
        self
    }

    /// Events a [`crate::WatchStream`] buffers before its consumer is cut
    /// off as lagging (default 1024).
    pub fn watch_stream_capacity(mut self, events: usize) -> Self {
        self.watch_stream_capacity = events.max(1);
        self
    }

    /// The largest request packet (`jute.maxbuffer`, default 1,048,575
    /// bytes); larger requests fail with [`Error::PacketTooLarge`] without
    /// being sent. Replies may be up to twice this.
    pub fn max_packet_bytes(mut self, bytes: usize) -> Self {
        self.max_packet_bytes = bytes;
        self
    }

    /// Try hosts in the order written instead of shuffled (default:
    /// shuffled, to spread clients over the ensemble).
    pub fn shuffle_hosts(mut self, shuffle: bool) -> Self {
        self.shuffle_hosts = shuffle;
        self
    }

    /// After the session expires, start a new one on the same [`Client`]
    /// instead of ending (default: off, expiry is terminal). This is what
    /// Curator does with a new ZooKeeper handle after LOST, and what lets
    /// the recipes re-join: the state goes `Expired` → `Connecting` →
    /// `Connected` with a new [`Client::session_id`]; watchers and
    /// requests in flight see the expiry as usual (`Expired`,
    /// [`Error::SessionExpired`]), requests made later go to the new
    /// session. The ephemerals and watches of the old session are gone:
    /// whoever relied on them must set them up again (the recipes do).
    /// Without a server, the client keeps trying until closed.
    pub fn renew_session_on_expiry(mut self, renew: bool) -> Self {
        self.renew_expired = renew;
        self
    }

    /// Parses `connect_string`, starts the session task on the current
    /// tokio runtime and waits until the session is established (and the
    /// builder's credentials accepted).
    pub async fn connect(self, connect_string: &str) -> Result<Client, Error> {
        let parsed = ConnectString::parse(connect_string)?;
        let hosts_display = parsed.hosts_display();
        let mut hosts = parsed.hosts;
        if self.shuffle_hosts {
            hosts.shuffle(&mut rand::thread_rng());
        }
        let config = SessionConfig {
            hosts,
            hosts_display,
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout.unwrap_or(self.session_timeout),
            can_be_read_only: self.can_be_read_only,
            max_in_flight: self.max_in_flight,
            max_packet_bytes: self.max_packet_bytes,
            session: self.session,
            auth: self.auth,
            renew_expired: self.renew_expired,
        };
        let (commands_tx, commands_rx) = mpsc::channel(self.request_queue_len);
        let (close_tx, close_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(SessionState::Connecting);
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = Arc::new(Shared::default());
        let task = SessionTask::new(
            config,
            WatchManager::new(parsed.chroot.clone()),
            TaskChannels {
                commands: commands_rx,
                close: close_rx,
                state: state_tx,
            },
            ready_tx,
            shared.clone(),
        );
        tokio::spawn(task.run());
        let client = Client::from_parts(
            commands_tx,
            close_tx,
            state_rx,
            shared,
            parsed.chroot,
            self.watch_stream_capacity,
            self.renew_expired,
        );
        match ready_rx.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::ClientClosed),
        }
    }
}
