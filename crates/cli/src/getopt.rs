//! A command's options, parsed the way Apache commons-cli parses zkCli's
//! commands: single-letter options anywhere in the line, bundled flags
//! (`-sw`), values attached or separate (`-v5`, `-v 5`), `--` ends the
//! options, and one-of option groups (`setquota -n|-b|-N|-B`). Errors carry
//! the text zkCli prints (the commons-cli exception's `toString()`).

/// One option of a command.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub name: char,
    pub takes_value: bool,
    /// Shown in commons-cli messages and `ls -?`.
    pub description: &'static str,
}

impl Opt {
    pub const fn flag(name: char, description: &'static str) -> Opt {
        Opt {
            name,
            takes_value: false,
            description,
        }
    }

    pub const fn value(name: char, description: &'static str) -> Opt {
        Opt {
            name,
            takes_value: true,
            description,
        }
    }
}

/// The options a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub opts: &'static [Opt],
    /// Options of which at most one may be given (commons-cli `OptionGroup`).
    pub group: &'static [char],
    /// Whether one of `group` must be given.
    pub group_required: bool,
}

impl Spec {
    pub const fn new(opts: &'static [Opt]) -> Spec {
        Spec {
            opts,
            group: &[],
            group_required: false,
        }
    }

    fn find(&self, name: char) -> Option<&Opt> {
        self.opts.iter().find(|o| o.name == name)
    }

    /// True for a word commons-cli would take as one of these options
    /// (`-v`, `--v`), which therefore can't be another option's value.
    fn is_option_word(&self, word: &str) -> bool {
        let stripped = word.trim_start_matches('-');
        word.starts_with('-') && {
            let mut chars = stripped.chars();
            matches!((chars.next(), chars.next()), (Some(c), None) if self.find(c).is_some())
        }
    }
}

/// The parsed line: options in the order given, and the other words
/// (the command name first, like commons-cli's `getArgs()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    opts: Vec<(char, Option<String>)>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, name: char) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The first value given for `name`.
    pub fn value(&self, name: char) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

const UNRECOGNIZED: &str =
    "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: ";
const MISSING_ARGUMENT: &str =
    "org.apache.commons.cli.MissingArgumentException: Missing argument for option: ";

/// Parses `words` (the command name included) against `spec`.
pub fn parse(spec: &Spec, words: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut selected: Option<char> = None;
    let mut only_args = false;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if only_args || word == "-" || !word.starts_with('-') {
            parsed.args.push(word.clone());
            continue;
        }
        if word == "--" {
            only_args = true;
            continue;
        }
        let body: Vec<char> = word[1..].chars().collect();
        let mut k = 0;
        while k < body.len() {
            let Some(opt) = spec.find(body[k]) else {
                return Err(format!("{UNRECOGNIZED}{word}"));
            };
            select(spec, &mut selected, opt.name)?;
            if !opt.takes_value {
                parsed.opts.push((opt.name, None));
                k += 1;
                continue;
            }
            let attached: String = body[k + 1..].iter().collect();
            let value = if !attached.is_empty() {
                attached
            } else if let Some(next) = words.get(i).filter(|w| !spec.is_option_word(w)) {
                i += 1;
                next.clone()
            } else {
                return Err(format!("{MISSING_ARGUMENT}{}", opt.name));
            };
            parsed.opts.push((opt.name, Some(value)));
            break;
        }
    }
    if spec.group_required && selected.is_none() {
        let members: Vec<String> = spec
            .group
            .iter()
            .filter_map(|&c| spec.find(c))
            .map(|o| format!("-{} {}", o.name, o.description))
            .collect();
        return Err(format!(
            "org.apache.commons.cli.MissingOptionException: Missing required option: [{}]",
            members.join(", ")
        ));
    }
    Ok(parsed)
}

/// Records that `name` was given; a second, different member of the group
/// is an error (commons-cli `AlreadySelectedException`).
fn select(spec: &Spec, selected: &mut Option<char>, name: char) -> Result<(), String> {
    if !spec.group.contains(&name) {
        return Ok(());
    }
    match *selected {
        Some(previous) if previous != name => Err(format!(
            "org.apache.commons.cli.AlreadySelectedException: The option '{name}' was specified \
             but an option from this group has already been selected: '{previous}'"
        )),
        _ => {
            *selected = Some(name);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: Spec = Spec::new(&[Opt::flag('s', "stats"), Opt::value('v', "version")]);
    const QUOTA: Spec = Spec {
        opts: &[
            Opt::value('n', "num soft quota"),
            Opt::value('b', "bytes soft quota"),
            Opt::value('N', "num hard quota"),
            Opt::value('B', "bytes hard quota"),
        ],
        group: &['n', 'b', 'N', 'B'],
        group_required: true,
    };

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_may_come_anywhere_and_bundle() {
        let p = parse(&SET, &words("set /a -s data -v 3")).unwrap();
        assert_eq!(p.args, words("set /a data"));
        assert!(p.has('s'));
        assert_eq!(p.value('v'), Some("3"));
        let p = parse(&SET, &words("set -sv7 /a x")).unwrap();
        assert_eq!(p.value('v'), Some("7"));
        let p = parse(&SET, &words("set -v -1 /a -- -x")).unwrap();
        assert_eq!(p.value('v'), Some("-1"));
        assert_eq!(p.args, words("set /a -x"));
    }

    #[test]
    fn errors_read_like_commons_cli() {
        assert_eq!(
            parse(&SET, &words("set -x /a")).unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x"
        );
        assert_eq!(
            parse(&SET, &words("set -sx /a")).unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -sx"
        );
        assert_eq!(
            parse(&SET, &words("set /a x -v")).unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        assert_eq!(
            parse(&SET, &words("set /a -v -s")).unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        assert_eq!(
            parse(&QUOTA, &words("setquota -N 5 -B 10 /a")).unwrap_err(),
            "org.apache.commons.cli.AlreadySelectedException: The option 'B' was specified but \
             an option from this group has already been selected: 'N'"
        );
        assert_eq!(
            parse(&QUOTA, &words("setquota /a")).unwrap_err(),
            "org.apache.commons.cli.MissingOptionException: Missing required option: \
             [-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]"
        );
        assert!(parse(&QUOTA, &words("setquota -n 1 -n 2 /a")).is_ok());
    }
}
