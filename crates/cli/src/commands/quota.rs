//! Quotas: setquota, listquota, delquota. Like zkCli, the shell keeps them
//! itself as znodes under `/zookeeper/quota/<path>/` (`zookeeper_limits`,
//! written here; `zookeeper_stats`, kept up to date by the server), in
//! `StatsTrack`'s text format (`count=2,bytes=-1=;byteHardLimit=-1;…`).

use std::collections::BTreeMap;

use corral_client::{Acl, Client, CreateMode, Error, ErrorCode};

use super::walk::{Dfs, WalkError};
use super::{parse, usage_error, wrap, CliError, CmdResult, Ctx};
use crate::getopt::{Opt, Spec};
use crate::options::java_parse_int;
use crate::paths;

const QUOTA_ROOT: &str = "/zookeeper/quota";
const ZOOKEEPER: &str = "/zookeeper";
const LIMIT_NODE: &str = "zookeeper_limits";
const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD: &str = "countHardLimit";
const BYTES_HARD: &str = "byteHardLimit";

const SET_QUOTA: Spec = Spec {
    opts: &[
        Opt::value('n', "num soft quota"),
        Opt::value('b', "bytes soft quota"),
        Opt::value('N', "num hard quota"),
        Opt::value('B', "bytes hard quota"),
    ],
    group: &['n', 'b', 'N', 'B'],
    group_required: true,
};
const DEL_QUOTA: Spec = Spec {
    opts: &[
        Opt::flag('n', "num soft quota"),
        Opt::flag('b', "bytes soft quota"),
        Opt::flag('N', "num hard quota"),
        Opt::flag('B', "bytes hard quota"),
    ],
    group: &['n', 'b', 'N', 'B'],
    group_required: false,
};
const LIST_QUOTA: Spec = Spec::new(&[]);

/// `org.apache.zookeeper.StatsTrack`: named numbers, `-1` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Reads `k=v` pairs separated by `,` or `;` (an empty value is -1).
    fn parse(text: &str) -> StatsTrack {
        let mut values = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut parts = pair.split('=');
            let key = parts.next().unwrap_or_default();
            let value = match parts.next() {
                Some(v) if !v.is_empty() => java_parse_int::<i64>(v),
                _ => Some(-1),
            };
            if let Some(value) = value {
                values.insert(key.to_owned(), value);
            }
        }
        StatsTrack { values }
    }

    fn from_bytes(data: &[u8]) -> StatsTrack {
        StatsTrack::parse(&String::from_utf8_lossy(data))
    }

    fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    fn set(&mut self, key: &str, value: i64) {
        self.values.insert(key.to_owned(), value);
    }

    /// `count=…,bytes=…`, then `=` and `;key=value` for the other keys.
    fn render(&self) -> String {
        let mut text = format!("{COUNT}={},{BYTES}={}", self.get(COUNT), self.get(BYTES));
        let others: Vec<_> = self
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != COUNT && k.as_str() != BYTES)
            .collect();
        if !others.is_empty() {
            text.push('=');
            for (key, value) in others {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text
    }
}

fn quota_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}")
}

fn limit_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{LIMIT_NODE}")
}

fn stat_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{STAT_NODE}")
}

/// `Quotas.trimQuotaPath`.
fn trim_quota_path(path: &str) -> &str {
    path.get(QUOTA_ROOT.len()..).unwrap_or_default()
}

/// Why a quota operation stopped: an IllegalArgumentException (printed
/// as is) or a failed request.
enum QuotaError {
    Illegal(String),
    Keeper(Error, String),
}

impl QuotaError {
    fn into_cli(self) -> CliError {
        match self {
            QuotaError::Illegal(message) => CliError::failed(message),
            QuotaError::Keeper(err, path) => wrap(&err, &path),
        }
    }
}

impl From<WalkError> for QuotaError {
    fn from(e: WalkError) -> QuotaError {
        match e {
            WalkError::Path(message) => QuotaError::Illegal(message),
            WalkError::Keeper(err, path) => QuotaError::Keeper(err, path),
        }
    }
}

