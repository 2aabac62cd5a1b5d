//! Commands on znodes and their data: create, ls, get, set, stat, delete,
//! deleteall, sync, getAllChildrenNumber, getEphemerals.

use std::time::Duration;

use corral_client::{Acl, CreateMode, Error, ErrorCode};

use super::walk::{list_bfs, Dfs};
use super::{check_path, parse, parse_version, usage_error, wrap, CliError, CmdResult, Ctx};
use crate::acl;
use crate::format;
use crate::getopt::{Opt, Spec};
use crate::options::java_parse_int;
use crate::paths;
use crate::watches::Watch;

const CREATE: Spec = Spec::new(&[
    Opt::flag('e', "ephemeral"),
    Opt::flag('s', "sequential"),
    Opt::flag('c', "container"),
    Opt::value('t', "ttl"),
]);
const LS: Spec = Spec::new(&[
    Opt::flag('?', "help"),
    Opt::flag('s', "stat"),
    Opt::flag('w', "watch"),
    Opt::flag('R', "recurse"),
]);
const GET: Spec = Spec::new(&[Opt::flag('s', "stats"), Opt::flag('w', "watch")]);
const SET: Spec = Spec::new(&[Opt::flag('s', "stats"), Opt::value('v', "version")]);
const STAT: Spec = Spec::new(&[Opt::flag('w', "watch")]);
const DELETE: Spec = Spec::new(&[Opt::value('v', "version")]);
const DELETE_ALL: Spec = Spec::new(&[Opt::value('b', "batch size")]);
const NO_OPTIONS: Spec = Spec::new(&[]);

/// The largest TTL (`EphemeralType.TTL.maxValue()`, 40 bits of ms).
const TTL_MAX_MS: i64 = 0xFF_FFFF_FFFF;
/// `deleteall`'s default batch of deletes per multi.
const DELETE_BATCH_DEFAULT: i64 = 1000;

pub async fn create(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&CREATE, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("create"));
    }
    let (ephemeral, sequential, container, ttl) = (p.has('e'), p.has('s'), p.has('c'), p.has('t'));
    if container && (ephemeral || sequential) {
        return Err(CliError::failed(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        ));
    }
    let ttl_ms: i64 = match p.value('t') {
        Some(text) => java_parse_int(text)
            .ok_or_else(|| CliError::failed("-t argument must be a long value"))?,
        None => 0,
    };
    if ttl && ephemeral {
        return Err(CliError::failed(
            "TTLs cannot be used with Ephemeral znodes",
        ));
    }
    if ttl && container {
        return Err(CliError::failed(
            "TTLs cannot be used with Container znodes",
        ));
    }
    let mode = match (ephemeral, sequential, container, ttl) {
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (true, false, _, _) => CreateMode::Ephemeral,
        (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
        (false, true, _, false) => CreateMode::PersistentSequential,
        (false, false, true, _) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, false, false, false) => CreateMode::Persistent,
    };
    if ttl && !(1..=TTL_MAX_MS).contains(&ttl_ms) {
        return Err(CliError::failed(format!(
            "ttl must be positive and cannot be larger than: {TTL_MAX_MS}"
        )));
    }
    let path = p.args[1].as_str();
    // zkCli sends null data without a data argument (`get` then prints
    // `null`), and empty data for an empty argument.
    let data = p.args.get(2).map(String::as_bytes);
    let acl = match p.args.get(3) {
        Some(text) => acl::parse(text),
        None => Acl::open_unsafe(),
    };
    paths::validate_create(path, mode.is_sequential()).map_err(CliError::failed)?;
    if acl.is_empty() {
        // ZooKeeper.create's validateACL: InvalidACLException without a path.
        errln!("{}", format::keeper_message(&Error::InvalidAcl, None));
        return Err(CliError::failed(format::wrapper_message(
            &Error::InvalidAcl,
            None,
        )));
    }
    let client = ctx.client(Some(path)).await?;
    let created = if ttl {
        let ttl = Duration::from_millis(ttl_ms.unsigned_abs());
        client
            .create_ttl_nullable(path, data, &acl, mode, ttl)
            .await
    } else {
        client.create_nullable(path, data, &acl, mode).await
    };
    match created {
        Ok((created, _)) => {
            ctx.settle().await;
            errln!("Created {created}");
            Ok(())
        }
        Err(err) => {
            match err.code() {
                Some(ErrorCode::EphemeralOnLocalSession) => {
                    errln!("Unable to create ephemeral node on a local session");
                }
                Some(ErrorCode::InvalidAcl) => {
                    errln!("{}", format::keeper_message(&err, Some(path)));
                }
                _ => {}
            }
            Err(wrap(&err, path))
        }
    }
}

pub async fn ls(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let mut words = words.to_vec();
    let mut p = parse(&LS, &words)?;
    if p.has('?') {
        outln!("usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch");
    }
    // `ls path watch`, the 3.4 form: the third word becomes -w.
    if p.args.len() > 2 {
        words[2] = "-w".to_owned();
        errln!("'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.");
        p = parse(&LS, &words)?;
    }
    if p.args.len() < 2 {
        return Err(usage_error("ls"));
    }
    let path = p.args[1].as_str();
    let watch = p.has('w');
    if p.has('R') {
        let mut walk = Dfs::new(path, watch).map_err(|e| e.into_cli())?;
        let client = ctx.client(Some(path)).await?;
        while let Some(node) = walk.next(ctx, &client).await.map_err(|e| e.into_cli())? {
            outln!("{node}");
        }
        return Ok(());
    }
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let listed = if watch {
        match client.get_children2_watch(path).await {
            Ok((children, stat, w)) => {
                ctx.watch(Watch::Once(w)).await;
                Ok((children, stat))
            }
            Err(e) => Err(e),
        }
    } else {
        client.get_children2(path).await
    };
    let (mut children, stat) = listed.map_err(|e| wrap(&e, path))?;
    children.sort();
    let mut text = format::java_list(&children);
    text.push('\n');
    if p.has('s') {
        text.push_str(&format::stat(&stat));
    }
    out!("{text}");
    Ok(())
}

