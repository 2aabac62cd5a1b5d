//! Persistent watches and watch removal: addWatch, removewatches.

use corral_client::{AddWatchMode, WatcherType};

use super::{check_path, parse, usage_error, wrap, CmdResult, Ctx};
use crate::getopt::{Opt, Spec};
use crate::watches::Watch;

const ADD_WATCH: Spec = Spec::new(&[Opt::value('m', "")]);
const REMOVE_WATCHES: Spec = Spec::new(&[
    Opt::flag('c', "child watcher type"),
    Opt::flag('d', "data watcher type"),
    Opt::flag('a', "any watcher type"),
    Opt::flag('l', "remove locally when there is no server connection"),
]);

pub async fn add_watch(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&ADD_WATCH, words)?;
    if p.args.len() != 2 {
        return Err(usage_error("addWatch"));
    }
    // zkCli's default is the recursive mode.
    let mode = match p.value('m').map(str::to_uppercase).as_deref() {
        None | Some("PERSISTENT_RECURSIVE") => AddWatchMode::PersistentRecursive,
        Some("PERSISTENT") => AddWatchMode::Persistent,
        Some(_) => return Err(usage_error("addWatch")),
    };
    let path = p.args[1].as_str();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    let stream = client
        .add_watch(path, mode)
        .await
        .map_err(|e| wrap(&e, path))?;
    ctx.watch(Watch::Stream(stream)).await;
    Ok(())
}

pub async fn remove_watches(ctx: &Ctx<'_>, words: &[String]) -> CmdResult {
    let p = parse(&REMOVE_WATCHES, words)?;
    if p.args.len() < 2 {
        return Err(usage_error("removewatches"));
    }
    let kind = if p.has('c') {
        WatcherType::Children
    } else if p.has('d') {
        WatcherType::Data
    } else {
        WatcherType::Any
    };
    // `-l` (remove locally when the server can't be reached) has no
    // counterpart in the Rust client: removal always asks the server.
    let path = p.args[1].as_str();
    check_path(path)?;
    let client = ctx.client(Some(path)).await?;
    client
        .remove_watches(path, kind)
        .await
        .map_err(|e| wrap(&e, path))?;
    ctx.settle().await;
    Ok(())
}
