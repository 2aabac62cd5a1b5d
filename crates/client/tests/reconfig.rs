//! reconfig (16) from the client: incremental (joining servers, leaving
//! ids) and non-incremental (new members) changes, the `from_config`
//! check, and the refusals (ReconfigDisabled, NoAuth, BadVersion,
//! NewConfigNoQuorum), against Apache ZooKeeper 3.8 running as a quorum of
//! one participant with `reconfigEnabled=true` — and against Corral once
//! its server side of reconfig lands.

mod support;

use corral_client::{Client, Error};
use support::{
    corral_quorum_of_one, corral_with, free_port_pair, servers, zookeeper_quorum_of_one,
    TestServer, SUPER_AUTH,
};

const RECONFIG_CFG: &[(&str, &str)] = &[("reconfigEnabled", "true")];

/// The `version=` of a dynamic configuration (hex, as ZooKeeper writes it).
fn config_version(config: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(config);
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap_or_else(|| panic!("no version line in {text:?}"));
    i64::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("version {hex:?}: {e}"))
}

/// The `server.N=` lines of a dynamic configuration.
fn server_lines(config: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(config)
        .lines()
        .filter(|l| l.starts_with("server."))
        .map(str::to_owned)
        .collect()
}

/// A server line for a member that is not running, on ports nobody uses.
fn absent_member(id: u32, role: &str) -> String {
    let (quorum, election) = free_port_pair();
    format!(
        "server.{id}=127.0.0.1:{quorum}:{election}:{role};127.0.0.1:{}",
        support::free_port()
    )
}

async fn reconfig_scenario(server: &TestServer) {
    let name = server.name;
    let c = server.client().await;
    let (config, _) = c.get_config().await.unwrap();
    let start_version = config_version(&config);
    let members = server_lines(&config);
    assert_eq!(members.len(), 1, "[{name}] {config:?}");

    // Writing /zookeeper/config needs WRITE on it: a super user here.
    let observer = absent_member(2, "observer");
    assert_eq!(
        c.reconfig_incremental(&[&observer], &[], None).await,
        Err(Error::NoAuth),
        "[{name}]"
    );
    c.add_auth("digest", SUPER_AUTH).await.unwrap();

    // Based on a configuration that is not the current one.
    assert_eq!(
        c.reconfig_incremental(&[&observer], &[], Some(start_version + 1))
            .await,
        Err(Error::BadVersion),
        "[{name}]"
    );

    // An observer does not vote, so a quorum of one accepts it while it
    // is not running.
    let (added, stat) = c
        .reconfig_incremental(&[&observer], &[], Some(start_version))
        .await
        .unwrap();
    let added_lines = server_lines(&added);
    assert_eq!(added_lines.len(), 2, "[{name}] {added:?}");
    assert!(added_lines.contains(&observer), "[{name}] {added:?}");
    let added_version = config_version(&added);
    assert!(added_version > start_version, "[{name}]");
    // The reply is the node's new content and Stat.
    let (now, now_stat) = c.get_config().await.unwrap();
    assert_eq!((now, now_stat), (added.clone(), stat), "[{name}]");

    // A voter that is not running would leave the new configuration
    // without a synced quorum.
    let participant = absent_member(3, "participant");
    assert_eq!(
        c.reconfig_incremental(&[&participant], &[], None).await,
        Err(Error::NewConfigNoQuorum),
        "[{name}]"
    );

    // Leaving by id, based on the current version.
    let (removed, _) = c
        .reconfig_incremental(&[], &["2"], Some(added_version))
        .await
        .unwrap();
    assert_eq!(server_lines(&removed), members, "[{name}]");

    // The whole membership at once.
    let other_observer = absent_member(4, "observer");
    let (replaced, _) = c
        .reconfig_members(&[&members[0], &other_observer], None)
        .await
        .unwrap();
    let replaced_lines = server_lines(&replaced);
    assert!(
        replaced_lines.contains(&other_observer),
        "[{name}] {replaced:?}"
    );
    assert_eq!(replaced_lines.len(), 2, "[{name}] {replaced:?}");

    // The raw form, as the shell sends it (null for absent parts).
    let (raw, _) = c.reconfig(None, Some("4"), None, None).await.unwrap();
    assert_eq!(server_lines(&raw), members, "[{name}]");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_reconfigures_a_quorum_of_one() {
    let Some(server) = zookeeper_quorum_of_one(RECONFIG_CFG).await else {
        return;
    };
    reconfig_scenario(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_reconfigures_a_quorum_of_one() {
    let server = corral_quorum_of_one(RECONFIG_CFG).await;
    reconfig_scenario(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_is_refused_when_not_enabled() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        c.add_auth("digest", SUPER_AUTH).await.unwrap();
        let member = absent_member(2, "observer");
        assert_eq!(
            c.reconfig_incremental(&[&member], &[], None).await,
            Err(Error::ReconfigDisabled),
            "[{}]",
            server.name
        );
        assert_eq!(
            c.reconfig_members(&[&member], Some(1)).await,
            Err(Error::ReconfigDisabled),
            "[{}]",
            server.name
        );
        // Nothing changed, and the session goes on.
        let (config, _) = c.get_config().await.unwrap();
        assert!(!String::from_utf8_lossy(&config).contains(&member));
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test]
async fn an_empty_membership_is_refused_without_asking() {
    // No server needed: the client refuses before sending. A closed port
    // would do, but connecting needs a live server, so use Corral.
    let server = corral_with(&[]).await;
    let c: Client = server.client().await;
    assert_eq!(
        c.reconfig_members(&[], None).await,
        Err(Error::BadArguments)
    );
    c.close().await.unwrap();
    server.stop().await;
}
