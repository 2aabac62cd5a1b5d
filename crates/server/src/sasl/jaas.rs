//! The JAAS login configuration ZooKeeper's server reads
//! (`-Djava.security.auth.login.config=…`): sections of login modules with
//! options. Corral needs only the `Server` section's DigestLoginModule, whose
//! `user_<name>="<password>"` options are the SASL DIGEST-MD5 accounts.
//!
//! The grammar (Java's `ConfigFile`):
//! `Name { module.Class flag key="value" key2=value2; other.Module flag; };`
//! with `//` and `/* */` comments.

use std::collections::BTreeMap;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("JAAS configuration: {0}")]
pub struct JaasError(pub String);

/// One login module of a section: its class, control flag and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

/// Parses a whole JAAS file into its sections, by name.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vec<LoginModule>>, JaasError> {
    let mut tokens = tokenize(text)?.into_iter().peekable();
    let mut sections = BTreeMap::new();
    while let Some(name) = tokens.next() {
        let name = name.word("a section name")?;
        expect(&mut tokens, Token::Open, &name)?;
        let mut modules = Vec::new();
        loop {
            match tokens.next() {
                Some(Token::Close) => break,
                Some(Token::Word(class)) => {
                    let flag = next_word(&mut tokens, "a control flag", &name)?;
                    let mut options = BTreeMap::new();
                    loop {
                        match tokens.next() {
                            Some(Token::Semicolon) => break,
                            Some(Token::Word(key)) => {
                                expect(&mut tokens, Token::Equals, &name)?;
                                let value = match tokens.next() {
                                    Some(Token::Word(v)) | Some(Token::Quoted(v)) => v,
                                    _ => {
                                        return Err(JaasError(format!(
                                            "section {name}: option {key} has no value"
                                        )))
                                    }
                                };
                                options.insert(key, value);
                            }
                            other => {
                                return Err(JaasError(format!(
                                    "section {name}: expected an option or `;`, found {}",
                                    describe(other.as_ref())
                                )))
                            }
                        }
                    }
                    modules.push(LoginModule {
                        class,
                        flag,
                        options,
                    });
                }
                other => {
                    return Err(JaasError(format!(
                        "section {name}: expected a login module or `}}`, found {}",
                        describe(other.as_ref())
                    )))
                }
            }
        }
        expect(&mut tokens, Token::Semicolon, &name)?;
        sections.insert(name, modules);
    }
    Ok(sections)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semicolon,
    Equals,
}

impl Token {
    fn word(self, what: &str) -> Result<String, JaasError> {
        match self {
            Token::Word(w) => Ok(w),
            other => Err(JaasError(format!(
                "expected {what}, found {}",
                describe(Some(&other))
            ))),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the file".into(),
        Some(Token::Word(w)) => format!("`{w}`"),
        Some(Token::Quoted(q)) => format!("\"{q}\""),
        Some(Token::Open) => "`{`".into(),
        Some(Token::Close) => "`}`".into(),
        Some(Token::Semicolon) => "`;`".into(),
        Some(Token::Equals) => "`=`".into(),
    }
}

fn expect(
    tokens: &mut impl Iterator<Item = Token>,
    want: Token,
    section: &str,
) -> Result<(), JaasError> {
    match tokens.next() {
        Some(t) if t == want => Ok(()),
        other => Err(JaasError(format!(
            "section {section}: expected {}, found {}",
            describe(Some(&want)),
            describe(other.as_ref())
        ))),
    }
}

fn next_word(
    tokens: &mut impl Iterator<Item = Token>,
    what: &str,
    section: &str,
) -> Result<String, JaasError> {
    match tokens.next() {
        Some(Token::Word(w)) => Ok(w),
        other => Err(JaasError(format!(
            "section {section}: expected {what}, found {}",
            describe(other.as_ref())
        ))),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, JaasError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '{' => out.push(Token::Open),
            '}' => out.push(Token::Close),
            ';' => out.push(Token::Semicolon),
            '=' => out.push(Token::Equals),
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err(JaasError("a /* comment is never closed".into())),
                    }
                }
            }
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err(JaasError("a quoted value is never closed".into())),
                        },
                        Some(c) => value.push(c),
                        None => return Err(JaasError("a quoted value is never closed".into())),
                    }
                }
                out.push(Token::Quoted(value));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "{};=\"".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zookeepers_digest_server_section() {
        let text = r#"
// the server's accounts
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
/* a client section, ignored by the server */
Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=bob password="p;w\"d"; };
"#;
        let sections = parse(text).unwrap();
        let server = &sections["Server"];
        assert_eq!(server.len(), 1);
        assert_eq!(
            server[0].class,
            "org.apache.zookeeper.server.auth.DigestLoginModule"
        );
        assert_eq!(server[0].flag, "required");
        assert_eq!(server[0].options["user_super"], "super_secret");
        assert_eq!(server[0].options["user_jaasuser"], "jaas_password");
        assert_eq!(sections["Client"][0].options["password"], "p;w\"d");
        assert_eq!(sections["Client"][0].options["username"], "bob");
        assert!(
            parse("").unwrap().is_empty(),
            "an empty file has no sections"
        );
    }

    #[test]
    fn malformed_files_say_where() {
        for (text, says) in [
            (
                "Server { m required a=\"b\" }; ",
                "expected an option or `;`",
            ),
            ("Server { m required a= ; };", "option a has no value"),
            ("Server { m required; }", "expected `;`, found the end"),
            ("Server m required; };", "expected `{`"),
            ("Server { m required a=\"b; };", "never closed"),
            ("/* Server { };", "never closed"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.0.contains(says), "{text:?}: {err}");
        }
    }
}
