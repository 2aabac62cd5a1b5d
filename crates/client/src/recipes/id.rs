//! Unique, increasing ids from sequential nodes: each id is the sequence
//! suffix the server gives a new child of `<path>` — unique across every
//! process using the path and increasing in creation order. The child
//! (`id-<seq>`, ephemeral) is deleted right away; the counter lives in the
//! parent and survives.
//!
//! The server's counter is a signed 32-bit number: after 2,147,483,647 ids
//! under one path the suffix wraps to negative numbers. Use one path per
//! kind of id, or several paths (shards) as a prefix.

use corral_proto::{Acl, CreateMode};

use super::{create_parents, delete_in_background, node_name};
use crate::{Client, Error};

/// Name of the nodes the generator creates.
pub const ID_NODE_NAME: &str = "id-";

/// Hands out ids from sequential nodes.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::id::IdGenerator;
/// let ids = IdGenerator::new(client, "/ids/orders");
/// let a = ids.next_id().await?;
/// let b = ids.next_id().await?;
/// assert!(b > a);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct IdGenerator {
    client: Client,
    path: String,
    node_prefix: String,
}

impl IdGenerator {
    /// Ids counted under `path` (created on first use).
    pub fn new(client: &Client, path: &str) -> IdGenerator {
        IdGenerator {
            client: client.clone(),
            path: path.to_owned(),
            node_prefix: super::join(path, ID_NODE_NAME),
        }
    }

    /// The next id. A connection loss while creating is returned as
    /// [`Error::ConnectionLoss`] (the id it may have taken is skipped, never
    /// handed out twice).
    pub async fn next_id(&self) -> Result<i64, Error> {
        let mut parents_made = false;
        loop {
            let created = self
                .client
                .create(
                    &self.node_prefix,
                    b"",
                    &Acl::open_unsafe(),
                    CreateMode::EphemeralSequential,
                )
                .await;
            match created {
                Ok((path, _)) => {
                    let id = parse_sequence(node_name(&path)).ok_or_else(|| {
                        Error::Protocol(format!("sequential node {path} has no sequence suffix"))
                    })?;
                    delete_in_background(&self.client, path);
                    return Ok(id);
                }
                Err(Error::NoNode) if !parents_made => {
                    create_parents(&self.client, &self.node_prefix, false).await?;
                    parents_made = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The next id as the server wrote it: 10 digits, zero padded.
    pub async fn next_id_string(&self) -> Result<String, Error> {
        Ok(format!("{:010}", self.next_id().await?))
    }

    /// Where the ids are counted.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// The sequence number at the end of a sequential node's name: the server
/// appends `%010d` of a signed 32-bit counter, so ten characters (a
/// negative number carries its sign within them), except `i32::MIN`, which
/// takes eleven.
pub fn parse_sequence(name: &str) -> Option<i64> {
    let start = name.len().checked_sub(10)?;
    let value: i32 = match name.get(start..)?.parse::<i64>().ok()? {
        2_147_483_648 if name[..start].ends_with('-') => i32::MIN,
        n => i32::try_from(n).ok()?,
    };
    Some(i64::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_the_last_ten_characters() {
        assert_eq!(parse_sequence("id-0000000042"), Some(42));
        assert_eq!(parse_sequence("_c_x-lock-2147483647"), Some(2_147_483_647));
        assert_eq!(parse_sequence("id--000000001"), Some(-1));
        assert_eq!(parse_sequence("id--2147483648"), Some(-2_147_483_648));
        assert_eq!(parse_sequence("short"), None);
    }
}
