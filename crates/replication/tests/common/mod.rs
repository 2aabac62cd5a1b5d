//! Test helpers shared by the integration tests: an in-memory applier that records what it
//! is given, and quick constructors for replica configs in temp dirs.
#![allow(dead_code)]

use std::sync::Mutex;

use corral_replication::Applier;
use corral_replication::Rejection;

/// An applier whose state is the list of applied payloads (with their term and index).
#[derive(Default)]
pub struct VecApplier {
    pub applied: Mutex<Vec<(u64, u64, Vec<u8>)>>,
    pub restores: Mutex<u64>,
    pub rejected: Mutex<Vec<(Vec<u8>, Rejection)>>,
    pub peer_messages: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl VecApplier {
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, p)| p.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.applied.lock().unwrap().len()
    }

    pub fn entries(&self) -> Vec<(u64, u64, Vec<u8>)> {
        self.applied.lock().unwrap().clone()
    }

    pub fn take_rejected(&self) -> Vec<(Vec<u8>, Rejection)> {
        std::mem::take(&mut *self.rejected.lock().unwrap())
    }
}

impl Applier for VecApplier {
    fn apply(&self, term: u64, index: u64, payload: &[u8]) {
        self.applied
            .lock()
            .unwrap()
            .push((term, index, payload.to_vec()));
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(&*self.applied.lock().unwrap()).unwrap()
    }

    fn restore(&self, data: &[u8]) -> Result<(), String> {
        let v: Vec<(u64, u64, Vec<u8>)> = postcard::from_bytes(data).map_err(|e| e.to_string())?;
        *self.applied.lock().unwrap() = v;
        *self.restores.lock().unwrap() += 1;
        Ok(())
    }

    fn on_peer_message(&self, from: u64, bytes: &[u8]) {
        self.peer_messages
            .lock()
            .unwrap()
            .push((from, bytes.to_vec()));
    }

    fn rejected(&self, payload: &[u8], rejection: Rejection) {
        self.rejected
            .lock()
            .unwrap()
            .push((payload.to_vec(), rejection));
    }
}
