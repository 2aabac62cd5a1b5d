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

mod common;
use common::prepare_chroot;

use std::time::Duration;

use corral_client::recipes::leader::{LeaderLatch, LeadershipEvent};
use corral_client::Client;

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
