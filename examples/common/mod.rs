//! Helpers shared by the examples: each runs under its own chroot, which it
//! creates and empties before and after its run.

// Each example is its own crate and uses a subset of these.
#![allow(dead_code)]

use corral_client::{Acl, Client, CreateMode, Error};

/// Creates the example's chroot and empties it.
pub async fn prepare_chroot(addr: &str, root: &str) -> Result<(), Error> {
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
pub async fn delete_tree(client: &Client, path: &str) -> Result<(), Error> {
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