/// A request helper: validates `path` like the Java client, and tags a
/// failure with it.
async fn exists(client: &Client, path: &str) -> Result<bool, QuotaError> {
    paths::validate(path).map_err(QuotaError::Illegal)?;
    client
        .exists(path)
        .await
        .map(|s| s.is_some())
        .map_err(|e| QuotaError::Keeper(e, path.to_owned()))
}

async fn read(client: &Client, path: &str) -> Result<StatsTrack, QuotaError> {
    paths::validate(path).map_err(QuotaError::Illegal)?;
    client
        .get_data(path)
        .await
        .map(|(data, _)| StatsTrack::from_bytes(&data))
        .map_err(|e| QuotaError::Keeper(e, path.to_owned()))
}

async fn children(client: &Client, path: &str) -> Result<Vec<String>, QuotaError> {
    paths::validate(path).map_err(QuotaError::Illegal)?;
    client
        .get_children(path)
        .await
        .map_err(|e| QuotaError::Keeper(e, path.to_owned()))
}

/// Creates a persistent node; `Ok(false)` when it already exists.
async fn create(client: &Client, path: &str, data: &[u8]) -> Result<bool, QuotaError> {
    paths::validate(path).map_err(QuotaError::Illegal)?;
    match client
        .create(path, data, &Acl::open_unsafe(), CreateMode::Persistent)
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::NodeExists) => Ok(false),
        Err(e) => Err(QuotaError::Keeper(e, path.to_owned())),
    }
}

/// `String.split("/")` without the trailing empty pieces.
fn split_path(path: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = path.split('/').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

pub async fn set_quota(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&SET_QUOTA, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("setquota"));
    }
    let path = p.args[1].as_str();
    if path.starts_with(QUOTA_ROOT) {
        errln!("cannot set a quota under the path: {QUOTA_ROOT}");
        return Ok(());
    }
    let mut quota = StatsTrack::default();
    for key in [COUNT, BYTES, COUNT_HARD, BYTES_HARD] {
        quota.set(key, -1);
    }
    // checkOptionValue: problems are reported, and the command ends quietly.
    for (flag, key, counts) in [
        ('n', COUNT, true),
        ('b', BYTES, false),
        ('N', COUNT_HARD, true),
        ('B', BYTES_HARD, false),
    ] {
        let Some(text) = p.value(flag) else { continue };
        let value = if counts {
            java_parse_int::<i32>(text).map(i64::from)
        } else {
            java_parse_int::<i64>(text)
        };
        match value {
            None => {
                errln!("NumberFormatException happens when parsing the option value");
                return Ok(());
            }
            Some(v) if counts && v <= 0 => {
                errln!("the num quota must be greater than zero");
                return Ok(());
            }
            Some(v) if !counts && v < 0 => {
                errln!("the bytes quota must be greater than or equal to zero");
                return Ok(());
            }
            Some(v) => quota.set(key, v),
        }
    }
    let client = ctx.client(Some(path)).await?;
    create_quota(ctx, &client, path, &quota)
        .await
        .map_err(QuotaError::into_cli)
}

