//! The async API: [`Client`], a cheap-to-clone handle whose methods build a
//! request (checking and chrooting paths), queue it for the session task
//! and turn the reply into plain Rust values (chroot stripped again).
//!
//! Every method takes `&self` and may be called from many tasks at once;
//! requests are pipelined on the one connection and answered in the order
//! they were queued.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::records::{
    AddWatchRequest, CheckWatchesRequest, ClientInfo, DeleteRequest, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildren2Request, GetChildrenRequest, GetDataRequest,
    GetEphemeralsRequest, ReconfigRequest, RemoveWatchesRequest, SetAclRequest, SetDataRequest,
    SyncRequest,
};
use corral_proto::{
    Acl, AddWatchMode, CreateKind, CreateMode, CreateOp, Request, Response, Stat, WatcherType,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::builder::ClientBuilder;
use crate::error::Error;
use crate::multi::{MultiBuilder, MultiReadBuilder};
use crate::path::{validate_path, Chroot};
use crate::session::{Command, Shared};
use crate::state::SessionState;
use crate::watch::{
    oneshot_watch, watch_stream, OneshotKind, OneshotWatch, Registration, WatchStream,
};

/// Where ZooKeeper publishes the ensemble configuration. Read without the
/// chroot, as the Java client does.
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// A session with a ZooKeeper-compatible ensemble.
///
/// Cloning is cheap and every clone shares the session. The session ends
/// with [`Client::close`], or once every clone is dropped (then the task
/// closes the session on its own).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    close: watch::Sender<bool>,
    state: watch::Receiver<SessionState>,
    shared: Arc<Shared>,
    chroot: Chroot,
    watch_stream_capacity: usize,
    /// [`ClientBuilder::renew_session_on_expiry`].
    renews_expired: bool,
}

impl Client {
    /// Connects with default settings; see [`Client::builder`] for the rest.
    /// `connect_string` is `host:port[,host:port…][/chroot]`.
    pub async fn connect(connect_string: &str) -> Result<Client, Error> {
        ClientBuilder::default().connect(connect_string).await
    }

