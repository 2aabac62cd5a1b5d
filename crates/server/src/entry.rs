//! The server's log entry: a tree transaction plus where its reply goes.
//!
//! Every server applies every entry; only the server named in `origin`
//! replies, to the connection named in `conn`.

use corral_tree::Txn;
use serde::{Deserialize, Serialize};

/// One replicated request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Server id of the server holding the client connection.
    pub origin: u64,
    /// Connection on `origin` that waits for the reply (0: nobody waits).
    pub conn: u64,
    /// The request's xid, echoed in the reply.
    pub xid: i32,
    pub txn: Txn,
}

impl LogEntry {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<LogEntry, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// ZooKeeper-shaped zxid: `(epoch << 32) | counter`, where the epoch is the
/// Raft term of the entry. Strictly increasing because terms in a log never
/// decrease.
pub fn next_zxid(last_zxid: i64, term: u64) -> i64 {
    let epoch = (term & 0xFFFF_FFFF) as i64;
    if last_zxid >> 32 == epoch {
        last_zxid + 1
    } else {
        assert!(
            epoch > last_zxid >> 32,
            "log term went backwards: {epoch} after zxid {last_zxid:#x}"
        );
        (epoch << 32) | 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_counter_restarts_at_each_new_epoch() {
        assert_eq!(next_zxid(0, 1), (1 << 32) | 1);
        assert_eq!(next_zxid((1 << 32) | 1, 1), (1 << 32) | 2);
        assert_eq!(next_zxid((1 << 32) | 7, 3), (3 << 32) | 1);
    }
}
