//! A blocking facade for programs without an async runtime: the same
//! client, driven by a private one-worker tokio runtime (the worker thread
//! keeps the session alive, pinging and reconnecting, while the caller's
//! thread waits in `block_on`).
//!
//! Do not call these methods from inside an async runtime; use the async
//! [`crate::Client`] there.

use std::time::Duration;

use corral_proto::records::ClientInfo;
use corral_proto::{Acl, AddWatchMode, CreateMode, Stat, WatcherType};
use tokio::runtime::{Handle, Runtime};

use crate::builder::ClientBuilder;
use crate::error::Error;
use crate::multi::{NullableReadResult, OpResult, ReadResult};
use crate::state::SessionState;
use crate::watch::{OneshotWatch, WatchStream, WatchedEvent};

/// How long dropping a blocking client waits for closeSession.
const CLOSE_ON_DROP_TIMEOUT: Duration = Duration::from_secs(3);

/// A blocking ZooKeeper client; see [`crate::Client`] for what each method
/// does. Safe to share between threads (`&self` everywhere). Dropping it
/// closes the session.
#[derive(Debug)]
pub struct Client {
    client: crate::Client,
    handle: Handle,
    /// Taken on drop, to shut it down without blocking.
    runtime: Option<Runtime>,
}

/// A one-time watch to wait on from blocking code.
#[derive(Debug)]
pub struct Watch {
    watch: OneshotWatch,
    handle: Handle,
}

impl Watch {
    /// Waits for the event (or the session's end).
    pub fn wait(self) -> WatchedEvent {
        self.handle.block_on(self.watch)
    }

    /// Waits at most `timeout`; gives the watch back if it has not fired.
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<WatchedEvent, Watch> {
        let handle = self.handle.clone();
        match handle.block_on(async { tokio::time::timeout(timeout, &mut self.watch).await }) {
            Ok(event) => Ok(event),
            Err(_) => Err(self),
        }
    }
}

/// The events of a persistent watch, for blocking code.
#[derive(Debug)]
pub struct Watches {
    stream: WatchStream,
    handle: Handle,
}

/// Blocks for each next event; ends when the stream ends (see
/// [`Watches::lagged`]).
impl Iterator for Watches {
    type Item = WatchedEvent;

    fn next(&mut self) -> Option<WatchedEvent> {
        self.stream.blocking_next()
    }
}

impl Watches {
    /// The next event within `timeout`; `Ok(None)` when the stream ended,
    /// `Err(())` on timeout.
    #[allow(clippy::result_unit_err)]
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<WatchedEvent>, ()> {
        let stream = &mut self.stream;
        self.handle
            .block_on(async { tokio::time::timeout(timeout, stream.next()).await })
            .map_err(|_| ())
    }

    /// True when the stream was cut off for falling behind.
    pub fn lagged(&self) -> bool {
        self.stream.lagged()
    }
}

impl Client {
    /// Connects with default settings.
    pub fn connect(connect_string: &str) -> Result<Client, Error> {
        Client::connect_with(ClientBuilder::default(), connect_string)
    }

    /// Connects with `builder`'s settings.
    pub fn connect_with(builder: ClientBuilder, connect_string: &str) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("corral-client")
            .enable_all()
            .build()
            .map_err(|e| Error::ConnectFailed {
                hosts: connect_string.to_owned(),
                last_error: format!("cannot start the client runtime: {e}"),
            })?;
        let client = runtime.block_on(builder.connect(connect_string))?;
        Ok(Client {
            client,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// The async client underneath, e.g. to hand to async code.
    pub fn as_async(&self) -> &crate::Client {
        &self.client
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    fn watch(&self, watch: OneshotWatch) -> Watch {
        Watch {
            watch,
            handle: self.handle.clone(),
        }
    }

    pub fn state(&self) -> SessionState {
        self.client.state()
    }

    pub fn session_id(&self) -> i64 {
        self.client.session_id()
    }

    /// See [`crate::Client::expired_sessions`].
    pub fn expired_sessions(&self) -> u64 {
        self.client.expired_sessions()
    }

    /// See [`crate::Client::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.client.is_finished()
    }

    pub fn session_timeout(&self) -> Duration {
        self.client.session_timeout()
    }

    /// Blocks until `state` is reached or `timeout` passes; returns the
    /// state it ended on.
    pub fn wait_for_state(&self, timeout: Duration, wanted: SessionState) -> SessionState {
        let mut rx = self.client.state_watcher();
        self.block_on(async {
            let _ = tokio::time::timeout(timeout, rx.wait_for(|s| *s == wanted)).await;
        });
        self.client.state()
    }

    pub fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        self.block_on(self.client.create(path, data, acl, mode))
    }

    pub fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Duration,
    ) -> Result<(String, Stat), Error> {
        self.block_on(self.client.create_ttl(path, data, acl, mode, ttl))
    }

