//! The server side of SASL DIGEST-MD5 (RFC 2831), as ZooKeeper runs it: the
//! realm and server name `zk-sasl-md5`, protocol `zookeeper`, quality of
//! protection `auth` only (no integrity or confidentiality layer). Two steps:
//! the client's empty first token gets a challenge; its digest response is
//! checked against the account's password, and the answer proves the server
//! knows it too (`rspauth`).

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// ZooKeeper's fixed realm and server name for DIGEST-MD5
/// (`SecurityUtils`, `ZooKeeperSaslServer`).
pub const REALM: &str = "zk-sasl-md5";
const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// What one token moves the exchange to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this token and wait for the next.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send this last token.
    Done { token: Vec<u8>, user: String },
    /// Refused, with the reason for the log.
    Failed(String),
}

/// One connection's exchange.
#[derive(Debug)]
pub struct DigestMd5Server {
    nonce: String,
    challenged: bool,
}

impl DigestMd5Server {
    /// `nonce`: fresh randomness for this exchange (the caller draws it).
    pub fn new(nonce: String) -> DigestMd5Server {
        DigestMd5Server {
            nonce,
            challenged: false,
        }
    }

    /// Takes the client's next token. `passwords`: account name → password.
    pub fn step(&mut self, token: &[u8], passwords: &BTreeMap<String, String>) -> Step {
        if !self.challenged {
            if !token.is_empty() {
                return Step::Failed("DIGEST-MD5 must not have an initial response".into());
            }
            self.challenged = true;
            let challenge = format!(
                "realm=\"{REALM}\",nonce=\"{}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
                self.nonce
            );
            return Step::Continue(challenge.into_bytes());
        }
        match self.verify(token, passwords) {
            Ok((user, rspauth)) => Step::Done {
                token: format!("rspauth={rspauth}").into_bytes(),
                user,
            },
            Err(why) => Step::Failed(why),
        }
    }

    /// Checks a digest-response; the user and the `rspauth` value.
    fn verify(
        &self,
        token: &[u8],
        passwords: &BTreeMap<String, String>,
    ) -> Result<(String, String), String> {
        let text = std::str::from_utf8(token).map_err(|_| "the response is not UTF-8")?;
        let directives = parse_directives(text)?;
        let get = |key: &str| directives.get(key).map(String::as_str);
        let need = |key: &str| get(key).ok_or_else(|| format!("the response has no {key}"));
        let user = need("username")?;
        if let Some(realm) = get("realm") {
            if realm != REALM {
                return Err(format!("unknown realm {realm:?}"));
            }
        }
        if need("nonce")? != self.nonce {
            return Err("the nonce is not the one sent".into());
        }
        let nc = need("nc")?;
        if nc != "00000001" {
            return Err(format!(
                "nonce count {nc} (only one authentication per exchange)"
            ));
        }
        let cnonce = need("cnonce")?;
        let qop = get("qop").unwrap_or("auth");
        if qop != "auth" {
            return Err(format!("quality of protection {qop:?} was not offered"));
        }
        let uri = need("digest-uri")?;
        if !uri.eq_ignore_ascii_case(DIGEST_URI) {
            return Err(format!("digest-uri {uri:?} is not {DIGEST_URI:?}"));
        }
        let password = passwords
            .get(user)
            .ok_or_else(|| format!("no account {user:?}"))?;
        let authzid = get("authzid");
        let a1 = a1(user, password, &self.nonce, cnonce, authzid);
        let expected = response_value(&a1, &self.nonce, nc, cnonce, qop, "AUTHENTICATE", uri);
        if need("response")? != expected {
            return Err(format!("wrong password for {user:?}"));
        }
        let rspauth = response_value(&a1, &self.nonce, nc, cnonce, qop, "", uri);
        Ok((user.to_string(), rspauth))
    }
}

/// `H(username:realm:password):nonce:cnonce[:authzid]` (the session key's input).
fn a1(user: &str, password: &str, nonce: &str, cnonce: &str, authzid: Option<&str>) -> Vec<u8> {
    let mut secret = latin1_if_possible(user);
    secret.push(b':');
    secret.extend_from_slice(REALM.as_bytes());
    secret.push(b':');
    secret.extend(latin1_if_possible(password));
    let mut a1 = Md5::digest(&secret).to_vec();
    a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(authzid) = authzid {
        a1.push(b':');
        a1.extend_from_slice(authzid.as_bytes());
    }
    a1
}

/// `HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))))` with `A2 = method:uri`
/// (`AUTHENTICATE` for the client's response, empty for the server's rspauth).
fn response_value(
    a1: &[u8],
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let a2 = format!("{method}:{uri}");
    let kd = format!(
        "{}:{nonce}:{nc}:{cnonce}:{qop}:{}",
        hex(&Md5::digest(a1)),
        hex(&Md5::digest(a2.as_bytes()))
    );
    hex(&Md5::digest(kd.as_bytes()))
}

