//! Subtree walks as zkCli's helpers in `ZKUtil` do them, step for step,
//! because their order shows in the output and in which request fails:
//! `visitSubTreeDFS` (`ls -R`, `setAcl -R`, the quota checks) and
//! `listSubTreeBFS` (`deleteall`).

use std::collections::VecDeque;

use corral_client::{Client, Error};

use super::{wrap, CliError, Ctx};
use crate::paths;
use crate::watches::Watch;

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError {
    /// A path the Java client refuses (IllegalArgumentException's message).
    Path(String),
    /// A request on `path` failed.
    Keeper(Error, String),
}

impl WalkError {
    /// The message zkCli prints: MalformedPathException or CliWrapperException.
    pub fn into_cli(self) -> CliError {
        match self {
            WalkError::Path(message) => CliError::failed(message),
            WalkError::Keeper(err, path) => wrap(&err, &path),
        }
    }
}

/// `visitSubTreeDFS`, pulled one node at a time so that the caller's work
/// on a node (printing it, setting its ACL) happens before the next
/// listing, as the Java callback does: the root (after a getData, which
/// fails on a missing root), then the children of each node in sorted
/// order, each listed before its own children are visited.
pub struct Dfs {
    watch: bool,
    root: Option<String>,
    stack: Vec<String>,
    pending: VecDeque<String>,
}

impl Dfs {
    /// Checks `root` (`PathUtils.validatePath`). With `watch`, the walk
    /// leaves a data watch on the root and a child watch on every node.
    pub fn new(root: &str, watch: bool) -> Result<Dfs, WalkError> {
        paths::validate(root).map_err(WalkError::Path)?;
        Ok(Dfs {
            watch,
            root: Some(root.to_owned()),
            stack: Vec::new(),
            pending: VecDeque::new(),
        })
    }

    /// The next node, or `None` when the walk is over.
    pub async fn next(
        &mut self,
        ctx: &Ctx<'_>,
        client: &Client,
    ) -> Result<Option<String>, WalkError> {
        if let Some(root) = self.root.take() {
            let result = if self.watch {
                match client.get_data_watch(&root).await {
                    Ok((_, _, w)) => {
                        ctx.watch(Watch::Once(w)).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else {
                client.get_data(&root).await.map(|_| ())
            };
            result.map_err(|e| WalkError::Keeper(e, root.clone()))?;
            self.stack.push(root.clone());
            return Ok(Some(root));
        }
        loop {
            if let Some(next) = self.pending.pop_front() {
                return Ok(Some(next));
            }
            let Some(node) = self.stack.pop() else {
                return Ok(None);
            };
            let listed = if self.watch {
                match client.get_children_watch(&node).await {
                    Ok((children, w)) => {
                        ctx.watch(Watch::Once(w)).await;
                        Ok(children)
                    }
                    Err(e) => Err(e),
                }
            } else {
                client.get_children(&node).await
            };
            let mut children = match listed {
                Ok(children) => children,
                // Deleted since it was listed: skipped, as in ZKUtil.
                Err(Error::NoNode) => continue,
                Err(e) => return Err(WalkError::Keeper(e, node)),
            };
            children.sort();
            let paths: Vec<String> = children.iter().map(|c| paths::child(&node, c)).collect();
            self.stack.extend(paths.iter().rev().cloned());
            self.pending.extend(paths);
        }
    }
}

/// `listSubTreeBFS`: the root and every descendant, breadth first, in the
/// server's order of children.
pub async fn list_bfs(client: &Client, root: &str) -> Result<Vec<String>, WalkError> {
    let mut queue = VecDeque::from([root.to_owned()]);
    let mut tree = vec![root.to_owned()];
    while let Some(node) = queue.pop_front() {
        paths::validate(&node).map_err(WalkError::Path)?;
        let children = client
            .get_children(&node)
            .await
            .map_err(|e| WalkError::Keeper(e, node.clone()))?;
        for child in children {
            // Java writes `node + "/" + child`, also under the root.
            let path = format!("{node}/{child}");
            queue.push_back(path.clone());
            tree.push(path);
        }
    }
    Ok(tree)
}