    /// `data` `None` stores null data; see [`crate::Client::create_nullable`].
    pub fn create_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        self.block_on(self.client.create_nullable(path, data, acl, mode))
    }

    pub fn create_ttl_nullable(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl: Duration,
    ) -> Result<(String, Stat), Error> {
        self.block_on(self.client.create_ttl_nullable(path, data, acl, mode, ttl))
    }

    pub fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        self.block_on(self.client.delete(path, version))
    }

    pub fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        self.block_on(self.client.exists(path))
    }

    pub fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, Watch), Error> {
        let (stat, watch) = self.block_on(self.client.exists_watch(path))?;
        Ok((stat, self.watch(watch)))
    }

    pub fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        self.block_on(self.client.get_data(path))
    }

    /// Null data as `None`; see [`crate::Client::get_data_nullable`].
    pub fn get_data_nullable(&self, path: &str) -> Result<(Option<Vec<u8>>, Stat), Error> {
        self.block_on(self.client.get_data_nullable(path))
    }

    pub fn get_data_watch(&self, path: &str) -> Result<(Vec<u8>, Stat, Watch), Error> {
        let (data, stat, watch) = self.block_on(self.client.get_data_watch(path))?;
        Ok((data, stat, self.watch(watch)))
    }

    pub fn set_data(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, Error> {
        self.block_on(self.client.set_data(path, data, version))
    }

    pub fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        self.block_on(self.client.get_acl(path))
    }

    pub fn set_acl(&self, path: &str, acl: &[Acl], version: Option<i32>) -> Result<Stat, Error> {
        self.block_on(self.client.set_acl(path, acl, version))
    }

    pub fn get_children(&self, path: &str) -> Result<Vec<String>, Error> {
        self.block_on(self.client.get_children(path))
    }

    pub fn get_children_watch(&self, path: &str) -> Result<(Vec<String>, Watch), Error> {
        let (children, watch) = self.block_on(self.client.get_children_watch(path))?;
        Ok((children, self.watch(watch)))
    }

    pub fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        self.block_on(self.client.get_children2(path))
    }

    pub fn get_all_children_number(&self, path: &str) -> Result<i32, Error> {
        self.block_on(self.client.get_all_children_number(path))
    }

    pub fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.block_on(self.client.get_ephemerals(prefix))
    }

    pub fn sync(&self, path: &str) -> Result<(), Error> {
        self.block_on(self.client.sync(path))
    }

    pub fn get_config(&self) -> Result<(Vec<u8>, Stat), Error> {
        self.block_on(self.client.get_config())
    }

    /// See [`crate::Client::reconfig_incremental`].
    pub fn reconfig_incremental(
        &self,
        joining: &[&str],
        leaving: &[&str],
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        self.block_on(
            self.client
                .reconfig_incremental(joining, leaving, from_config),
        )
    }

    /// See [`crate::Client::reconfig_members`].
    pub fn reconfig_members(
        &self,
        members: &[&str],
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        self.block_on(self.client.reconfig_members(members, from_config))
    }

    /// See [`crate::Client::reconfig`].
    pub fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        members: Option<&str>,
        from_config: Option<i64>,
    ) -> Result<(Vec<u8>, Stat), Error> {
        self.block_on(self.client.reconfig(joining, leaving, members, from_config))
    }

    pub fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        self.block_on(self.client.add_auth(scheme, auth))
    }

    pub fn whoami(&self) -> Result<Vec<ClientInfo>, Error> {
        self.block_on(self.client.whoami())
    }

    pub fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<Watches, Error> {
        let stream = self.block_on(self.client.add_watch(path, mode))?;
        Ok(Watches {
            stream,
            handle: self.handle.clone(),
        })
    }

    pub fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<(), Error> {
        self.block_on(self.client.remove_watches(path, kind))
    }

    /// Runs a multi built on the async client:
    /// `client.multi(|m| m.create(..).delete(..))`.
    pub fn multi(
        &self,
        build: impl FnOnce(crate::MultiBuilder<'_>) -> crate::MultiBuilder<'_>,
    ) -> Result<Vec<OpResult>, Error> {
        self.block_on(build(self.client.multi()).commit())
    }

    /// Runs a multiRead built on the async client.
    pub fn multi_read(
        &self,
        build: impl FnOnce(crate::MultiReadBuilder<'_>) -> crate::MultiReadBuilder<'_>,
    ) -> Result<Vec<ReadResult>, Error> {
        self.block_on(build(self.client.multi_read()).execute())
    }

    /// Like [`Client::multi_read`], with null data as `None`; see
    /// [`crate::MultiReadBuilder::execute_nullable`].
    pub fn multi_read_nullable(
        &self,
        build: impl FnOnce(crate::MultiReadBuilder<'_>) -> crate::MultiReadBuilder<'_>,
    ) -> Result<Vec<NullableReadResult>, Error> {
        self.block_on(build(self.client.multi_read()).execute_nullable())
    }

    /// Closes the session (also done on drop).
    pub fn close(&self) -> Result<(), Error> {
        self.block_on(self.client.close())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Inside an async runtime, block_on would panic: the session then
        // ends by timeout on the server instead.
        if Handle::try_current().is_err() && !self.client.is_finished() {
            let client = self.client.clone();
            self.handle.block_on(async move {
                let _ = tokio::time::timeout(CLOSE_ON_DROP_TIMEOUT, client.close()).await;
            });
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