pub async fn get(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let mut words = words.to_vec();
    let mut p = parse(&GET, &words)?;
    if p.args.len() < 2 {
        return Err(usage_error("get"));
    }
    if p.args.len() > 2 {
        words[2] = "-w".to_owned();
        errln!("'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.");
        p = parse(&GET, &words)?;
    }
    let path = p.args.get(1).map(String::as_str).unwrap_or_default();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let read = if p.has('w') {
        match client.get_data_nullable_watch(path).await {
            Ok((data, stat, w)) => {
                ctx.watch(Watch::Once(w)).await;
                Ok((data, stat))
            }
            Err(e) => Err(e),
        }
    } else {
        client.get_data_nullable(path).await
    };
    let (data, stat) = read.map_err(|e| wrap(&e, path))?;
    // zkCli prints "null" for a node whose data is null.
    let mut text = match data {
        Some(data) => String::from_utf8_lossy(&data).into_owned(),
        None => "null".to_owned(),
    };
    text.push('\n');
    if p.has('s') {
        text.push_str(&format::stat(&stat));
    }
    out!("{text}");
    Ok(())
}

pub async fn set(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&SET, words)?;
    if p.args.len() < 3 {
        return Err(usage_error("set"));
    }
    let (path, data) = (p.args[1].as_str(), p.args[2].as_bytes());
    let version = p.value('v').map(parse_version).transpose()?;
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let stat = client
        .set_data(path, data, version)
        .await
        .map_err(|e| wrap(&e, path))?;
    ctx.settle().await;
    if p.has('s') {
        out!("{}", format::stat(&stat));
    }
    Ok(())
}

pub async fn stat(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let mut words = words.to_vec();
    let mut p = parse(&STAT, &words)?;
    if p.args.len() < 2 {
        return Err(usage_error("stat"));
    }
    if p.args.len() > 2 {
        words[2] = "-w".to_owned();
        errln!("'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead.");
        p = parse(&STAT, &words)?;
    }
    let path = p.args.get(1).map(String::as_str).unwrap_or_default();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let stat = if p.has('w') {
        match client.exists_watch(path).await {
            Ok((stat, w)) => {
                ctx.watch(Watch::Once(w)).await;
                Ok(stat)
            }
            Err(e) => Err(e),
        }
    } else {
        client.exists(path).await
    };
    match stat.map_err(|e| wrap(&e, path))? {
        Some(stat) => {
            out!("{}", format::stat(&stat));
            Ok(())
        }
        None => Err(wrap(&Error::NoNode, path)),
    }
}

pub async fn delete(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&DELETE, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("delete"));
    }
    if p.args.len() > 2 {
        // zkCli 3.8 warns and then ignores the old positional version.
        errln!(
            "'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead."
        );
    }
    let path = p.args[1].as_str();
    let version = p.value('v').map(parse_version).transpose()?;
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    client
        .delete(path, version)
        .await
        .map_err(|e| wrap(&e, path))?;
    ctx.settle().await;
    Ok(())
}

pub async fn delete_all(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&DELETE_ALL, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("deleteall"));
    }
    let batch: i64 = match p.value('b') {
        Some(text) => java_parse_int::<i32>(text)
            .map(i64::from)
            .ok_or_else(|| CliError::failed("-b argument must be an int value"))?,
        None => DELETE_BATCH_DEFAULT,
    };
    let path = p.args[1].as_str();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let tree = list_bfs(&client, path).await.map_err(|e| e.into_cli())?;
    // Leaves first, in multis of `batch` deletes; stop at the first failure.
    let mut ok = true;
    for chunk in tree.rchunks(
        usize::try_from(batch)
            .ok()
            .filter(|b| *b > 0)
            .unwrap_or(tree.len()),
    ) {
        let multi = chunk
            .iter()
            .rev()
            .fold(client.multi(), |m, node| m.delete(node, None));
        if multi.commit().await.is_err() {
            ok = false;
            break;
        }
    }
    ctx.settle().await;
    if !ok {
        errln!("Failed to delete some node(s) in the subtree!");
    }
    Ok(())
}

pub async fn sync(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&NO_OPTIONS, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("sync"));
    }
    let path = p.args[1].as_str();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    match client.sync(path).await {
        Ok(()) => outln!("Sync is OK"),
        Err(err) => {
            let rc = err.code().unwrap_or(ErrorCode::ConnectionLoss).code();
            outln!("Sync has failed. rc={rc}");
        }
    }
    Ok(())
}

pub async fn all_children_number(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&NO_OPTIONS, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("getAllChildrenNumber"));
    }
    let path = p.args[1].as_str();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let number = client
        .get_all_children_number(path)
        .await
        .map_err(|e| wrap(&e, path))?;
    outln!("{number}");
    Ok(())
}

pub async fn ephemerals(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&NO_OPTIONS, words)?;
    // Without a path: all of this session's ephemerals.
    let path = p.args.get(1).map_or("/", String::as_str);
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let nodes = client
        .get_ephemerals(path)
        .await
        .map_err(|e| wrap(&e, path))?;
    outln!("{}", format::java_list(&nodes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::usage_of;

    #[test]
    fn usage_strings_match_zkcli() {
        assert_eq!(
            usage_of("create"),
            "create [-s] [-e] [-c] [-t ttl] path [data] [acl]"
        );
        assert_eq!(usage_of("deleteall"), "deleteall path [-b batch size]");
    }
}
