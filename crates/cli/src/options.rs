//! The shell's own command line (`-server`, `-timeout`, `-r`, then an
//! optional one-shot command) and the splitting of a typed line into words,
//! both as `ZooKeeperMain.MyCommandOptions` does them.

use std::time::Duration;

/// What `corral cli` was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainOptions {
    /// `host:port[,host:port…][/chroot]`, shown in the prompt as given.
    pub server: String,
    /// The session timeout asked for (`-timeout`, milliseconds in zkCli).
    pub session_timeout: Duration,
    /// `-r`: accept read-only servers.
    pub read_only: bool,
    /// The one-shot command and its arguments, when one follows the options.
    pub command: Option<Vec<String>>,
}

/// zkCli's defaults: `localhost:2181`, 30 s.
const DEFAULT_SERVER: &str = "localhost:2181";
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

impl MainOptions {
    /// Parses the words after `corral cli` like `MyCommandOptions.parseOptions`:
    /// options are read until the first word that does not start with `-`,
    /// which starts the command; unknown options are skipped.
    pub fn parse(args: &[String]) -> Result<MainOptions, String> {
        let mut options = MainOptions {
            server: DEFAULT_SERVER.to_owned(),
            session_timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            read_only: false,
            command: None,
        };
        let mut it = args.iter();
        while let Some(opt) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("Error: no argument found for option {name}"))
            };
            match opt.as_str() {
                "-server" => options.server = value("-server")?,
                "-timeout" => {
                    let text = value("-timeout")?;
                    let ms: u64 = text
                        .trim()
                        .parse()
                        .map_err(|_| format!("Error: -timeout wants milliseconds, got {text:?}"))?;
                    options.session_timeout = Duration::from_millis(ms);
                }
                "-r" => options.read_only = true,
                // zkCli 3.8 options that change nothing here: the shell always
                // waits for the connection, and has no client properties file.
                "-waitforconnection" => {}
                "-client-configuration" => {
                    value("-client-configuration")?;
                    errln!("corral cli: -client-configuration is not supported, ignored");
                }
                _ => {}
            }
            if !opt.starts_with('-') {
                let mut command = vec![opt.clone()];
                command.extend(it.cloned());
                options.command = Some(command);
                break;
            }
        }
        Ok(options)
    }
}

/// Splits a typed line into words like `MyCommandOptions.parseCommand`
/// (regex `\s*([^"']\S*|"[^"]*"|'[^']*')\s*`): words are separated by
/// white space; a word that starts with a quote runs to the matching quote
/// and loses both quotes; a quote with no partner is skipped.
pub fn split_line(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if is_java_space(chars[i]) {
            i += 1;
            continue;
        }
        let c = chars[i];
        if c == '"' || c == '\'' {
            match chars[i + 1..].iter().position(|&d| d == c) {
                Some(len) => {
                    words.push(chars[i + 1..i + 1 + len].iter().collect());
                    i += len + 2;
                }
                // The regex cannot match at an unpaired quote; it moves on.
                None => i += 1,
            }
            continue;
        }
        let start = i;
        while i < chars.len() && !is_java_space(chars[i]) {
            i += 1;
        }
        words.push(chars[start..i].iter().collect());
    }
    words
}

/// Java regex `\s`: space, tab, newline, vertical tab, form feed, return.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// `Integer.decode`: optional sign, then `0x`/`0X`/`#` hex, `0` octal or
/// decimal. `None` where Java throws NumberFormatException.
pub fn java_decode_int(text: &str) -> Option<i32> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))
        .or_else(|| rest.strip_prefix('#'))
    {
        (16, hex)
    } else if rest.len() > 1 && rest.starts_with('0') {
        (8, &rest[1..])
    } else {
        (10, rest)
    };
    if digits.is_empty() || digits.starts_with(['-', '+']) {
        return None;
    }
    let magnitude = i64::from_str_radix(digits, radix).ok()?;
    i32::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// `Integer.parseInt` / `Long.parseLong`: an optional sign and decimal digits.
pub fn java_parse_int<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Rust's parser takes the same shape (a leading `+` included).
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_line(line)
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_split_on_white_space_and_quotes_group_them() {
        assert_eq!(words("  ls   -s /a "), strings(&["ls", "-s", "/a"]));
        assert_eq!(
            words(r#"create /a "hello world" 'x y'"#),
            strings(&["create", "/a", "hello world", "x y"])
        );
        assert_eq!(words(r#"set /a """#), strings(&["set", "/a", ""]));
        // A quote inside a word is kept; an unpaired quote is skipped.
        assert_eq!(words(r#"set /a it's"#), strings(&["set", "/a", "it's"]));
        assert_eq!(words(r#"set /a "open"#), strings(&["set", "/a", "open"]));
        assert_eq!(words(r#""a b"c"#), strings(&["a b", "c"]));
        assert!(words("   ").is_empty());
    }

    #[test]
    fn main_options_stop_at_the_first_word() {
        let o =
            MainOptions::parse(&strings(&["-server", "h:1/app", "-r", "ls", "-s", "/"])).unwrap();
        assert_eq!(o.server, "h:1/app");
        assert!(o.read_only);
        assert_eq!(o.command, Some(strings(&["ls", "-s", "/"])));
        let o = MainOptions::parse(&strings(&["-timeout", "5000"])).unwrap();
        assert_eq!(o.session_timeout, Duration::from_millis(5000));
        assert_eq!(o.server, "localhost:2181");
        assert_eq!(o.command, None);
        assert!(MainOptions::parse(&strings(&["-server"])).is_err());
        assert!(MainOptions::parse(&strings(&["-timeout", "soon"])).is_err());
    }

    #[test]
    fn integers_parse_like_java() {
        assert_eq!(java_decode_int("12"), Some(12));
        assert_eq!(java_decode_int("0x1f"), Some(31));
        assert_eq!(java_decode_int("#10"), Some(16));
        assert_eq!(java_decode_int("010"), Some(8));
        assert_eq!(java_decode_int("-3"), Some(-3));
        assert_eq!(java_decode_int("x"), None);
        assert_eq!(java_decode_int(""), None);
        assert_eq!(java_parse_int::<i32>("+7"), Some(7));
        assert_eq!(java_parse_int::<i32>("7 "), None);
        assert_eq!(java_parse_int::<i64>("-1"), Some(-1));
    }
}
