//! `corral-client`: an async Rust client for ZooKeeper-compatible servers
//! (Corral and Apache ZooKeeper 3.5+), built on `corral-proto`.
//!
//! The `client` layer of Corral. A [`Client`] is a handle to one session;
//! behind it one background task per client owns the socket, pipelines
//! requests, pings, reconnects (to the next host, keeping the session,
//! resending credentials and re-registering watches) and delivers watch
//! events. [`blocking::Client`] wraps it for non-async programs.
//!
//! Files, in the order a request travels: [`connect_string`] (hosts and
//! chroot), [`builder`] (settings, starts the task), [`client`] (the API),
//! [`multi`] (batches), `path` (path rules, chroot), `session` (the task:
//! socket, reconnect, reply matching), [`watch`] (watch bookkeeping and the
//! futures and streams handed to callers), [`state`], [`error`], [`acl`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral_client::Error> {
//! use corral_client::{Acl, Client, CreateMode};
//! let client = Client::connect("127.0.0.1:2181/app").await?;
//! let (path, stat) = client
//!     .create("/job-", b"payload", &Acl::open_unsafe(), CreateMode::EphemeralSequential)
//!     .await?;
//! let (data, stat, watch) = client.get_data_watch(&path).await?;
//! client.set_data(&path, b"new", Some(stat.version)).await?;
//! let event = watch.await; // NodeDataChanged on `path`
//! client.close().await?;
//! # Ok(()) }
//! ```

pub mod acl;
pub mod blocking;
pub mod builder;
pub mod client;
pub mod connect_string;
pub mod error;
pub mod multi;
mod path;
pub mod recipes;
mod session;
pub mod state;
pub mod watch;

pub use acl::{digest_acl, digest_id, AclExt};
pub use builder::ClientBuilder;
pub use client::Client;
pub use error::Error;
pub use multi::{MultiBuilder, MultiReadBuilder, NullableReadResult, OpResult, ReadResult};
pub use path::Chroot;
pub use state::SessionState;
pub use watch::{OneshotWatch, WatchStream, WatchedEvent};

pub use corral_proto::records::ClientInfo;
pub use corral_proto::{
    perms, Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, KeeperState, Stat, WatcherType,
};