    /// A builder for session timeout, credentials and limits.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn from_parts(
        commands: mpsc::Sender<Command>,
        close: watch::Sender<bool>,
        state: watch::Receiver<SessionState>,
        shared: Arc<Shared>,
        chroot: Chroot,
        watch_stream_capacity: usize,
        renews_expired: bool,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                commands,
                close,
                state,
                shared,
                chroot,
                watch_stream_capacity,
                renews_expired,
            }),
        }
    }

    // ----- session -----

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        *self.inner.state.borrow()
    }

    /// A receiver that sees every state change (Connected, Disconnected,
    /// Expired…).
    pub fn state_watcher(&self) -> watch::Receiver<SessionState> {
        self.inner.state.clone()
    }

    /// True when this client starts a new session after an expiry
    /// ([`ClientBuilder::renew_session_on_expiry`]).
    pub fn renews_expired_sessions(&self) -> bool {
        self.inner.renews_expired
    }

    /// How many sessions of this client have expired so far (only a
    /// renewing client goes on after one). Whoever set up ephemerals or
    /// watches under a lower count must set them up again; comparing
    /// counts cannot miss an expiry the way watching the state can.
    pub fn expired_sessions(&self) -> u64 {
        self.inner.shared.sessions_expired.load(Ordering::Relaxed)
    }

    /// True once nothing more can happen on this client: closed, refused
    /// credentials, or expired without renewal.
    pub fn is_finished(&self) -> bool {
        self.is_final(self.state())
    }

    /// True when `state` is final for this client (see
    /// [`Client::is_finished`]).
    pub(crate) fn is_final(&self, state: SessionState) -> bool {
        state.is_terminal() && !(state == SessionState::Expired && self.inner.renews_expired)
    }

    /// Resolves once [`Client::is_finished`] is true.
    pub async fn finished(&self) {
        let mut states = self.inner.state.clone();
        let renews = self.inner.renews_expired;
        let _ = states
            .wait_for(|s| s.is_terminal() && !(*s == SessionState::Expired && renews))
            .await;
    }

    /// The session id the server assigned (0 while a renewing client has
    /// no session).
    pub fn session_id(&self) -> i64 {
        self.inner.shared.info().session_id
    }

    /// The session password, for [`ClientBuilder::session`].
    pub fn session_password(&self) -> Vec<u8> {
        self.inner.shared.info().password.clone()
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.inner.shared.info().negotiated_timeout
    }

    /// The zxid of the latest reply seen.
    pub fn last_zxid(&self) -> i64 {
        self.inner.shared.last_zxid.load(Ordering::Relaxed)
    }

    /// The chroot of the connect string, if any.
    pub fn chroot(&self) -> Option<&str> {
        self.inner.chroot.as_str()
    }

    /// Closes the session: the server deletes its ephemerals at once. Waits
    /// for the server's confirmation (a few seconds at most). Requests still
    /// queued fail with [`Error::ClientClosed`]. Closing twice is fine.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.close.send_replace(true);
        // Returns when the task is gone too, which is closed enough.
        self.finished().await;
        Ok(())
    }

    // ----- plumbing -----

    fn terminal_error(&self) -> Error {
        match self.state() {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::ClientClosed,
        }
    }

    async fn call(&self, request: Request, watch: Option<Registration>) -> Result<Response, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Op {
                request,
                reply,
                watch,
            })
            .await
            .map_err(|_| self.terminal_error())?;
        rx.await.map_err(|_| self.terminal_error())?
    }

    /// Checks a client path and returns the server path.
    pub(crate) fn server_path(&self, path: &str) -> Result<String, Error> {
        validate_path(path)?;
        Ok(self.inner.chroot.to_server(path))
    }

    pub(crate) fn client_path(&self, server_path: &str) -> String {
        self.inner.chroot.to_client(server_path)
    }

    pub(crate) async fn call_multi(&self, request: Request) -> Result<Response, Error> {
        self.call(request, None).await
    }

    /// Builds the create request for `mode` (the opcode follows the mode:
    /// createContainer, createTTL, otherwise `kind`).
    pub(crate) fn create_op(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<Duration>,
        kind: CreateKind,
    ) -> Result<CreateOp, Error> {
        if mode.is_sequential() {
            validate_path(&format!("{path}1"))?;
        } else {
            validate_path(path)?;
        }
        if acl.is_empty() {
            return Err(Error::InvalidAcl);
        }
        let (kind, ttl_ms) = match (mode.is_ttl(), ttl) {
            (true, Some(ttl)) => (
                CreateKind::CreateTtl,
                i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            ),
            (false, None) if mode.is_container() => (CreateKind::CreateContainer, -1),
            (false, None) => (kind, -1),
            // A TTL mode without a TTL, or a TTL with another mode.
            _ => return Err(Error::BadArguments),
        };
        Ok(CreateOp {
            kind,
            path: self.inner.chroot.to_server(path),
            data: data.map(<[u8]>::to_vec),
            acl: acl.to_vec(),
            flags: mode.flags(),
            ttl_ms,
        })
    }

    // ----- writes -----

    /// Creates a node and returns its path (with the sequential suffix, if
    /// any) and Stat. Containers go out as createContainer; for TTL modes
    /// use [`Client::create_ttl`].
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        self.create_nullable(path, Some(data), acl, mode).await
    }

    /// Like [`Client::create`], and `data` `None` stores null data (what a
    /// Java client stores for `create(path, null, …)` and zkCli for
    /// `create /a` without data): [`Client::get_data_nullable`] reads it
    /// back as `None`, where empty data reads as `Some(vec![])`.
    pub async fn create_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        let op = self.create_op(path, data, acl, mode, None, CreateKind::Create2)?;
        self.create_with(op).await
    }

    /// Creates a TTL node (`PersistentWithTtl` or
    /// `PersistentSequentialWithTtl`): deleted by the server once it has had
    /// no children and no change for `ttl`. Needs `extendedTypesEnabled` on
    /// the server (otherwise `Unimplemented`).
    pub async fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Duration,
    ) -> Result<(String, Stat), Error> {
        self.create_ttl_nullable(path, Some(data), acl, mode, ttl)
            .await
    }

    /// Like [`Client::create_ttl`]; `data` `None` stores null data (see
    /// [`Client::create_nullable`]).
    pub async fn create_ttl_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl: Duration,
    ) -> Result<(String, Stat), Error> {
        let op = self.create_op(path, data, acl, mode, Some(ttl), CreateKind::Create2)?;
        self.create_with(op).await
    }

    async fn create_with(&self, op: CreateOp) -> Result<(String, Stat), Error> {
        match self.call(Request::Create(op), None).await? {
            Response::Create2(r) => Ok((self.client_path(&r.path), r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a node; `version` `None` matches any version.
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        let path = self.server_path(path)?;
        let request = Request::Delete(DeleteRequest {
            path,
            version: version.unwrap_or(-1),
        });
        match self.call(request, None).await? {
            Response::Empty => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces a node's data; `version` `None` matches any version.
    pub async fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        let path = self.server_path(path)?;
        let request = Request::SetData(SetDataRequest {
            path,
            data: Some(data.to_vec()),
            version: version.unwrap_or(-1),
        });
        match self.call(request, None).await? {
            Response::SetData(r) => Ok(r.stat),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces a node's ACL; `version` (compared with `aversion`) `None`
    /// matches any.
    pub async fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        let path = self.server_path(path)?;
        if acl.is_empty() {
            return Err(Error::InvalidAcl);
        }
        let request = Request::SetAcl(SetAclRequest {
            path,
            acl: acl.to_vec(),
            version: version.unwrap_or(-1),
        });
        match self.call(request, None).await? {
            Response::SetAcl(r) => Ok(r.stat),
            other => Err(unexpected(other)),
        }
    }

    /// An atomic batch of writes; see [`MultiBuilder`].
    pub fn multi(&self) -> MultiBuilder<'_> {
        MultiBuilder::new(self)
    }

    // ----- reads -----

    /// The node's Stat, or `None` when it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        self.exists_inner(path, None).await
    }

    /// Like [`Client::exists`], and sets a one-time watch that fires on the
    /// node's creation, deletion or data change (it is set even when the
    /// node does not exist).
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch), Error> {
        let server_path = self.server_path(path)?;
        let (watch, registration) = oneshot_watch(server_path, OneshotKind::Exists);
        let stat = self.exists_inner(path, Some(registration)).await?;
        Ok((stat, watch))
    }

    async fn exists_inner(
        &self,
        path: &str,
        watch: Option<Registration>,
    ) -> Result<Option<Stat>, Error> {
        let request = Request::Exists(ExistsRequest {
            path: self.server_path(path)?,
            watch: watch.is_some(),
        });
        match self.call(request, watch).await {
            Ok(Response::Exists(r)) => Ok(Some(r.stat)),
            Ok(other) => Err(unexpected(other)),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The node's data and Stat. Null data (a node created with no data by
    /// a Java client) reads as empty; see [`Client::get_data_nullable`].
    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        let (data, stat) = self.get_data_inner(path, None).await?;
        Ok((data.unwrap_or_default(), stat))
    }

    /// Like [`Client::get_data`], and sets a one-time watch that fires on
    /// the node's next data change or deletion.
    pub async fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch), Error> {
        let (data, stat, watch) = self.get_data_nullable_watch(path).await?;
        Ok((data.unwrap_or_default(), stat, watch))
    }

    /// The node's data, `None` when it is null (ZooKeeper keeps null apart
    /// from empty), and its Stat.
    pub async fn get_data_nullable(&self, path: &str) -> Result<(Option<Vec<u8>>, Stat), Error> {
        self.get_data_inner(path, None).await
    }

    /// Like [`Client::get_data_nullable`], with a one-time data watch.
    pub async fn get_data_nullable_watch(
        &self,
        path: &str,
    ) -> Result<(Option<Vec<u8>>, Stat, OneshotWatch), Error> {
        let (watch, registration) = oneshot_watch(self.server_path(path)?, OneshotKind::Data);
        let (data, stat) = self.get_data_inner(path, Some(registration)).await?;
        Ok((data, stat, watch))
    }

    async fn get_data_inner(
        &self,
        path: &str,
        watch: Option<Registration>,
    ) -> Result<(Option<Vec<u8>>, Stat), Error> {
        let request = Request::GetData(GetDataRequest {
            path: self.server_path(path)?,
            watch: watch.is_some(),
        });
        match self.call(request, watch).await? {
            Response::GetData(r) => Ok((r.data, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// The node's ACL and Stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        let request = Request::GetAcl(GetAclRequest {
            path: self.server_path(path)?,
        });
        match self.call(request, None).await? {
            Response::GetAcl(r) => Ok((r.acl, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// The names of the node's children (unordered, as the server sends
    /// them).
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>, Error> {
        let request = Request::GetChildren(GetChildrenRequest {
            path: self.server_path(path)?,
            watch: false,
        });
        match self.call(request, None).await? {
            Response::GetChildren(r) => Ok(r.children),
            other => Err(unexpected(other)),
        }
    }

    /// Like [`Client::get_children`], and sets a one-time watch that fires
    /// when a child is created or deleted, or the node is deleted.
    pub async fn get_children_watch(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, OneshotWatch), Error> {
        let (children, _, watch) = self.get_children2_watch(path).await?;
        Ok((children, watch))
    }

    /// The children's names and the node's Stat.
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        self.get_children2_inner(path, None).await
    }

    /// Like [`Client::get_children2`], with a one-time child watch.
    pub async fn get_children2_watch(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, Stat, OneshotWatch), Error> {
        let (watch, registration) = oneshot_watch(self.server_path(path)?, OneshotKind::Child);
        let (children, stat) = self.get_children2_inner(path, Some(registration)).await?;
        Ok((children, stat, watch))
    }

    async fn get_children2_inner(
        &self,
        path: &str,
        watch: Option<Registration>,
    ) -> Result<(Vec<String>, Stat), Error> {
        let request = Request::GetChildren2(GetChildren2Request {
            path: self.server_path(path)?,
            watch: watch.is_some(),
        });
        match self.call(request, watch).await? {
            Response::GetChildren2(r) => Ok((r.children, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// The number of the node's descendants (not counting itself).
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32, Error> {
        let request = Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
            path: self.server_path(path)?,
        });
        match self.call(request, None).await? {
            Response::GetAllChildrenNumber(r) => Ok(r.total_number),
            other => Err(unexpected(other)),
        }
    }

    /// This session's ephemeral nodes whose path starts with `prefix` (a
    /// plain string prefix: `/e` matches `/es-1`); `/` for all of them.
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let request = Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: self.server_path(prefix)?,
        });
        match self.call(request, None).await? {
            // The prefix match is on strings: `/app` also matches
            // `/application/…`, which is outside the chroot.
            Response::GetEphemerals(r) => Ok(r
                .ephemerals
                .iter()
                .filter_map(|p| self.inner.chroot.strip(p))
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Several getData / getChildren in one round trip; see
    /// [`MultiReadBuilder`]. Not atomic, sets no watches.
    pub fn multi_read(&self) -> MultiReadBuilder<'_> {
        MultiReadBuilder::new(self)
    }

    /// Makes the server this client is connected to catch up with the
    /// leader before answering, so later reads see every write committed
    /// before the sync.
    pub async fn sync(&self, path: &str) -> Result<(), Error> {
        let request = Request::Sync(SyncRequest {
            path: self.server_path(path)?,
        });
        match self.call(request, None).await? {
            Response::Sync(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The ensemble configuration (`/zookeeper/config`) and its Stat.
    pub async fn get_config(&self) -> Result<(Vec<u8>, Stat), Error> {
        let request = Request::GetData(GetDataRequest {
            path: CONFIG_NODE.to_owned(),
            watch: false,
        });
        match self.call(request, None).await? {
            // Null data (length -1) reads as empty here.
            Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// Changes the ensemble's membership incrementally (ZooKeeperAdmin's
    /// `reconfigure(joining, leaving, null, fromConfig)`): `joining` are
    /// server lines as in a dynamic config file
    /// (`server.4=host:2888:3888:observer;2181`), `leaving` server ids.
    /// `from_config` is the config version (the `version=` hex value of
    /// [`Client::get_config`]) the change is based on; `None` applies it to
    /// whatever is current, `Some` fails with `BadVersion` if that moved.
    /// Answers the new configuration and the Stat of `/zookeeper/config`.
    ///
    /// The server must run with `reconfigEnabled=true` (else
    /// `ReconfigDisabled`), and the session needs WRITE on
    /// `/zookeeper/config` (a super user, or `skipACL`; else `NoAuth`).
    pub async fn reconfig_incremental(
        &self,
        joining: &[&str],
        leaving: &[&str],
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        self.reconfig(
            join_nonempty(joining).as_deref(),
            join_nonempty(leaving).as_deref(),
            None,
            from_config,
        )
        .await
    }

    /// Replaces the whole membership (ZooKeeperAdmin's non-incremental
    /// `reconfigure(null, null, newMembers, fromConfig)`): `members` are
    /// every server line of the new configuration. See
    /// [`Client::reconfig_incremental`] for `from_config`, the answer and
    /// the permissions needed.
    pub async fn reconfig_members(
        &self,
        members: &[&str],
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        let members = join_nonempty(members).ok_or(Error::BadArguments)?;
        self.reconfig(None, None, Some(&members), from_config).await
    }

    /// reconfig (16) as it goes on the wire: comma-separated `joining`
    /// server lines and `leaving` ids, or comma- or newline-separated
    /// `members` (the server refuses mixing the two forms); absent parts
    /// are sent as null strings, as ZooKeeperAdmin sends them.
    pub async fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        members: Option<&str>,
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        let request = Request::Reconfig(ReconfigRequest {
            joining_servers: joining.map(str::to_owned),
            leaving_servers: leaving.map(str::to_owned),
            new_members: members.map(str::to_owned),
            cur_config_id: from_config.unwrap_or(-1),
        });
        match self.call(request, None).await? {
            Response::Reconfig(r) => Ok((r.data.unwrap_or_default(), r.stat)),
            other => Err(unexpected(other)),
        }
    }

    // ----- auth -----

    /// Adds credentials to the session, e.g. `add_auth("digest",
    /// b"user:password")`. They are resent on every reconnect. A refusal
    /// ends the session ([`Error::AuthFailed`], state `AuthFailed`), as in
    /// ZooKeeper.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Auth {
                scheme: scheme.to_owned(),
                auth: auth.to_vec(),
                reply,
            })
            .await
            .map_err(|_| self.terminal_error())?;
        rx.await.map_err(|_| self.terminal_error())?
    }

    /// The identities this connection is authenticated as (scheme, user).
    pub async fn whoami(&self) -> Result<Vec<ClientInfo>, Error> {
        match self.call(Request::WhoAmI, None).await? {
            Response::WhoAmI(r) => Ok(r.client_info),
            other => Err(unexpected(other)),
        }
    }

    // ----- watches -----

    /// Sets a persistent watch on `path` (which need not exist) and returns
    /// its events. `Persistent`: the node's own changes plus
    /// NodeChildrenChanged for its children. `PersistentRecursive`: the
    /// node's and every descendant's changes, never NodeChildrenChanged.
    /// It stays until [`Client::remove_watches`] with `WatcherType::Any`,
    /// and is re-registered after reconnects (without catch-up events).
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<WatchStream, Error> {
        let server_path = self.server_path(path)?;
        let (stream, registration) = watch_stream(
            server_path.clone(),
            mode == AddWatchMode::PersistentRecursive,
            self.inner.watch_stream_capacity,
        );
        let request = Request::AddWatch(AddWatchRequest {
            path: server_path,
            mode: mode.code(),
        });
        match self.call(request, Some(registration)).await? {
            Response::AddWatch(_) => Ok(stream),
            other => Err(unexpected(other)),
        }
    }

    /// Removes this session's watches of `kind` on `path`, on the server
    /// and here; the removed watchers get a *WatchRemoved event.
    /// `WatcherType::Any` also removes persistent watches. `NoWatcher` when
    /// there was none on the server.
    pub async fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<(), Error> {
        let server_path = self.server_path(path)?;
        let request = Request::RemoveWatches(RemoveWatchesRequest {
            path: server_path.clone(),
            watch_type: kind.code(),
        });
        let registration = Registration::Remove {
            path: server_path,
            kind,
        };
        match self.call(request, Some(registration)).await? {
            Response::Empty => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Whether the server holds a watch of `kind` on `path` for this
    /// session (`NoWatcher` when not).
    pub async fn check_watches(&self, path: &str, kind: WatcherType) -> Result<(), Error> {
        let request = Request::CheckWatches(CheckWatchesRequest {
            path: self.server_path(path)?,
            watch_type: kind.code(),
        });
        match self.call(request, None).await? {
            Response::Empty => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

/// `parts` joined with commas, `None` when there are none (ZooKeeper
/// reads an empty string as one empty, invalid entry).
fn join_nonempty(parts: &[&str]) -> Option<String> {
    (!parts.is_empty()).then(|| parts.join(","))
}

/// A reply of the wrong shape for its request: a server bug.
pub(crate) fn unexpected(response: Response) -> Error {
    Error::Protocol(format!("unexpected reply {response:?}"))
}
