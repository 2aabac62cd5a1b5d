//! Service registration and discovery in the layout of Curator's
//! `curator-x-discovery`: instance `<id>` of service `<name>` is the node
//! `<base>/<name>/<id>`, ephemeral for `DYNAMIC` instances, holding
//! Curator's JSON `ServiceInstance`:
//!
//! ```json
//! {"name":"api","id":"0b6e…","address":"10.0.0.7","port":8080,"sslPort":null,
//!  "payload":null,"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC",
//!  "uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false}]}}
//! ```
//!
//! so Java services registered by Curator are found here and the other way
//! round. Instances are written in Curator's compatible form (no `enabled`
//! field unless set), which old and new Curator versions both read.
//! Payloads are any JSON value; a Curator reader whose payload class is
//! not a `Map` expects Jackson's `"@class"` property in it.
//!
//! A registration lasts as long as the session: when the client's session
//! expires the instance disappears. On a client that renews expired
//! sessions, [`ServiceDiscovery`] registers its `DYNAMIC` instances again
//! on the new session, as Curator's `ServiceDiscoveryImpl` does on
//! RECONNECTED (`DYNAMIC_SEQUENTIAL` ones would get a new id, so they are
//! left to the application).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use corral_proto::{Acl, CreateMode};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The JSON library of payloads, re-exported so that callers build
/// payloads with the same version (`discovery::serde_json::json!`).
pub use serde_json;

use super::cache::{CacheEvent, ChildrenCache};
use super::{create_parents, join, new_uuid, retry};
use crate::{Client, Error};

/// How an instance is registered (Curator's `ServiceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// An ephemeral node: gone with the session.
    #[default]
    Dynamic,
    /// A persistent node.
    Static,
    /// A persistent node, not meant to be unregistered.
    Permanent,
    /// An ephemeral sequential node (the id gets a suffix).
    DynamicSequential,
}

/// One piece of a [`UriSpec`]: literal text, or a `{variable}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UriPart {
    pub value: String,
    pub variable: bool,
}

/// Curator's `UriSpec`: a URI template such as
/// `{scheme}://{address}:{port}/api`, serialised as its parts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UriSpec {
    pub parts: Vec<UriPart>,
}

impl UriSpec {
    /// Parses a template: text in braces is a variable.
    pub fn parse(template: &str) -> UriSpec {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(open) => {
                    if open > 0 {
                        parts.push(UriPart {
                            value: rest[..open].to_owned(),
                            variable: false,
                        });
                    }
                    let after = &rest[open + 1..];
                    let close = after.find('}').unwrap_or(after.len());
                    parts.push(UriPart {
                        value: after[..close].trim().to_owned(),
                        variable: true,
                    });
                    rest = after.get(close + 1..).unwrap_or("");
                }
                None => {
                    parts.push(UriPart {
                        value: rest.to_owned(),
                        variable: false,
                    });
                    rest = "";
                }
            }
        }
        UriSpec { parts }
    }

    /// Fills the template from `instance` the way Curator does (`scheme`
    /// is `https` when there is an SSL port; unknown variables are
    /// dropped).
    pub fn build(&self, instance: &ServiceInstance) -> String {
        let opt = |v: Option<i32>| v.map(|p| p.to_string()).unwrap_or_default();
        let mut out = String::new();
        for part in &self.parts {
            if !part.variable {
                out.push_str(&part.value);
                continue;
            }
            let value = match part.value.as_str() {
                "[" => "{".to_owned(),
                "]" => "}".to_owned(),
                "scheme" if instance.ssl_port.is_some() => "https".to_owned(),
                "scheme" => "http".to_owned(),
                "name" => instance.name.clone(),
                "id" => instance.id.clone(),
                "address" => instance.address.clone().unwrap_or_default(),
                "port" => opt(instance.port),
                "ssl-port" => opt(instance.ssl_port),
                "registration-time-utc" => instance.registration_time_utc.to_string(),
                "service-type" => serde_json::to_value(instance.service_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_lowercase))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            out.push_str(&value);
        }
        out
    }
}

