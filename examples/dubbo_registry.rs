//! A Dubbo-style service registry, in the layout Apache Dubbo's ZooKeeper
//! registry uses: providers of a service register ephemeral nodes
//! `/dubbo/<interface>/providers/<URL-encoded provider URL>`, consumers
//! register `/dubbo/<interface>/consumers/<URL-encoded consumer URL>`, and
//! consumers subscribe to the providers' list (here with a children
//! cache), decoding each node name back into a URL.
//!
//! ```sh
//! cargo run --example dubbo_registry -- 127.0.0.1:2181
//! ```
//!
//! Everything lives under the chroot `/corral-examples/dubbo`.

mod common;
use common::{delete_tree, prepare_chroot};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corral_client::recipes::cache::ChildrenCache;
use corral_client::{Acl, Client, CreateMode, Error};

const SERVICE: &str = "org.apache.dubbo.demo.DemoService";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let root = "/corral-examples/dubbo";
    prepare_chroot(&addr, root).await?;
    let connect = format!("{addr}{root}");
    let providers_path = format!("/dubbo/{SERVICE}/providers");
    let consumers_path = format!("/dubbo/{SERVICE}/consumers");

    // Two providers, each its own session.
    let mut providers = Vec::new();
    for port in [20880u16, 20881] {
        let client = Client::connect(&connect).await?;
        let url = format!(
            "dubbo://127.0.0.1:{port}/{SERVICE}?anyhost=true&application=demo-provider\
             &interface={SERVICE}&methods=sayHello,sayHelloAsync&side=provider&timestamp={}",
            now_ms()
        );
        register(&client, &providers_path, &url).await?;
        println!("provider :{port} registered {}", url_encode(&url));
        providers.push(client);
    }

    // A consumer registers itself and subscribes to the providers.
    let consumer = Client::connect(&connect).await?;
    let me = format!(
        "consumer://127.0.0.1/{SERVICE}?application=demo-consumer&category=consumers\
         &interface={SERVICE}&side=consumer&timestamp={}",
        now_ms()
    );
    register(&consumer, &consumers_path, &me).await?;
    let subscription = ChildrenCache::start(&consumer, &providers_path).await?;
    wait_until("2 providers", || subscription.children().len() == 2).await?;
    print_providers(&subscription);

    // A provider goes away; the consumer's view follows.
    providers.remove(0).close().await?;
    println!("provider :20880 stopped");
    wait_until("1 provider", || subscription.children().len() == 1).await?;
    print_providers(&subscription);

    subscription.close().await;
    for provider in providers {
        provider.close().await?;
    }
    delete_tree(&consumer, "/dubbo").await?;
    consumer.close().await?;
    println!("done: the consumer followed the providers from 2 to 1");
    Ok(())
}

fn print_providers(subscription: &ChildrenCache) {
    let urls: Vec<String> = subscription
        .children()
        .into_keys()
        .map(|name| url_decode(&name))
        .collect();
    println!("consumer sees {} provider(s):", urls.len());
    for url in urls {
        let address = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("?");
        println!("  {address}  ({url})");
    }
}

/// Registers `url` as an ephemeral child of `category_path` (making the
/// persistent parents), as Dubbo's `ZookeeperRegistry.doRegister` does.
async fn register(client: &Client, category_path: &str, url: &str) -> Result<(), Error> {
    let mut path = String::new();
    for part in category_path.trim_start_matches('/').split('/') {
        path = format!("{path}/{part}");
        match client
            .create(&path, b"", &Acl::open_unsafe(), CreateMode::Persistent)
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    let node = format!("{category_path}/{}", url_encode(url));
    client
        .create(&node, b"", &Acl::open_unsafe(), CreateMode::Ephemeral)
        .await?;
    Ok(())
}

/// `java.net.URLEncoder.encode(s, "UTF-8")`: letters, digits and `.-*_`
/// stay, a space becomes `+`, every other byte `%XX`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `java.net.URLDecoder.decode(s, "UTF-8")`.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
