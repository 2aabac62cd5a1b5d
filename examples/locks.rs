//! Exclusive and shared locks: four workers (each its own session) do a
//! read-modify-write of a counter node under an exclusive lock, and no
//! update is lost; then readers share a read/write lock while a writer
//! waits for them. The nodes follow Curator's `InterProcessMutex` and
//! `InterProcessReadWriteLock` layouts.
//!
//! ```sh
//! cargo run --example locks -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/locks`.

mod common;
use common::{delete_tree, prepare_chroot};

use std::time::{Duration, Instant};

use corral_client::recipes::lock::{Mutex, ReadWriteLock};
use corral_client::{Acl, Client, CreateMode, Error};

const WORKERS: usize = 4;
const ROUNDS: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/locks";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");
    let admin = Client::connect(&connect).await?;
    admin
        .create(
            "/counter",
            b"0",
            &Acl::open_unsafe(),
            CreateMode::Persistent,
        )
        .await?;

    // Exclusive: an unversioned read-modify-write is safe under the lock.
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let client = Client::connect(&connect).await?;
        workers.push(tokio::spawn(async move {
            let mutex = Mutex::new(&client, "/locks/counter");
            for _ in 0..ROUNDS {
                let guard = mutex.acquire().await?;
                let (data, _) = client.get_data("/counter").await?;
                let n: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
                client
                    .set_data("/counter", (n + 1).to_string().as_bytes(), None)
                    .await?;
                println!(
                    "worker {w}: {n} -> {} (holding {})",
                    n + 1,
                    guard.node_path()
                );
                guard.release().await?;
            }
            client.close().await?;
            Ok::<_, Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let (data, _) = admin.get_data("/counter").await?;
    let total = String::from_utf8_lossy(&data).into_owned();
    println!("counter = {total} (expected {})", WORKERS * ROUNDS);
    if total != (WORKERS * ROUNDS).to_string() {
        return Err("an update was lost".into());
    }

    // Shared: two readers at once; the writer waits for both.
    let started = Instant::now();
    let mut readers = Vec::new();
    for r in 0..2 {
        let client = Client::connect(&connect).await?;
        readers.push(tokio::spawn(async move {
            let lock = ReadWriteLock::new(&client, "/locks/catalog");
            let read = lock.acquire_read().await?;
            println!("reader {r}: reading at {:?}", started.elapsed());
            tokio::time::sleep(Duration::from_millis(300)).await;
            read.release().await?;
            client.close().await?;
            Ok::<_, Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lock = ReadWriteLock::new(&admin, "/locks/catalog");
    let write = lock.acquire_write().await?;
    println!(
        "writer: writing at {:?}, after both readers",
        started.elapsed()
    );
    write.release().await?;
    for reader in readers {
        reader.await??;
    }

    delete_tree(&admin, "/counter").await?;
    delete_tree(&admin, "/locks").await?;
    admin.close().await?;
    println!("done: no lost update, readers shared, the writer waited");
    Ok(())
}
