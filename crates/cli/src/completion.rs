//! Tab completion for the interactive shell (zkCli's
//! `JLineZNodeCompleter`): the first word completes to command names, a
//! word starting with `/` to znode paths, by listing the children of the
//! parent typed so far.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use tokio::runtime::Handle;

use crate::commands::COMMANDS;
use crate::session::Tracker;

/// How long a completion may wait for the server.
const LIST_TIMEOUT: Duration = Duration::from_secs(2);

/// The rustyline helper. `session` follows the shell's current session,
/// replaced by the shell on `connect`.
pub struct ShellHelper {
    pub handle: Handle,
    pub session: Arc<Mutex<Option<Tracker>>>,
}

impl ShellHelper {
    fn children(&self, parent: &str) -> Vec<String> {
        let client = self
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Tracker::current);
        let Some(client) = client else {
            return Vec::new();
        };
        let listed = self.handle.block_on(async {
            tokio::time::timeout(LIST_TIMEOUT, client.get_children(parent)).await
        });
        match listed {
            Ok(Ok(children)) => children,
            _ => Vec::new(),
        }
    }
}

/// The candidates for the word `word`: command names when it is the first
/// word of the line, otherwise paths when it starts with `/`.
pub fn candidates(
    word: &str,
    first_word: bool,
    list: impl FnOnce(&str) -> Vec<String>,
) -> Vec<String> {
    if first_word {
        return COMMANDS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| name.starts_with(word))
            .map(str::to_owned)
            .collect();
    }
    if !word.starts_with('/') {
        return Vec::new();
    }
    let cut = word.rfind('/').unwrap_or(0);
    let (parent, prefix) = if cut == 0 {
        ("/", &word[1..])
    } else {
        (&word[..cut], &word[cut + 1..])
    };
    let mut names: Vec<String> = list(parent)
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .map(|name| format!("{}/{name}", &word[..cut]))
        .collect();
    names.sort();
    names
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &before[start..];
        let first_word = before[..start].trim().is_empty();
        Ok((start, candidates(word, first_word, |p| self.children(p))))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(parent: &str) -> Vec<String> {
        match parent {
            "/" => vec!["zookeeper".into(), "app".into(), "apple".into()],
            "/app" => vec!["one".into(), "two".into()],
            _ => Vec::new(),
        }
    }

    #[test]
    fn first_words_complete_to_commands_and_slashes_to_paths() {
        assert_eq!(
            candidates("get", true, tree),
            vec!["get", "getAcl", "getAllChildrenNumber", "getEphemerals"]
        );
        assert_eq!(candidates("/ap", false, tree), vec!["/app", "/apple"]);
        assert_eq!(candidates("/app/t", false, tree), vec!["/app/two"]);
        assert_eq!(
            candidates("/app/", false, tree),
            vec!["/app/one", "/app/two"]
        );
        assert!(candidates("x", false, tree).is_empty());
    }
}