/// Curator's `ServiceInstance`, field for field (JSON names included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceInstance {
    pub name: String,
    pub id: String,
    pub address: Option<String>,
    pub port: Option<i32>,
    #[serde(rename = "sslPort")]
    pub ssl_port: Option<i32>,
    pub payload: Option<serde_json::Value>,
    #[serde(rename = "registrationTimeUTC")]
    pub registration_time_utc: i64,
    #[serde(rename = "serviceType")]
    pub service_type: ServiceType,
    #[serde(rename = "uriSpec")]
    pub uri_spec: Option<UriSpec>,
    /// Newer Curator versions write `"enabled"`; omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl Default for ServiceInstance {
    /// What Curator's deserialisation starts from.
    fn default() -> ServiceInstance {
        ServiceInstance {
            name: String::new(),
            id: String::new(),
            address: None,
            port: None,
            ssl_port: None,
            payload: None,
            registration_time_utc: 0,
            service_type: ServiceType::Dynamic,
            uri_spec: None,
            enabled: None,
        }
    }
}

impl ServiceInstance {
    /// A dynamic instance of service `name` at `address:port`, with a
    /// random UUID id and the registration time set to now (as Curator's
    /// `ServiceInstance.builder()`).
    pub fn new(name: &str, address: &str, port: u16) -> ServiceInstance {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        ServiceInstance {
            name: name.to_owned(),
            id: new_uuid(),
            address: Some(address.to_owned()),
            port: Some(i32::from(port)),
            registration_time_utc: now_ms,
            ..ServiceInstance::default()
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: &str) -> ServiceInstance {
        self.id = id.to_owned();
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: serde_json::Value) -> ServiceInstance {
        self.payload = Some(payload);
        self
    }

    /// Sets the URI template (see [`UriSpec::parse`]).
    pub fn with_uri_spec(mut self, template: &str) -> ServiceInstance {
        self.uri_spec = Some(UriSpec::parse(template));
        self
    }

    /// Sets the registration type.
    pub fn with_service_type(mut self, service_type: ServiceType) -> ServiceInstance {
        self.service_type = service_type;
        self
    }

    /// The instance's URI from its [`UriSpec`] (empty without one).
    pub fn build_uri(&self) -> String {
        self.uri_spec
            .as_ref()
            .map(|spec| spec.build(self))
            .unwrap_or_default()
    }

    /// Curator's JSON for this instance.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data and serde_json::Value cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads Curator's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<ServiceInstance, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Registers this process's instances and looks others up, under one base
/// path (Curator's `ServiceDiscovery`).
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::discovery::{ServiceDiscovery, ServiceInstance};
/// let discovery = ServiceDiscovery::new(client, "/services");
/// let me = ServiceInstance::new("api", "10.0.0.7", 8080).with_uri_spec("{scheme}://{address}:{port}");
/// discovery.register(&me).await?;
/// for instance in discovery.query_for_instances("api").await? {
///     println!("{} at {}", instance.id, instance.build_uri());
/// }
/// let cache = discovery.service_cache("api").await?; // kept current by a watch
/// let next = cache.next_instance(); // round robin
/// discovery.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServiceDiscovery {
    client: Client,
    base_path: String,
    registered: Arc<std::sync::Mutex<BTreeMap<String, ServiceInstance>>>,
}

impl ServiceDiscovery {
    /// Discovery under `base_path` (Curator's `basePath`).
    pub fn new(client: &Client, base_path: &str) -> ServiceDiscovery {
        let discovery = ServiceDiscovery {
            client: client.clone(),
            base_path: base_path.to_owned(),
            registered: Arc::default(),
        };
        if client.renews_expired_sessions() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(reregister_after_expiry(
                    client.clone(),
                    base_path.to_owned(),
                    Arc::downgrade(&discovery.registered),
                ));
            }
        }
        discovery
    }

    fn path_for_name(&self, name: &str) -> String {
        join(&self.base_path, name)
    }

    fn path_for_instance(&self, name: &str, id: &str) -> String {
        join(&self.path_for_name(name), id)
    }

    /// Registers (or re-registers) `instance`. An existing node for the
    /// same id is replaced by delete and create, so that watchers see the
    /// change, as Curator does. For `DynamicSequential` the returned id
    /// has the server's suffix.
    pub async fn register(&self, instance: &ServiceInstance) -> Result<String, Error> {
        let id = register_instance(&self.client, &self.base_path, instance).await?;
        let mut registered = instance.clone();
        registered.id = id.clone();
        if let Ok(mut map) = self.registered.lock() {
            map.insert(id.clone(), registered);
        }
        Ok(id)
    }

    /// Replaces a registered instance's data.
    pub async fn update(&self, instance: &ServiceInstance) -> Result<(), Error> {
        let path = self.path_for_instance(&instance.name, &instance.id);
        let bytes = instance.to_json();
        retry(|| self.client.set_data(&path, &bytes, None)).await?;
        if let Ok(mut map) = self.registered.lock() {
            map.insert(instance.id.clone(), instance.clone());
        }
        Ok(())
    }

    /// Removes a registration (no error when it is already gone).
    pub async fn unregister(&self, instance: &ServiceInstance) -> Result<(), Error> {
        if let Ok(mut map) = self.registered.lock() {
            map.remove(&instance.id);
        }
        let path = self.path_for_instance(&instance.name, &instance.id);
        super::delete_quietly(&self.client, &path).await
    }

    /// The names of every service with a node under the base path.
    pub async fn query_for_names(&self) -> Result<Vec<String>, Error> {
        match retry(|| self.client.get_children(&self.base_path)).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every instance of service `name` (unreadable nodes are skipped with
    /// a warning).
    pub async fn query_for_instances(&self, name: &str) -> Result<Vec<ServiceInstance>, Error> {
        let service_path = self.path_for_name(name);
        let mut ids = match retry(|| self.client.get_children(&service_path)).await {
            Ok(ids) => ids,
            Err(Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(instance) = self.query_for_instance(name, &id).await.or_else(|e| {
                if matches!(e, Error::Protocol(_)) {
                    tracing::warn!(service = name, %id, error = %e, "skipping unreadable instance");
                    Ok(None)
                } else {
                    Err(e)
                }
            })? {
                out.push(instance);
            }
        }
        Ok(out)
    }

    /// One instance, `None` when not registered.
    pub async fn query_for_instance(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Option<ServiceInstance>, Error> {
        let path = self.path_for_instance(name, id);
        match retry(|| self.client.get_data(&path)).await {
            Ok((data, _)) => ServiceInstance::from_json(&data).map(Some).map_err(|e| {
                Error::Protocol(format!("{path} is not a Curator ServiceInstance: {e}"))
            }),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A cache of service `name`'s instances, kept current by a watch
    /// (Curator's `ServiceCache`).
    pub async fn service_cache(&self, name: &str) -> Result<ServiceCache, Error> {
        Ok(ServiceCache {
            cache: ChildrenCache::start(&self.client, &self.path_for_name(name)).await?,
            next: AtomicUsize::new(0),
        })
    }

    /// The instances this object registered (and has not unregistered).
    pub fn registered(&self) -> Vec<ServiceInstance> {
        self.registered
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Unregisters every instance this object registered.
    pub async fn close(&self) -> Result<(), Error> {
        for instance in self.registered() {
            self.unregister(&instance).await?;
        }
        Ok(())
    }
}

/// Creates (or replaces) `instance`'s node under `base_path`; answers its
/// id (with the server's suffix for `DynamicSequential`).
async fn register_instance(
    client: &Client,
    base_path: &str,
    instance: &ServiceInstance,
) -> Result<String, Error> {
    let path = join(&join(base_path, &instance.name), &instance.id);
    let mode = match instance.service_type {
        ServiceType::Dynamic => CreateMode::Ephemeral,
        ServiceType::DynamicSequential => CreateMode::EphemeralSequential,
        ServiceType::Static | ServiceType::Permanent => CreateMode::Persistent,
    };
    let bytes = instance.to_json();
    let acl = Acl::open_unsafe();
    let mut parents_made = false;
    let mut replaced = false;
    let created = loop {
        match retry(|| client.create(&path, &bytes, &acl, mode)).await {
            Ok((created, _)) => break created,
            Err(Error::NoNode) if !parents_made => {
                create_parents(client, &path, false).await?;
                parents_made = true;
            }
            Err(Error::NodeExists) if !replaced => {
                let ours = match retry(|| client.exists(&path)).await? {
                    Some(stat) => stat.ephemeral_owner == client.session_id(),
                    None => false,
                };
                if ours {
                    // Our own (an earlier create whose reply was lost).
                    retry(|| client.set_data(&path, &bytes, None)).await?;
                    break path.clone();
                }
                super::delete_quietly(client, &path).await?;
                replaced = true;
            }
            Err(e) => return Err(e),
        }
    };
    Ok(super::node_name(&created).to_owned())
}

/// Registers the `DYNAMIC` instances of a [`ServiceDiscovery`] again each
/// time the client's session expires and a new one starts (their nodes
/// went with the old session). Ends with the client, or once every copy
/// of the discovery is dropped.
async fn reregister_after_expiry(
    client: Client,
    base_path: String,
    registered: Weak<std::sync::Mutex<BTreeMap<String, ServiceInstance>>>,
) {
    let mut states = client.state_watcher();
    let mut expired_seen = client.expired_sessions();
    loop {
        if states.changed().await.is_err() || client.is_finished() {
            return;
        }
        if client.expired_sessions() == expired_seen || !client.state().is_connected() {
            continue;
        }
        expired_seen = client.expired_sessions();
        let Some(registered) = registered.upgrade() else {
            return;
        };
        let instances: Vec<ServiceInstance> = registered
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        drop(registered);
        for instance in instances {
            if instance.service_type != ServiceType::Dynamic {
                continue;
            }
            match register_instance(&client, &base_path, &instance).await {
                Ok(_) => tracing::debug!(id = %instance.id, "service instance registered again"),
                Err(e) => {
                    tracing::warn!(id = %instance.id, error = %e, "service instance not registered again")
                }
            }
        }
    }
}

/// The instances of one service, kept current.
#[derive(Debug)]
pub struct ServiceCache {
    cache: ChildrenCache,
    next: AtomicUsize,
}

impl ServiceCache {
    /// The instances now, by id order (unreadable nodes are left out).
    pub fn instances(&self) -> Vec<ServiceInstance> {
        self.cache
            .children()
            .values()
            .filter_map(|child| ServiceInstance::from_json(&child.data).ok())
            .collect()
    }

    /// The next instance in round-robin order (Curator's default
    /// `RoundRobinStrategy`), `None` when there is none.
    pub fn next_instance(&self) -> Option<ServiceInstance> {
        let instances = self.instances();
        if instances.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % instances.len();
        instances.into_iter().nth(turn)
    }

    /// Events of the instance nodes (Created / Changed / Deleted).
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.cache.subscribe()
    }

    /// Stops following the service.
    pub async fn close(self) {
        self.cache.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_curators_field_names_and_order() {
        let mut instance = ServiceInstance::new("api", "10.0.0.7", 8080)
            .with_id("i-1")
            .with_uri_spec("{scheme}://{address}:{port}");
        instance.registration_time_utc = 1_700_000_000_000;
        let json = String::from_utf8(instance.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"api","id":"i-1","address":"10.0.0.7","port":8080,"sslPort":null,"payload":null,"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]}}"#
        );
        assert_eq!(instance.build_uri(), "http://10.0.0.7:8080");
    }

    #[test]
    fn reads_what_curator_writes() {
        // As written by Curator 5 (with `enabled`) for a payload class.
        let json = br#"{"name":"test","id":"7b0a","address":"192.168.1.2","port":1234,
            "sslPort":null,"payload":{"@class":"com.example.Details","description":"x"},
            "registrationTimeUTC":1325129459728,"serviceType":"DYNAMIC","uriSpec":null,
            "enabled":true}"#;
        let instance = ServiceInstance::from_json(json).unwrap();
        assert_eq!(instance.port, Some(1234));
        assert_eq!(instance.enabled, Some(true));
        assert_eq!(instance.payload.unwrap()["description"], "x");
        let bare = ServiceInstance::from_json(br#"{"name":"n","id":"i"}"#).unwrap();
        assert_eq!(bare.service_type, ServiceType::Dynamic);
    }
}
