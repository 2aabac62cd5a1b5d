//! Glue between the server and the replication layer: proposals go in
//! through a bounded queue, committed entries come back through
//! `Shared::apply_committed`.
//!
//! TEMPORARY: until the openraft replica lands, entries are applied directly
//! in arrival order (no durability).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::core::Shared;
use crate::ServerError;

pub struct ReplicaHandle {
    task: tokio::task::JoinHandle<()>,
}

impl ReplicaHandle {
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

pub async fn open(
    shared: Arc<Shared>,
    mut proposals: mpsc::Receiver<Vec<u8>>,
) -> Result<ReplicaHandle, ServerError> {
    let task = tokio::spawn(async move {
        let mut index = 0u64;
        while let Some(payload) = proposals.recv().await {
            index += 1;
            shared.apply_committed(1, index, &payload);
        }
    });
    Ok(ReplicaHandle { task })
}