/// `SetQuotaCommand.createQuota`.
async fn create_quota(
    ctx: &Ctx<'_>,
    client: &Client,
    path: &str,
    quota: &StatsTrack,
) -> Result<(), QuotaError> {
    if !exists(client, path).await? {
        return Err(QuotaError::Illegal(format!("{path} does not exist.")));
    }
    check_no_child_quota(ctx, client, path).await?;
    check_no_parent_quota(client, path).await?;
    if !exists(client, QUOTA_ROOT).await? && create(client, ZOOKEEPER, &[]).await? {
        create(client, QUOTA_ROOT, &[]).await?;
    }
    let mut node = QUOTA_ROOT.to_owned();
    for part in split_path(path).into_iter().skip(1) {
        node.push('/');
        node.push_str(part);
        if !exists(client, &node).await? {
            create(client, &node, &[]).await?;
        }
    }
    let (limits, stats) = (
        format!("{node}/{LIMIT_NODE}"),
        format!("{node}/{STAT_NODE}"),
    );
    if !exists(client, &limits).await? {
        create_strict(client, &limits, quota).await?;
        let mut zero = StatsTrack::default();
        zero.set(COUNT, 0);
        zero.set(BYTES, 0);
        create_strict(client, &stats, &zero).await?;
        warn_if_below(&read(client, &limits).await?, &read(client, &stats).await?);
    } else {
        let mut current = read(client, &limits).await?;
        for key in [COUNT, BYTES, COUNT_HARD, BYTES_HARD] {
            if quota.get(key) > -1 {
                current.set(key, quota.get(key));
            }
        }
        warn_if_below(&current, &read(client, &stats).await?);
        client
            .set_data(&limits, current.render().as_bytes(), None)
            .await
            .map_err(|e| QuotaError::Keeper(e, limits.clone()))?;
    }
    Ok(())
}

