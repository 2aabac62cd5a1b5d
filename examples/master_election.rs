//! Master election with failover: three candidates (each its own session,
//! like three processes) join a leader latch; the master works until its
//! process "crashes" (its session is closed), then the next candidate takes
//! over, until one is left. The latch nodes use Curator's `LeaderLatch`
//! layout, so Java candidates could join the same election.
//!
//! ```sh
//! cargo run --example master_election -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/master_election`.

use std::time::Duration;

use corral_client::recipes::leader::{LeaderLatch, LeadershipEvent};
use corral_client::{Acl, Client, CreateMode, Error};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/master_election";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");

    let mut candidates = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let client = Client::connect(&connect).await?;
        let latch = LeaderLatch::start(&client, "/master", name).await?;
        // A listener per candidate: prints every gain and loss.
        let mut events = latch.subscribe();
        let who = name.to_owned();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                match event {
                    LeadershipEvent::Gained => println!("  [{who}] I am the master"),
                    LeadershipEvent::Lost => println!("  [{who}] not master any more"),
                }
            }
        });
        candidates.push((name, client, latch));
    }

    for round in 1..=3 {
        // Find the master (the candidate whose latch leads).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let index = loop {
            if let Some(i) = candidates
                .iter()
                .position(|(_, _, latch)| latch.is_leader())
            {
                break i;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("no master elected".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (name, client, latch) = candidates.remove(index);
        let seen = latch.leader().await?.map(|p| p.id).unwrap_or_default();
        println!("round {round}: master is {name} (the server agrees: {seen}); working…");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if candidates.is_empty() {
            latch.close().await?;
            client.close().await?;
            break;
        }
        println!("round {round}: {name} crashes");
        drop(latch);
        client.close().await?; // its latch node goes with the session
    }
    println!("done: 3 masters in turn, each failover automatic");
    Ok(())
}

/// Creates the example's chroot and empties it.
async fn prepare_chroot(addr: &str, root: &str) -> Result<(), Error> {
    let client = Client::connect(addr).await?;
    let mut path = String::new();
    for part in root.trim_start_matches('/').split('/') {
        path = format!("{path}/{part}");
        match client
            .create(&path, b"", &Acl::open_unsafe(), CreateMode::Persistent)
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    for child in client.get_children(root).await? {
        delete_tree(&client, &format!("{root}/{child}")).await?;
    }
    client.close().await
}

/// Deletes `path` and everything below it.
async fn delete_tree(client: &Client, path: &str) -> Result<(), Error> {
    let children = match client.get_children(path).await {
        Ok(children) => children,
        Err(Error::NoNode) => return Ok(()),
        Err(e) => return Err(e),
    };
    for child in children {
        Box::pin(delete_tree(client, &format!("{path}/{child}"))).await?;
    }
    match client.delete(path, None).await {
        Ok(()) | Err(Error::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}
