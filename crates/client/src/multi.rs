//! Batches: [`MultiBuilder`] for multi (14), an atomic list of create /
//! delete / setData / check, and [`MultiReadBuilder`] for multiRead (22),
//! several getData / getChildren in one round trip.
//!
//! A failed multi comes back from ZooKeeper as one error result per op (0
//! before the failing op, its code, then RuntimeInconsistency); it is
//! surfaced as [`Error::MultiFailed`] naming the failing op and its code.

use std::time::Duration;

use corral_proto::records::{
    CheckVersionRequest, DeleteRequest, GetChildrenRequest, GetDataRequest, SetDataRequest,
};
use corral_proto::{
    Acl, CreateKind, CreateMode, ErrorCode, MultiOp, MultiResponseItem, ReadOp, Request, Response,
    Stat,
};

use crate::client::{unexpected, Client};
use crate::error::Error;

/// The result of one op of a successful multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The created path (chroot stripped). `stat` is present for containers
    /// and TTL nodes (they answer as create2); plain creates are sent as
    /// create (1), which every ZooKeeper 3.8 applies correctly inside multi,
    /// and carry no Stat.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
}

/// Collects the ops of a multi; nothing is sent until [`MultiBuilder::commit`].
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::{Acl, CreateMode};
/// let results = client
///     .multi()
///     .check("/config", 3)
///     .create("/config/a", b"1", &Acl::open_unsafe(), CreateMode::Persistent)
///     .set_data("/config", b"v4", Some(3))
///     .commit()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a multi does nothing until committed"]
pub struct MultiBuilder<'a> {
    client: &'a Client,
    ops: Vec<MultiOp>,
    /// The first op that could not be built (bad path, bad ACL).
    invalid: Option<(usize, Error)>,
}

impl<'a> MultiBuilder<'a> {
    pub(crate) fn new(client: &'a Client) -> MultiBuilder<'a> {
        MultiBuilder {
            client,
            ops: Vec::new(),
            invalid: None,
        }
    }

    fn push(mut self, op: Result<MultiOp, Error>) -> Self {
        match op {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                if self.invalid.is_none() {
                    self.invalid = Some((self.ops.len(), e));
                }
                // Keep the indexes of later ops right.
                self.ops.push(MultiOp::Check(CheckVersionRequest {
                    path: String::new(),
                    version: -1,
                }));
            }
        }
        self
    }

    /// Creates a node (containers as createContainer; TTL modes need
    /// [`MultiBuilder::create_ttl`]).
    pub fn create(self, path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) -> Self {
        self.create_nullable(path, Some(data), acl, mode)
    }

    /// Like [`MultiBuilder::create`]; `data` `None` stores null data (see
    /// [`Client::create_nullable`]).
    pub fn create_nullable(
        self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
    ) -> Self {
        let op = self
            .client
            .create_op(path, data, acl, mode, None, CreateKind::Create)
            .map(MultiOp::Create);
        self.push(op)
    }

    /// Creates a TTL node.
    pub fn create_ttl(
        self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Duration,
    ) -> Self {
        self.create_ttl_nullable(path, Some(data), acl, mode, ttl)
    }

    /// Like [`MultiBuilder::create_ttl`]; `data` `None` stores null data.
    pub fn create_ttl_nullable(
        self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl: Duration,
    ) -> Self {
        let op = self
            .client
            .create_op(path, data, acl, mode, Some(ttl), CreateKind::Create)
            .map(MultiOp::Create);
        self.push(op)
    }

    /// Deletes a node; `version` `None` matches any.
    pub fn delete(self, path: &str, version: Option<i32>) -> Self {
        let op = self.client.server_path(path).map(|path| {
            MultiOp::Delete(DeleteRequest {
                path,
                version: version.unwrap_or(-1),
            })
        });
        self.push(op)
    }

    /// Sets a node's data; `version` `None` matches any.
    pub fn set_data(self, path: &str, data: &[u8], version: Option<i32>) -> Self {
        let op = self.client.server_path(path).map(|path| {
            MultiOp::SetData(SetDataRequest {
                path,
                data: Some(data.to_vec()),
                version: version.unwrap_or(-1),
            })
        });
        self.push(op)
    }

    /// Requires the node to exist at `version` (-1 for any) for the multi
    /// to apply.
    pub fn check(self, path: &str, version: i32) -> Self {
        let op = self
            .client
            .server_path(path)
            .map(|path| MultiOp::Check(CheckVersionRequest { path, version }));
        self.push(op)
    }

    /// Number of ops so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Sends the multi. All ops apply, or none: on failure the error is
    /// [`Error::MultiFailed`] with the index of the op that failed.
    pub async fn commit(self) -> Result<Vec<OpResult>, Error> {
        if let Some((index, error)) = self.invalid {
            return Err(Error::MultiFailed {
                index,
                error: Box::new(error),
            });
        }
        let op_count = self.ops.len();
        let items = match self.client.call_multi(Request::Multi(self.ops)).await? {
            Response::Multi(items) => items,
            other => return Err(unexpected(other)),
        };
        if items.len() != op_count {
            return Err(Error::Protocol(format!(
                "multi of {op_count} ops answered with {} results",
                items.len()
            )));
        }
        if let Some((index, code)) = first_failure(&items) {
            return Err(Error::MultiFailed {
                index,
                error: Box::new(Error::from(code)),
            });
        }
        items
            .into_iter()
            .map(|item| match item {
                MultiResponseItem::Create { path } => Ok(OpResult::Create {
                    path: self.client.client_path(&path),
                    stat: None,
                }),
                MultiResponseItem::Create2 { path, stat } => Ok(OpResult::Create {
                    path: self.client.client_path(&path),
                    stat: Some(stat),
                }),
                MultiResponseItem::Delete => Ok(OpResult::Delete),
                MultiResponseItem::SetData { stat } => Ok(OpResult::SetData { stat }),
                MultiResponseItem::Check => Ok(OpResult::Check),
                other => Err(Error::Protocol(format!(
                    "unexpected multi result {other:?}"
                ))),
            })
            .collect()
    }
}

