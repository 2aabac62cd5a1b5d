//! A Kafka-style broker registry, in the znode layout Kafka (before KRaft)
//! keeps in ZooKeeper: each broker registers `/brokers/ids/<id>` as an
//! ephemeral node with its endpoints in JSON; topic metadata lives in
//! persistent `/brokers/topics/<topic>` nodes; one broker is controller by
//! holding the ephemeral `/controller`, and `/controller_epoch` counts
//! controller changes. An admin tool follows the live brokers with a
//! children cache; when the controller broker dies, its id disappears and
//! another broker takes over as controller.
//!
//! ```sh
//! cargo run --example kafka_brokers -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/kafka` (Kafka itself
//! is configured the same way: `zookeeper.connect=host:2181/kafka`).

mod common;
use common::{delete_tree, prepare_chroot};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corral_client::recipes::cache::ChildrenCache;
use corral_client::{Acl, Client, CreateMode, Error};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/kafka";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");

    let admin = Client::connect(&connect).await?;
    for path in ["/brokers", "/brokers/ids", "/brokers/topics"] {
        create_persistent(&admin, path, b"").await?;
    }
    create_persistent(&admin, "/controller_epoch", b"0").await?;
    let live = ChildrenCache::start(&admin, "/brokers/ids").await?;

    // Three brokers, each its own session, each racing for controller.
    let mut brokers = Vec::new();
    for id in 1..=3u16 {
        let client = Client::connect(&connect).await?;
        let registration = format!(
            "{{\"listener_security_protocol_map\":{{\"PLAINTEXT\":\"PLAINTEXT\"}},\
             \"endpoints\":[\"PLAINTEXT://127.0.0.1:{port}\"],\"jmx_port\":-1,\
             \"host\":\"127.0.0.1\",\"timestamp\":\"{now}\",\"port\":{port},\"version\":4}}",
            port = 9091 + id,
            now = now_ms()
        );
        client
            .create(
                &format!("/brokers/ids/{id}"),
                registration.as_bytes(),
                &Acl::open_unsafe(),
                CreateMode::Ephemeral,
            )
            .await?;
        println!("broker {id}: registered");
        tokio::spawn(contend_for_controller(client.clone(), id));
        brokers.push((id, client));
    }

    // Topic metadata: partition -> replica broker ids, and partition state.
    let topic = "{\"version\":2,\"partitions\":{\"0\":[1,2],\"1\":[2,3],\"2\":[3,1]},\
                 \"adding_replicas\":{},\"removing_replicas\":{}}";
    create_persistent(&admin, "/brokers/topics/orders", topic.as_bytes()).await?;
    for (partition, isr) in [(0, "[1,2]"), (1, "[2,3]"), (2, "[3,1]")] {
        let base = format!("/brokers/topics/orders/partitions/{partition}");
        create_persistent(&admin, "/brokers/topics/orders/partitions", b"").await?;
        create_persistent(&admin, &base, b"").await?;
        let leader = &isr[1..2];
        let state = format!(
            "{{\"controller_epoch\":1,\"leader\":{leader},\"version\":1,\"leader_epoch\":0,\"isr\":{isr}}}"
        );
        create_persistent(&admin, &format!("{base}/state"), state.as_bytes()).await?;
    }
    println!("topic orders: {topic}");

    wait_until("3 live brokers", || live.children().len() == 3).await?;
    let first = wait_controller(&admin, None).await?;
    println!(
        "live brokers {:?}, controller is broker {first}",
        names(&live)
    );

    // The controller broker dies.
    let index = brokers
        .iter()
        .position(|(id, _)| *id == first)
        .ok_or("controller is not one of ours")?;
    let (dead, client) = brokers.remove(index);
    client.close().await?;
    println!("broker {dead}: stopped");
    wait_until("2 live brokers", || live.children().len() == 2).await?;
    let second = wait_controller(&admin, Some(dead)).await?;
    let (epoch, _) = admin.get_data("/controller_epoch").await?;
    println!(
        "live brokers {:?}, controller is now broker {second} (controller_epoch {})",
        names(&live),
        String::from_utf8_lossy(&epoch)
    );

    live.close().await;
    for (_, client) in brokers {
        client.close().await?;
    }
    for path in ["/brokers", "/controller_epoch"] {
        delete_tree(&admin, path).await?;
    }
    admin.close().await?;
    println!("done: controller failover from broker {first} to broker {second}");
    Ok(())
}

/// Kafka's controller election: whoever creates the ephemeral
/// `/controller` first is controller; the others watch it and race again
/// when it goes.
async fn contend_for_controller(client: Client, id: u16) -> Result<(), Error> {
    loop {
        let claim = format!(
            "{{\"version\":1,\"brokerid\":{id},\"timestamp\":\"{}\"}}",
            now_ms()
        );
        match client
            .create(
                "/controller",
                claim.as_bytes(),
                &Acl::open_unsafe(),
                CreateMode::Ephemeral,
            )
            .await
        {
            Ok(_) => {
                // Bump the epoch with a versioned write (compare-and-set).
                loop {
                    let (data, stat) = client.get_data("/controller_epoch").await?;
                    let epoch: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
                    let next = (epoch + 1).to_string();
                    match client
                        .set_data("/controller_epoch", next.as_bytes(), Some(stat.version))
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::BadVersion) => continue,
                        Err(e) => return Err(e),
                    }
                }
                println!("broker {id}: elected controller");
                return Ok(());
            }
            Err(Error::NodeExists) => {
                let (exists, watch) = client.exists_watch("/controller").await?;
                if exists.is_some() {
                    let _ = watch.await;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The controller's broker id, from `/controller`'s JSON.
async fn controller(client: &Client) -> Result<u16, Box<dyn std::error::Error>> {
    let (data, _) = client.get_data("/controller").await?;
    let text = String::from_utf8_lossy(&data);
    let id = text
        .split("\"brokerid\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .ok_or("no brokerid in /controller")?;
    Ok(id)
}

/// Waits for a controller other than `not`.
async fn wait_controller(
    client: &Client,
    not: Option<u16>,
) -> Result<u16, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match controller(client).await {
            Ok(id) if Some(id) != not => return Ok(id),
            _ if tokio::time::Instant::now() > deadline => {
                return Err("no controller elected".into());
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn names(cache: &ChildrenCache) -> Vec<String> {
    cache.children().into_keys().collect()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

async fn wait_until(
    what: &str,
    check: impl Fn() -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn create_persistent(client: &Client, path: &str, data: &[u8]) -> Result<(), Error> {
    match client
        .create(path, data, &Acl::open_unsafe(), CreateMode::Persistent)
        .await
    {
        Ok(_) | Err(Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}
