//! A small driver for applying transactions to a `DataTree` in tests.
#![allow(dead_code)]

use corral_proto::{Acl, CreateMode, Id, Stat};
use corral_tree::{ApplyOutcome, DataTree, TreeConfig, Txn, TxnOp, TxnResult};

pub const SESSION: i64 = 0x100;

pub struct Driver {
    pub tree: DataTree,
    pub zxid: i64,
    pub auth: Vec<Id>,
}

impl Driver {
    pub fn new() -> Driver {
        Driver::with_config(TreeConfig::default())
    }

    pub fn with_config(config: TreeConfig) -> Driver {
        let mut driver = Driver {
            tree: DataTree::new(config),
            zxid: 0,
            auth: vec![Id::new("ip", "127.0.0.1")],
        };
        driver.apply(TxnOp::CreateSession { timeout_ms: 30_000 });
        driver
    }

    /// Applies `op` for [`SESSION`] at the next zxid; time = zxid × 1000.
    pub fn apply(&mut self, op: TxnOp) -> ApplyOutcome {
        self.apply_as(SESSION, self.auth.clone(), op)
    }

    pub fn apply_as(&mut self, session_id: i64, auth: Vec<Id>, op: TxnOp) -> ApplyOutcome {
        let outcome = self.apply_unchecked(session_id, auth, op);
        self.tree.assert_invariants();
        outcome
    }

    /// [`Driver::apply_as`] without the O(nodes) invariant check after it,
    /// for building big trees; check them once afterwards.
    pub fn apply_unchecked(&mut self, session_id: i64, auth: Vec<Id>, op: TxnOp) -> ApplyOutcome {
        self.zxid += 1;
        let txn = Txn {
            session_id,
            time_ms: self.zxid * 1000,
            auth,
            op,
        };
        let outcome = self.tree.apply(self.zxid, &txn);
        assert_eq!(outcome.zxid, self.zxid);
        assert_eq!(self.tree.last_zxid(), self.zxid);
        outcome
    }

    pub fn result(&mut self, op: TxnOp) -> TxnResult {
        self.apply(op).result
    }

    /// Creates a persistent node with open ACL and panics unless it worked.
    pub fn mk(&mut self, path: &str) -> Stat {
        match self.result(create(path, b"", CreateMode::Persistent)) {
            TxnResult::Created { stat, .. } => stat,
            other => panic!("create {path}: {other:?}"),
        }
    }

    pub fn stat(&self, path: &str) -> Stat {
        self.tree
            .stat(path)
            .unwrap_or_else(|| panic!("{path} is missing"))
    }
}

pub fn create(path: &str, data: &[u8], mode: CreateMode) -> TxnOp {
    TxnOp::Create {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms: -1,
    }
}

pub fn create_acl(path: &str, acl: Vec<Acl>) -> TxnOp {
    TxnOp::Create {
        path: path.into(),
        data: Some(Vec::new()),
        acl,
        mode: CreateMode::Persistent,
        ttl_ms: -1,
    }
}

pub fn create_ttl(path: &str, mode: CreateMode, ttl_ms: i64) -> TxnOp {
    TxnOp::Create {
        path: path.into(),
        data: Some(Vec::new()),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms,
    }
}

pub fn delete(path: &str, version: i32) -> TxnOp {
    TxnOp::Delete {
        path: path.into(),
        version,
    }
}

pub fn set_data(path: &str, data: &[u8], version: i32) -> TxnOp {
    TxnOp::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    }
}

/// A persistent create with null data (the wire's length -1).
pub fn create_null(path: &str) -> TxnOp {
    TxnOp::Create {
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: -1,
    }
}

/// A setData with null data.
pub fn set_data_null(path: &str, version: i32) -> TxnOp {
    TxnOp::SetData {
        path: path.into(),
        data: None,
        version,
    }
}

pub fn err(code: corral_proto::ErrorCode) -> TxnResult {
    TxnResult::Error(code)
}

pub fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}
