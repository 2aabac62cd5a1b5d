//! Configuration push: one writer publishes versions of a config node and
//! several watchers (each its own session, like separate processes) see
//! every version through a node cache.
//!
//! ```sh
//! cargo run --example config_push -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/config_push`, which
//! the example empties before and after.

mod common;
use common::{delete_tree, prepare_chroot};

use std::time::Duration;

use corral_client::recipes::cache::NodeCache;
use corral_client::{Acl, Client, CreateMode};

const WATCHERS: usize = 3;
const VERSIONS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/config_push";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");

    let writer = Client::connect(&connect).await?;
    writer
        .create(
            "/app-config",
            b"{\"version\":0}",
            &Acl::open_unsafe(),
            CreateMode::Persistent,
        )
        .await?;

    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        let client = Client::connect(&connect).await?;
        let cache = NodeCache::start(&client, "/app-config").await?;
        let initial = cache.get().map(|n| n.data).unwrap_or_default();
        println!(
            "watcher {i}: starts with {}",
            String::from_utf8_lossy(&initial)
        );
        let mut events = cache.subscribe();
        let last = format!("\"version\":{VERSIONS},");
        watchers.push(tokio::spawn(async move {
            // Until the last version arrives (or 10 s pass).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut reached = false;
            while !reached {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Ok(_)) => {
                        let now = cache.get().map(|n| n.data).unwrap_or_default();
                        let now = String::from_utf8_lossy(&now).into_owned();
                        println!("watcher {i}: now {now}");
                        reached = now.contains(&last);
                    }
                    _ => break,
                }
            }
            cache.close().await;
            client.close().await.ok();
            reached
        }));
    }

    for version in 1..=VERSIONS {
        let body = format!(
            "{{\"version\":{version},\"feature_x\":{}}}",
            version % 2 == 0
        );
        writer
            .set_data("/app-config", body.as_bytes(), None)
            .await?;
        println!("writer: pushed {body}");
        // Give the watchers time to read each version (a cache reports the
        // latest state; versions written faster may be seen merged).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut all_seen = true;
    for watcher in watchers {
        all_seen &= watcher.await?;
    }
    delete_tree(&writer, "/app-config").await?;
    writer.close().await?;
    if !all_seen {
        return Err("a watcher did not see the last version".into());
    }
    println!("done: {WATCHERS} watchers follow the config up to version {VERSIONS}");
    Ok(())
}