/// RFC 2831 2.1.2.1: with `charset=utf-8`, names and passwords that fit in
/// ISO 8859-1 are hashed in it (Java does the same).
fn latin1_if_possible(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) <= 0xFF) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key=value,key="quoted \" value",…` into a map (a repeated key is an error,
/// as RFC 2831 allows each directive once).
fn parse_directives(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_ascii_lowercase();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of {key} is never closed")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        if key.is_empty() {
            return Err("a directive has no name".into());
        }
        if out.insert(key.clone(), value).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> BTreeMap<String, String> {
        BTreeMap::from([("jaasuser".to_string(), "jaas_password".to_string())])
    }

    /// A client as pure-sasl (kazoo) and Java's DigestMD5Client compute it.
    fn client_response(challenge: &str, user: &str, password: &str, cnonce: &str) -> String {
        let d = parse_directives(challenge).unwrap();
        let nonce = &d["nonce"];
        let a1 = a1(user, password, nonce, cnonce, None);
        let response = response_value(
            &a1,
            nonce,
            "00000001",
            cnonce,
            "auth",
            "AUTHENTICATE",
            DIGEST_URI,
        );
        format!(
            "qop=auth,realm=\"{REALM}\",username=\"{user}\",nonce=\"{nonce}\",cnonce=\"{cnonce}\",\
             nc=00000001,digest-uri=\"{DIGEST_URI}\",response={response}"
        )
    }

    #[test]
    fn a_known_account_authenticates_and_the_server_proves_the_password() {
        let mut server = DigestMd5Server::new("OA6MG9tEQGm2hh".into());
        let Step::Continue(challenge) = server.step(b"", &accounts()) else {
            panic!("no challenge");
        };
        let challenge = String::from_utf8(challenge).unwrap();
        assert!(challenge.contains("realm=\"zk-sasl-md5\""), "{challenge}");
        assert!(challenge.contains("qop=\"auth\""), "{challenge}");
        let response = client_response(&challenge, "jaasuser", "jaas_password", "OA6MHXh6VqTrRk");
        match server.step(response.as_bytes(), &accounts()) {
            Step::Done { token, user } => {
                assert_eq!(user, "jaasuser");
                let token = String::from_utf8(token).unwrap();
                let a1 = a1(
                    "jaasuser",
                    "jaas_password",
                    "OA6MG9tEQGm2hh",
                    "OA6MHXh6VqTrRk",
                    None,
                );
                let want = response_value(
                    &a1,
                    "OA6MG9tEQGm2hh",
                    "00000001",
                    "OA6MHXh6VqTrRk",
                    "auth",
                    "",
                    DIGEST_URI,
                );
                assert_eq!(token, format!("rspauth={want}"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// RFC 2831 section 4's worked example (realm and URI replaced by ours
    /// would change the digest, so the function is checked on the RFC's).
    #[test]
    fn the_digest_matches_rfc_2831s_example() {
        let secret = Md5::digest(b"chris:elwood.innosoft.com:secret");
        let mut a1 = secret.to_vec();
        a1.extend_from_slice(b":OA6MG9tEQGm2hh:OA6MHXh6VqTrRk");
        let response = response_value(
            &a1,
            "OA6MG9tEQGm2hh",
            "00000001",
            "OA6MHXh6VqTrRk",
            "auth",
            "AUTHENTICATE",
            "imap/elwood.innosoft.com",
        );
        assert_eq!(response, "d388dad90d4bbd760a152321f2143af7");
        let rspauth = response_value(
            &a1,
            "OA6MG9tEQGm2hh",
            "00000001",
            "OA6MHXh6VqTrRk",
            "auth",
            "",
            "imap/elwood.innosoft.com",
        );
        assert_eq!(rspauth, "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn wrong_passwords_unknown_users_and_replays_are_refused() {
        let fresh = || {
            let mut server = DigestMd5Server::new("n0nce".into());
            let Step::Continue(c) = server.step(b"", &accounts()) else {
                panic!("no challenge");
            };
            (server, String::from_utf8(c).unwrap())
        };
        let (mut server, challenge) = fresh();
        let bad = client_response(&challenge, "jaasuser", "guess", "c1");
        assert!(
            matches!(server.step(bad.as_bytes(), &accounts()), Step::Failed(why) if why.contains("wrong password"))
        );
        let (mut server, challenge) = fresh();
        let nobody = client_response(&challenge, "nobody", "x", "c1");
        assert!(
            matches!(server.step(nobody.as_bytes(), &accounts()), Step::Failed(why) if why.contains("no account"))
        );
        let (mut server, challenge) = fresh();
        let stale = client_response(&challenge, "jaasuser", "jaas_password", "c1")
            .replace("n0nce", "other");
        assert!(
            matches!(server.step(stale.as_bytes(), &accounts()), Step::Failed(why) if why.contains("nonce"))
        );
        let mut server = DigestMd5Server::new("n".into());
        assert!(matches!(
            server.step(b"initial", &accounts()),
            Step::Failed(_)
        ));
        let (mut server, _) = fresh();
        assert!(matches!(
            server.step(b"username=\"x", &accounts()),
            Step::Failed(_)
        ));
    }
}