/// The failing op of a failed multi: the first result with a non-zero code.
fn first_failure(items: &[MultiResponseItem]) -> Option<(usize, ErrorCode)> {
    items
        .iter()
        .enumerate()
        .find_map(|(index, item)| match item {
            MultiResponseItem::Error(code) if *code != ErrorCode::Ok => Some((index, *code)),
            _ => None,
        })
}

/// The result of one op of a multiRead; each op succeeds or fails alone.
/// Null data reads as empty, as [`Client::get_data`] does; see
/// [`NullableReadResult`] to keep the two apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Data { data: Vec<u8>, stat: Stat },
    Children { children: Vec<String> },
    Error(Error),
}

/// The result of one op of a multiRead from
/// [`MultiReadBuilder::execute_nullable`]: like [`ReadResult`], but data is
/// `None` when it is null (ZooKeeper keeps null apart from empty), as
/// [`Client::get_data_nullable`] reads it. A separate type so that code
/// matching on [`ReadResult`] keeps compiling and reading what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NullableReadResult {
    Data { data: Option<Vec<u8>>, stat: Stat },
    Children { children: Vec<String> },
    Error(Error),
}

impl From<NullableReadResult> for ReadResult {
    /// Null data becomes empty.
    fn from(result: NullableReadResult) -> ReadResult {
        match result {
            NullableReadResult::Data { data, stat } => ReadResult::Data {
                data: data.unwrap_or_default(),
                stat,
            },
            NullableReadResult::Children { children } => ReadResult::Children { children },
            NullableReadResult::Error(e) => ReadResult::Error(e),
        }
    }
}

/// Collects the ops of a multiRead; nothing is sent until
/// [`MultiReadBuilder::execute`].
#[derive(Debug)]
#[must_use = "a multiRead does nothing until executed"]
pub struct MultiReadBuilder<'a> {
    client: &'a Client,
    ops: Vec<ReadOp>,
    invalid: Option<(usize, Error)>,
}

impl<'a> MultiReadBuilder<'a> {
    pub(crate) fn new(client: &'a Client) -> MultiReadBuilder<'a> {
        MultiReadBuilder {
            client,
            ops: Vec::new(),
            invalid: None,
        }
    }

    fn push(mut self, path: &str, op: impl FnOnce(String) -> ReadOp) -> Self {
        match self.client.server_path(path) {
            Ok(path) => self.ops.push(op(path)),
            Err(e) => {
                if self.invalid.is_none() {
                    self.invalid = Some((self.ops.len(), e));
                }
                self.ops.push(op(String::new()));
            }
        }
        self
    }

    /// Reads a node's data and Stat.
    pub fn get_data(self, path: &str) -> Self {
        self.push(path, |path| {
            ReadOp::GetData(GetDataRequest { path, watch: false })
        })
    }

    /// Lists a node's children.
    pub fn get_children(self, path: &str) -> Self {
        self.push(path, |path| {
            ReadOp::GetChildren(GetChildrenRequest { path, watch: false })
        })
    }

    /// Sends the reads; one result per op, in order. Null data reads as
    /// empty; [`MultiReadBuilder::execute_nullable`] keeps it apart.
    pub async fn execute(self) -> Result<Vec<ReadResult>, Error> {
        let results = self.execute_nullable().await?;
        Ok(results.into_iter().map(ReadResult::from).collect())
    }

    /// Like [`MultiReadBuilder::execute`], with null data as `None`.
    pub async fn execute_nullable(self) -> Result<Vec<NullableReadResult>, Error> {
        if let Some((index, error)) = self.invalid {
            return Err(Error::MultiFailed {
                index,
                error: Box::new(error),
            });
        }
        let items = match self.client.call_multi(Request::MultiRead(self.ops)).await? {
            Response::Multi(items) => items,
            other => return Err(unexpected(other)),
        };
        items
            .into_iter()
            .map(|item| match item {
                // Null data was sent as length -1 and decoded as `None`.
                MultiResponseItem::GetData { data, stat } => {
                    Ok(NullableReadResult::Data { data, stat })
                }
                MultiResponseItem::GetChildren { children } => {
                    Ok(NullableReadResult::Children { children })
                }
                MultiResponseItem::Error(code) => Ok(NullableReadResult::Error(Error::from(code))),
                other => Err(Error::Protocol(format!(
                    "unexpected multiRead result {other:?}"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_op_is_the_first_non_zero_result() {
        let items = [
            MultiResponseItem::Error(ErrorCode::Ok),
            MultiResponseItem::Error(ErrorCode::NoNode),
            MultiResponseItem::Error(ErrorCode::RuntimeInconsistency),
        ];
        assert_eq!(first_failure(&items), Some((1, ErrorCode::NoNode)));
        assert_eq!(first_failure(&[MultiResponseItem::Check]), None);
    }
}