/// A create whose NodeExists is an error too (zkCli does not catch it here).
async fn create_strict(client: &Client, path: &str, track: &StatsTrack) -> Result<(), QuotaError> {
    client
        .create(
            path,
            track.render().as_bytes(),
            &Acl::open_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .map(|_| ())
        .map_err(|e| QuotaError::Keeper(e, path.to_owned()))
}

/// `checkQuota`: warns (stdout) when the new limits are already exceeded.
fn warn_if_below(quota: &StatsTrack, stats: &StatsTrack) {
    let below = |soft: &str, hard: &str, used: &str| {
        let used = stats.get(used);
        (quota.get(soft) > -1 && quota.get(soft) < used)
            || (quota.get(hard) > -1 && quota.get(hard) < used)
    };
    if below(COUNT, COUNT_HARD, COUNT) {
        outln!(
            "[Warning]: the count quota you create is less than the existing count:{}",
            stats.get(COUNT)
        );
    }
    if below(BYTES, BYTES_HARD, BYTES) {
        outln!(
            "[Warning]: the bytes quota you create is less than the existing bytes:{}",
            stats.get(BYTES)
        );
    }
}

/// `checkIfChildQuota`: no node below `path` may have a quota already.
async fn check_no_child_quota(
    ctx: &Ctx<'_>,
    client: &Client,
    path: &str,
) -> Result<(), QuotaError> {
    let own = quota_path(path);
    let mut walk = Dfs::new(&own, false)?;
    loop {
        let node = match walk.next(ctx, client).await {
            Ok(Some(node)) => node,
            Ok(None) => return Ok(()),
            // No quota tree under the path at all: fine.
            Err(WalkError::Keeper(Error::NoNode, _)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Ok(kids) = client.get_children(&node).await else {
            continue;
        };
        if node != own && kids.iter().any(|k| k == LIMIT_NODE) {
            return Err(QuotaError::Illegal(format!(
                "{path} has a child {} which has a quota",
                trim_quota_path(&node)
            )));
        }
    }
}

/// `checkIfParentQuota`: no ancestor of `path` may have a quota already.
async fn check_no_parent_quota(client: &Client, path: &str) -> Result<(), QuotaError> {
    let parts = split_path(path);
    let mut node = QUOTA_ROOT.to_owned();
    for part in parts.iter().take(parts.len().saturating_sub(1)).skip(1) {
        node.push('/');
        node.push_str(part);
        let kids = match children(client, &node).await {
            Ok(kids) => kids,
            Err(QuotaError::Keeper(Error::NoNode, _)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if kids.is_empty() {
            return Ok(());
        }
        if node != quota_path(path) && kids.iter().any(|k| k == LIMIT_NODE) {
            return Err(QuotaError::Illegal(format!(
                "{path} has a parent {} which has a quota",
                trim_quota_path(&node)
            )));
        }
    }
    Ok(())
}

pub async fn list_quota(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&LIST_QUOTA, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("listquota"));
    }
    let path = p.args[1].as_str();
    let limits = limit_path(path);
    errln!("absolute path is {limits}");
    let client = ctx.client(Some(&limits)).await?;
    let listed = async {
        let quota = read(&client, &limits).await?;
        outln!("Output quota for {path} {}", quota.render());
        let stats = read(&client, &stat_path(path)).await?;
        outln!("Output stat for {path} {}", stats.render());
        Ok::<(), QuotaError>(())
    };
    match listed.await {
        Ok(()) => Ok(()),
        Err(QuotaError::Keeper(Error::NoNode, _)) => {
            errln!("quota for {path} does not exist.");
            Ok(())
        }
        Err(e) => Err(e.into_cli()),
    }
}

pub async fn del_quota(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&DEL_QUOTA, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("delquota"));
    }
    let path = p.args[1].as_str();
    let only: Vec<&str> = [
        ('n', COUNT),
        ('b', BYTES),
        ('N', COUNT_HARD),
        ('B', BYTES_HARD),
    ]
    .iter()
    .filter(|(flag, _)| p.has(*flag))
    .map(|(_, key)| *key)
    .collect();
    let client = ctx.client(Some(path)).await?;
    match delete_quota(&client, path, &only).await {
        Ok(()) => Ok(()),
        Err(QuotaError::Keeper(Error::NoNode, _)) => {
            errln!("quota for {path} does not exist.");
            Ok(())
        }
        Err(e) => Err(e.into_cli()),
    }
}

/// `DelQuotaCommand.delQuota`: with no kinds given, the whole quota goes
/// (its nodes, then ancestors left empty); otherwise those limits become -1.
async fn delete_quota(client: &Client, path: &str, only: &[&str]) -> Result<(), QuotaError> {
    let (parent, limits) = (quota_path(path), limit_path(path));
    if !exists(client, &limits).await? {
        outln!("Quota does not exist for {path}");
        return Ok(());
    }
    let mut current = read(client, &limits).await?;
    if only.is_empty() {
        for kid in children(client, &parent).await? {
            let node = format!("{parent}/{kid}");
            client
                .delete(&node, None)
                .await
                .map_err(|e| QuotaError::Keeper(e, node.clone()))?;
        }
        return trim_empty_ancestors(client, &parent).await;
    }
    for key in only {
        current.set(key, -1);
    }
    client
        .set_data(&limits, current.render().as_bytes(), None)
        .await
        .map_err(|e| QuotaError::Keeper(e, limits.clone()))?;
    Ok(())
}

/// `trimProcQuotas`: deletes `node` and its ancestors up to the quota root
/// while they have no children.
async fn trim_empty_ancestors(client: &Client, node: &str) -> Result<(), QuotaError> {
    let mut node = node.to_owned();
    while node != QUOTA_ROOT {
        if !children(client, &node).await?.is_empty() {
            return Ok(());
        }
        match client.delete(&node, None).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(ErrorCode::NoNode) => {}
            Err(e) => return Err(QuotaError::Keeper(e, node)),
        }
        let Some(cut) = node.rfind('/') else {
            return Ok(());
        };
        node.truncate(cut);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_reads_and_writes_zookeepers_format() {
        let t = StatsTrack::parse("count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=3");
        assert_eq!(t.get(COUNT), 2);
        assert_eq!(t.get(COUNT_HARD), 3);
        assert_eq!(
            t.render(),
            "count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=3"
        );
        let s = StatsTrack::parse("count=3,bytes=10");
        assert_eq!(s.render(), "count=3,bytes=10");
        assert_eq!(StatsTrack::parse("").render(), "count=-1,bytes=-1");
        assert_eq!(trim_quota_path("/zookeeper/quota/a/b"), "/a/b");
        assert_eq!(split_path("/a/b"), vec!["", "a", "b"]);
    }
}
