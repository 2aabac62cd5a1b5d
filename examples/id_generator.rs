//! Unique ids from sequential nodes: three services (each its own session)
//! draw order ids concurrently; every id is unique and each service's ids
//! increase.
//!
//! ```sh
//! cargo run --example id_generator -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/id_generator`.

mod common;
use common::{delete_tree, prepare_chroot};

use std::collections::BTreeSet;

use corral_client::recipes::id::IdGenerator;
use corral_client::{Client, Error};

const SERVICES: usize = 3;
const IDS_EACH: usize = 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/id_generator";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");

    let mut services = Vec::new();
    for s in 0..SERVICES {
        let client = Client::connect(&connect).await?;
        services.push(tokio::spawn(async move {
            let ids = IdGenerator::new(&client, "/ids/orders");
            let mut mine = Vec::new();
            for _ in 0..IDS_EACH {
                mine.push(ids.next_id().await?);
            }
            println!("service {s}: {mine:?}");
            client.close().await?;
            Ok::<_, Error>(mine)
        }));
    }
    let mut all = BTreeSet::new();
    for service in services {
        let mine = service.await??;
        if !mine.windows(2).all(|w| w[0] < w[1]) {
            return Err("ids did not increase".into());
        }
        all.extend(mine);
    }
    if all.len() != SERVICES * IDS_EACH {
        return Err("an id was handed out twice".into());
    }
    let client = Client::connect(&connect).await?;
    let formatted = IdGenerator::new(&client, "/ids/orders")
        .next_id_string()
        .await?;
    println!("as the server writes it: {formatted}");
    delete_tree(&client, "/ids").await?;
    client.close().await?;
    println!("done: {} unique ids", all.len());
    Ok(())
}
