//! Service discovery and group membership
//! (`corral_client::recipes::{discovery, group}`) against Apache ZooKeeper
//! 3.8 and Corral: Curator's `/<base>/<service>/<id>` layout and JSON,
//! ephemeral registrations that vanish with their session, and caches that
//! follow them.

mod recipes_support;
mod support;

use corral_client::recipes::cache::CacheEvent;
use corral_client::recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_client::recipes::group::GroupMember;
use corral_client::{Acl, CreateMode, Error};
use recipes_support::{eventually, expire, through, within};
use support::{servers, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_ephemerally_in_curators_layout_and_are_discovered() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let provider = server.client().await;
        let consumer = server.client().await;
        let registry = ServiceDiscovery::new(&provider, "/services");
        let lookup = ServiceDiscovery::new(&consumer, "/services");

        let api = ServiceInstance::new("api", "10.0.0.7", 8080)
            .with_id("api-1")
            .with_uri_spec("{scheme}://{address}:{port}")
            .with_payload(serde_json::json!({"zone": "eu-1"}));
        assert_eq!(registry.register(&api).await.unwrap(), "api-1");
        let cache = lookup.service_cache("api").await.unwrap();
        let mut events = cache.subscribe();

        // The node is ephemeral and holds Curator's JSON.
        let (json, stat) = consumer.get_data("/services/api/api-1").await.unwrap();
        assert_eq!(stat.ephemeral_owner, provider.session_id());
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        for key in [
            "name",
            "id",
            "address",
            "port",
            "sslPort",
            "payload",
            "registrationTimeUTC",
            "serviceType",
            "uriSpec",
        ] {
            assert!(value.get(key).is_some(), "missing {key} in {value}");
        }
        assert_eq!(value["serviceType"], "DYNAMIC");

        let found = lookup.query_for_instances("api").await.unwrap();
        assert_eq!(found, std::slice::from_ref(&api));
        assert_eq!(found[0].build_uri(), "http://10.0.0.7:8080");
        assert_eq!(lookup.query_for_names().await.unwrap(), ["api"]);
        assert_eq!(
            lookup.query_for_instance("api", "nope").await.unwrap(),
            None
        );
        assert_eq!(cache.instances(), std::slice::from_ref(&api));

        // A second instance, written by hand as Curator would.
        let other = ServiceInstance::new("api", "10.0.0.8", 8081).with_id("api-2");
        consumer
            .create(
                "/services/api/api-2",
                &other.to_json(),
                &Acl::open_unsafe(),
                CreateMode::Ephemeral,
            )
            .await
            .unwrap();
        let event = within("a new instance", events.recv()).await.unwrap();
        assert!(matches!(event, CacheEvent::Created(ref d) if d.path == "/services/api/api-2"));
        let picks: Vec<_> = (0..4).map(|_| cache.next_instance().unwrap().id).collect();
        assert_eq!(picks, ["api-1", "api-2", "api-1", "api-2"]);

        // Re-registering replaces the node; updating rewrites it.
        let moved = api
            .clone()
            .with_payload(serde_json::json!({"zone": "eu-2"}));
        registry.update(&moved).await.unwrap();
        assert_eq!(
            lookup.query_for_instance("api", "api-1").await.unwrap(),
            Some(moved.clone())
        );
        registry.register(&moved).await.unwrap();

        // The provider's session ends: its instance disappears.
        provider.close().await.unwrap();
        eventually("the instance goes with its session", || async {
            cache.instances().len() == 1
        })
        .await;
        assert_eq!(cache.instances()[0].id, "api-2");
        cache.close().await;
        consumer.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_see_each_other_join_and_leave() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let a = server.client().await;
        let proxy = Proxy::start(server.addr).await;
        let b = through(&proxy).await;
        let member_a = GroupMember::join(&a, "/groups/g", "a", b"payload-a")
            .await
            .unwrap();
        let member_b = GroupMember::join(&b, "/groups/g", "b", b"payload-b")
            .await
            .unwrap();
        eventually("a sees b", || async { member_a.members().len() == 2 }).await;
        assert_eq!(member_a.members()["b"], b"payload-b");

        // The same id twice is refused.
        let c = server.client().await;
        let dup = GroupMember::join(&c, "/groups/g", "a", b"").await;
        assert_eq!(dup.err(), Some(Error::NodeExists));

        // A member whose node is deleted by someone else puts it back.
        c.delete("/groups/g/a", None).await.unwrap();
        eventually("a is back", || async {
            c.exists("/groups/g/a").await.unwrap().is_some()
        })
        .await;

        member_b.set_payload(b"payload-b2").await.unwrap();
        eventually("a sees b's new payload", || async {
            member_a.members().get("b").map(Vec::as_slice) == Some(b"payload-b2".as_slice())
        })
        .await;

        // b's session expires: it leaves the group.
        expire(&server, &b, &proxy).await;
        eventually("b is gone", || async { member_a.members().len() == 1 }).await;
        drop(member_b);
        member_a.leave().await.unwrap();
        assert!(c.get_children("/groups/g").await.unwrap().is_empty());
        a.close().await.unwrap();
        c.close().await.unwrap();
        server.stop().await;
    }
}
