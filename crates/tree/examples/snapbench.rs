//! Micro-benchmark of the tree alone: N creates, clone, snapshot write and read.
//! `cargo run --release -p corral-tree --example snapbench -- 1000000`
use corral_proto::{Acl, CreateMode};
use corral_tree::{DataTree, TreeConfig, Txn, TxnOp};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut t = DataTree::new(TreeConfig::default());
    let mut z = 1i64;
    let mk = |path: String| Txn {
        session_id: 0,
        time_ms: 1,
        auth: vec![],
        op: TxnOp::Create {
            path,
            data: Some(vec![7u8; 100]),
            acl: Acl::open_unsafe(),
            mode: CreateMode::Persistent,
            ttl_ms: -1,
        },
    };
    for i in 0..1000 {
        t.apply(z, &mk(format!("/d{i}")));
        z += 1;
    }
    let start = Instant::now();
    for i in 0..n {
        t.apply(z, &mk(format!("/d{}/n{i}", i % 1000)));
        z += 1;
    }
    println!("create {n}: {:?}", start.elapsed());
    let s = Instant::now();
    let c = t.clone();
    println!("clone: {:?}", s.elapsed());
    let s = Instant::now();
    let mut buf = Vec::new();
    t.write_snapshot(&mut buf).unwrap();
    println!("write_snapshot: {:?} {} bytes", s.elapsed(), buf.len());
    let s = Instant::now();
    let r = DataTree::read_snapshot(&mut &buf[..], TreeConfig::default()).unwrap();
    println!("read_snapshot: {:?}", s.elapsed());
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap()
        .to_string();
    println!("{rss} (3 trees + buf)");
    drop((c, r));
}
