//! Service discovery: three instances of an `orders` service register
//! themselves (ephemeral nodes holding Curator's JSON `ServiceInstance`,
//! so Java services using curator-x-discovery see them too); a client
//! follows them with a service cache and picks one round robin; when an
//! instance's process ends, it disappears from the cache.
//!
//! ```sh
//! cargo run --example service_discovery -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/service_discovery`.

mod common;
use common::{delete_tree, prepare_chroot};

use std::time::Duration;

use corral_client::recipes::discovery::serde_json::json;
use corral_client::recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/service_discovery";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");

    // Three "processes", each with its own session and registration.
    let mut providers = Vec::new();
    for (i, port) in [8081u16, 8082, 8083].into_iter().enumerate() {
        let client = Client::connect(&connect).await?;
        let discovery = ServiceDiscovery::new(&client, "/services");
        let instance = ServiceInstance::new("orders", "127.0.0.1", port)
            .with_id(&format!("orders-{i}"))
            .with_uri_spec("{scheme}://{address}:{port}/v1")
            .with_payload(json!({ "zone": format!("zone-{}", i % 2) }));
        discovery.register(&instance).await?;
        println!("registered {} at {}", instance.id, instance.build_uri());
        providers.push(client);
    }

    let client = Client::connect(&connect).await?;
    let discovery = ServiceDiscovery::new(&client, "/services");
    println!("services: {:?}", discovery.query_for_names().await?);
    let cache = discovery.service_cache("orders").await?;
    for _ in 0..4 {
        if let Some(instance) = cache.next_instance() {
            println!("call {} ({})", instance.build_uri(), instance.id);
        }
    }
    let (raw, _) = client.get_data("/services/orders/orders-0").await?;
    println!(
        "node /services/orders/orders-0: {}",
        String::from_utf8_lossy(&raw)
    );

    // One instance's process ends: its ephemeral registration goes.
    providers.remove(0).close().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.instances().len() != 2 {
        if tokio::time::Instant::now() > deadline {
            return Err("the closed instance did not leave the cache".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<String> = cache.instances().into_iter().map(|i| i.id).collect();
    println!("after orders-0 stopped: {left:?}");

    cache.close().await;
    for provider in providers {
        provider.close().await?;
    }
    delete_tree(&client, "/services").await?;
    client.close().await?;
    println!("done: discovered 3 instances, then 2");
    Ok(())
}
