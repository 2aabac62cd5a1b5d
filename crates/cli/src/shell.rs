//! The shell itself (`ZooKeeperMain`): the interactive loop (rustyline on a
//! terminal, plain lines otherwise), the one-shot run, and the shell's own
//! commands — `history`, `redo`, `printwatches`, `connect`, `close`,
//! `quit` — before anything else goes to `commands`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex, PoisonError};

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};
use tokio::runtime::Handle;

use crate::commands::{self, CliError, Ctx};
use crate::completion::ShellHelper;
use crate::options::{java_decode_int, split_line, MainOptions};
use crate::session::{Session, Settings, Tracker};
use crate::watches::Watches;

/// What the loop does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

pub struct Shell {
    handle: Handle,
    settings: Settings,
    session: Session,
    watches: Watches,
    /// Lines typed, by command number (zkCli's `history` map).
    history: BTreeMap<i64, String>,
    command_count: i64,
    /// The last command's exit code; the shell exits with it.
    exit_code: i32,
    /// The session tab completion lists children with.
    current: Arc<Mutex<Option<Tracker>>>,
}

impl Shell {
    pub fn new(handle: Handle, options: &MainOptions) -> Shell {
        let interactive = options.command.is_none();
        let settings = Settings {
            session_timeout: options.session_timeout,
            read_only: options.read_only,
            retry: interactive,
        };
        let watches = Watches::start(&handle);
        // Not started yet, even in the interactive shell: `interactive`
        // starts it once the banner is out, so that SyncConnected can't
        // come out before "Welcome to ZooKeeper!" however the threads run.
        let session = Session::new(
            handle.clone(),
            &options.server,
            settings.clone(),
            watches.clone(),
            false,
        );
        Shell {
            handle,
            settings,
            session,
            watches,
            history: BTreeMap::new(),
            command_count: 0,
            exit_code: 0,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs one command given on the command line; returns the exit code.
    pub fn one_shot(&mut self, words: Vec<String>) -> i32 {
        outln!("Connecting to {}", self.session.host());
        self.process(words);
        self.finish()
    }

    /// Reads commands until `quit` or end of input; returns the exit code.
    pub fn interactive(&mut self) -> i32 {
        outln!("Connecting to {}", self.session.host());
        outln!("Welcome to ZooKeeper!");
        if std::io::stdin().is_terminal() {
            outln!("JLine support is enabled");
            self.session.start();
            self.read_terminal();
        } else {
            outln!("JLine support is disabled");
            self.session.start();
            self.read_lines();
        }
        self.finish()
    }

    /// Closes the session without a word (zkCli just exits) and returns the
    /// exit code.
    fn finish(&mut self) -> i32 {
        self.handle.block_on(self.watches.settle());
        self.handle.block_on(self.session.close(false));
        self.exit_code
    }

    fn read_lines(&mut self) {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if self.execute_line(&line) == Flow::Quit {
                break;
            }
        }
    }

    fn read_terminal(&mut self) {
        let helper = ShellHelper {
            handle: self.handle.clone(),
            session: self.current.clone(),
        };
        // Tab completes what all candidates share, a second Tab lists them.
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .build();
        let mut editor: Editor<ShellHelper, DefaultHistory> = match Editor::with_config(config) {
            Ok(editor) => editor,
            Err(e) => {
                errln!("corral cli: no line editor ({e}); reading plain lines");
                return self.read_lines();
            }
        };
        editor.set_helper(Some(helper));
        loop {
            self.publish_current();
            let prompt = format!(
                "[zk: {}({}) {}] ",
                self.session.host(),
                self.session.state_name(),
                self.command_count
            );
            match editor.readline(&prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if self.execute_line(&line) == Flow::Quit {
                        break;
                    }
                }
                // Ctrl-C drops the line being typed, as a shell does.
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    errln!("corral cli: cannot read the terminal: {e}");
                    break;
                }
            }
        }
    }

    fn publish_current(&self) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.session.tracker());
    }

    /// `executeLine`: numbers, records and runs a non-empty line.
    fn execute_line(&mut self, line: &str) -> Flow {
        let words = split_line(line);
        if words.is_empty() {
            return Flow::Continue;
        }
        self.history.insert(self.command_count, line.to_owned());
        let flow = self.process(words);
        self.command_count += 1;
        self.handle.block_on(self.watches.settle());
        flow
    }

    /// `processCmd`: runs a command, prints its error, keeps its exit code.
    fn process(&mut self, words: Vec<String>) -> Flow {
        match self.process_command(words) {
            Ok(flow) => {
                if flow == Flow::Continue {
                    self.exit_code = 0;
                }
                flow
            }
            Err(err) => {
                errln!("{}", err.message);
                self.exit_code = err.exit_code;
                Flow::Continue
            }
        }
    }

    /// `processZKCmd`.
    fn process_command(&mut self, words: Vec<String>) -> Result<Flow, CliError> {
        let Some(name) = words.first().cloned() else {
            return Ok(Flow::Continue);
        };
        if name == "help" {
            // Not a zkCli 3.8 command (it prints the usage as an error and
            // exits 127); here it just prints the usage.
            errln!("{}", commands::usage());
            return Ok(Flow::Continue);
        }
        if !commands::is_command(&name) {
            errln!("{}", commands::usage());
            return Err(CliError::not_found(&name));
        }
        match name.as_str() {
            "quit" => {
                self.handle.block_on(self.session.close_connected());
                return Ok(Flow::Quit);
            }
            "redo" if words.len() >= 2 && self.redo(&words[1])? == Flow::Quit => {
                return Ok(Flow::Quit);
            }
            "history" => {
                for i in (self.command_count - 10).max(0)..=self.command_count {
                    let line = self.history.get(&i).map_or("null", String::as_str);
                    outln!("{i} - {line}");
                }
            }
            "printwatches" => match words.get(1) {
                None => outln!(
                    "printwatches is {}",
                    if self.watches.printing() { "on" } else { "off" }
                ),
                Some(value) => self.watches.set_printing(value == "on"),
            },
            "connect" => {
                let host = words
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| self.session.host().to_owned());
                self.connect(&host);
            }
            _ => {}
        }
        if !self.session.is_alive() {
            outln!("Not connected");
            return Ok(Flow::Continue);
        }
        match name.as_str() {
            "close" => self.handle.block_on(self.session.close_connected()),
            "redo" | "history" | "printwatches" | "connect" => {}
            _ => {
                let ctx = Ctx {
                    session: &self.session,
                    watches: &self.watches,
                };
                self.handle.block_on(commands::run(&ctx, &words))?;
            }
        }
        Ok(Flow::Continue)
    }

    /// `redo N`: runs line N again, recorded under the current number.
    fn redo(&mut self, number: &str) -> Result<Flow, CliError> {
        let index = java_decode_int(number).ok_or_else(|| {
            CliError::failed(format!(
                "java.lang.NumberFormatException: For input string: \"{number}\""
            ))
        })?;
        let index = i64::from(index);
        if self.command_count <= index || index < 0 {
            return Err(CliError::failed("Command index out of range"));
        }
        let line = self.history.get(&index).cloned().unwrap_or_default();
        let words = split_line(&line);
        if words.first().is_some_and(|w| w == "redo") {
            return Err(CliError::failed("No redoing redos"));
        }
        self.history.insert(self.command_count, line);
        // The redone command's outcome is reported like any command's.
        Ok(self.process(words))
    }

    /// `connect host`: closes the current session and starts a new one.
    fn connect(&mut self, host: &str) {
        self.handle.block_on(self.session.close(true));
        self.session = Session::new(
            self.handle.clone(),
            host,
            Settings {
                retry: true,
                ..self.settings.clone()
            },
            self.watches.clone(),
            true,
        );
    }
}
