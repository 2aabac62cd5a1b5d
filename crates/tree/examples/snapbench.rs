//! Micro-benchmark of the tree alone: N creates (1000 parents), the cost of
//! capturing a snapshot (what the server holds its lock for), writes while a
//! capture is alive against writes without one, snapshot write and read,
//! the process RSS with one tree, and the first create in a directory of N
//! children after a capture.
//! `cargo run --release -p corral-tree --example snapbench -- 1000000`
//! With `SNAPBENCH_OUT=FILE` the snapshot bytes are also written to FILE
//! (to compare encodings between builds).
use corral_proto::{Acl, CreateMode};
use corral_tree::{DataTree, TreeConfig, Txn, TxnOp};
use std::time::{Duration, Instant};

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn txn(op: TxnOp) -> Txn {
    Txn {
        session_id: 0,
        time_ms: 1,
        auth: vec![],
        op,
    }
}

fn create(path: String) -> Txn {
    txn(TxnOp::Create {
        path,
        data: Some(vec![7u8; 100]),
        acl: Acl::open_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: -1,
    })
}

/// `count` setData on nodes spread over the tree.
fn sets(tree: &mut DataTree, zxid: &mut i64, n: usize, count: usize) -> Duration {
    let txns: Vec<Txn> = (0..count)
        .map(|i| {
            let node = (i * 7919) % n;
            txn(TxnOp::SetData {
                path: format!("/d{}/n{node}", node % 1000),
                data: Some(vec![8u8; 100]),
                version: -1,
            })
        })
        .collect();
    let start = Instant::now();
    for t in &txns {
        tree.apply(*zxid, t);
        *zxid += 1;
    }
    start.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut t = DataTree::new(TreeConfig::default());
    let mut z = 1i64;
    for i in 0..1000 {
        t.apply(z, &create(format!("/d{i}")));
        z += 1;
    }
    let start = Instant::now();
    for i in 0..n {
        t.apply(z, &create(format!("/d{}/n{i}", i % 1000)));
        z += 1;
    }
    println!("create {n}: {:?}", start.elapsed());
    println!("{} (one tree)", rss());
    let writes = 100_000.min(n);
    println!(
        "{writes} setData, no capture alive: {:?}",
        sets(&mut t, &mut z, n, writes)
    );
    let s = Instant::now();
    let capture = t.capture();
    println!("capture: {:?}", s.elapsed());
    println!(
        "{writes} setData, capture alive: {:?}",
        sets(&mut t, &mut z, n, writes)
    );
    println!(
        "{writes} setData again, capture alive: {:?}",
        sets(&mut t, &mut z, n, writes)
    );
    let s = Instant::now();
    let mut buf = Vec::new();
    capture.write(&mut buf)?;
    println!("write capture: {:?} {} bytes", s.elapsed(), buf.len());
    drop(capture);
    let s = Instant::now();
    let mut buf = Vec::new();
    t.write_snapshot(&mut buf)?;
    println!("write_snapshot: {:?} {} bytes", s.elapsed(), buf.len());
    if let Ok(out) = std::env::var("SNAPBENCH_OUT") {
        std::fs::write(out, &buf)?;
    }
    let s = Instant::now();
    let r = DataTree::read_snapshot(&mut &buf[..], TreeConfig::default())?;
    println!("read_snapshot: {:?}", s.elapsed());
    assert!(r == t, "the restored tree differs");
    drop((r, t, buf));

    // One directory of n children (a queue): what the first create after a
    // capture costs, since it copies the directory's node with its child list.
    let mut t = DataTree::new(TreeConfig::default());
    t.apply(z, &create("/q".into()));
    z += 1;
    for i in 0..n {
        t.apply(z, &create(format!("/q/n{i:010}")));
        z += 1;
    }
    let _capture = t.capture();
    let s = Instant::now();
    t.apply(z, &create("/q/after".into()));
    println!(
        "first create in a directory of {n} after a capture: {:?}",
        s.elapsed()
    );
    let s = Instant::now();
    t.apply(z + 1, &create("/q/after2".into()));
    println!("second create: {:?}", s.elapsed());
    Ok(())
}
