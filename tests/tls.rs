//! TLS on `secureClientPort` against a real `corral server`: ZooKeeper's settings
//! (`ssl.keyStore.*`, `ssl.trustStore.*`, `ssl.clientAuth`), PEM stores, and JKS and PKCS12
//! stores made by the JDK's keytool, client certificates that chain to the trust store
//! accepted and the others refused, and the same tree seen on the plain `clientPort`; a
//! client certificate's subject as the `x509` identity, compared with Apache ZooKeeper's.
//!
//! Certificates are made per test with rcgen; the client is rustls. The keytool tests need
//! `keytool` (CI installs a JDK); without it, they say so and return.

mod support;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use support::raw::{op, Acl, Dec, Enc, RawSession};
use support::{free_port, ApacheZk, CorralServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const PASSWORD: &str = "apassword";

/// A certificate and its key, DER.
struct Issued {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pem: String,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    Ca { cert, key }
}

fn issue(ca: &Ca, name: &str) -> Issued {
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .expect("leaf certificate");
    Issued {
        pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn client_config(
    server_ca: &CertificateDer<'static>,
    client: Option<&Issued>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.clone()).expect("trust the server's CA");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert.clone()], c.key.clone_key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A ZooKeeper session over TLS: the frames `support::raw` speaks, on a rustls stream.
struct TlsSession {
    stream: TlsStream<TcpStream>,
    xid: i32,
}

impl TlsSession {
    async fn open(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<TlsSession> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let mut s = TlsSession { stream, xid: 0 };
        let mut connect = Enc::new();
        connect
            .i32(0)
            .i64(0)
            .i32(10_000)
            .i64(0)
            .buf(&[0u8; 16])
            .bool(false);
        s.write_frame(&connect.0).await?;
        let frame = s.read_frame().await?;
        let mut d = Dec::new(&frame);
        let _protocol = d.i32()?;
        let timeout = d.i32()?;
        if timeout <= 0 {
            return Err(io::Error::other("session refused"));
        }
        Ok(s)
    }

    async fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await?;
        self.stream.flush().await
    }

    async fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let len = usize::try_from(i32::from_be_bytes(len)).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await?;
        Ok(buf)
    }

    /// Sends a request; its error code and reply body.
    async fn request(&mut self, opcode: i32, body: &[u8]) -> io::Result<(i32, Vec<u8>)> {
        self.xid += 1;
        let mut frame = Enc::new();
        frame.i32(self.xid).i32(opcode);
        frame.0.extend_from_slice(body);
        self.write_frame(&frame.0).await?;
        let reply = self.read_frame().await?;
        let mut d = Dec::new(&reply);
        let _xid = d.i32()?;
        let _zxid = d.i64()?;
        let err = d.i32()?;
        Ok((err, reply[16..].to_vec()))
    }

    async fn create(&mut self, path: &str, data: &[u8]) -> io::Result<i32> {
        let mut body = Enc::new();
        body.str(path)
            .buf(data)
            .acl(&[Acl::new(31, "world", "anyone")])
            .i32(0);
        Ok(self.request(op::CREATE, &body.0).await?.0)
    }
}

fn get_data(s: &mut RawSession, path: &str) -> (i32, Vec<u8>) {
    let mut body = Enc::new();
    body.str(path).bool(false);
    let reply = s.request(op::GET_DATA, &body.0).expect("getData");
    let data = reply.dec().buf().ok().flatten().unwrap_or_default();
    (reply.err, data)
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Whether a session can be opened (the handshake, then a ConnectRequest answered).
async fn serves(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> bool {
    match TlsSession::open(addr, config).await {
        Ok(mut s) => s.request(op::PING, &[]).await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn pem_stores_serve_trusted_client_certificates_and_refuse_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = ca("corral test CA");
    let server = issue(&authority, "localhost");
    let client = issue(&authority, "client");
    let stranger = issue(&ca("another CA"), "stranger");
    write(&dir.path().join("server.pem"), &server.pem);
    write(&dir.path().join("ca.pem"), authority.cert.pem());
    let port = free_port();
    let corral = CorralServer::start_with(&[
        &format!("secureClientPort={port}"),
        &format!(
            "ssl.keyStore.location={}",
            dir.path().join("server.pem").display()
        ),
        &format!(
            "ssl.trustStore.location={}",
            dir.path().join("ca.pem").display()
        ),
    ]);
    let secure: SocketAddr = ([127, 0, 0, 1], port).into();
    let ca_der = authority.cert.der().clone();

    let mut s = TlsSession::open(secure, client_config(&ca_der, Some(&client)))
        .await
        .unwrap_or_else(|e| panic!("TLS session: {e}\n{}", corral.log()));
    assert_eq!(s.create("/over-tls", b"secret").await.expect("create"), 0);
    // The same tree on the plain port.
    let mut plain = RawSession::connect(corral.addr(), 10_000).expect("plain session");
    assert_eq!(get_data(&mut plain, "/over-tls"), (0, b"secret".to_vec()));

    // ssl.clientAuth defaults to need: no certificate, or one the trust store does not
    // vouch for, gets no session.
    assert!(!serves(secure, client_config(&ca_der, None)).await);
    assert!(!serves(secure, client_config(&ca_der, Some(&stranger))).await);
    // A plain client on the TLS port gets nowhere either.
    assert!(RawSession::connect(secure, 2_000).is_err());
    assert!(
        corral.log().contains("TLS handshake failed"),
        "{}",
        corral.log()
    );
}

fn keytool() -> Option<&'static str> {
    let found = Command::new("keytool")
        .arg("-help")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty() || !o.stdout.is_empty());
    found.then_some("keytool")
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key store of `store_type` (JKS, PKCS12) at `store` holding a new RSA key for
/// CN=localhost, made by keytool as ZooKeeper's documentation makes one.
fn keytool_key_store(keytool: &str, store: &str, store_type: &str) {
    run(
        keytool,
        &[
            "-genkeypair",
            "-keystore",
            store,
            "-storetype",
            store_type,
            "-storepass",
            PASSWORD,
            "-keypass",
            PASSWORD,
            "-alias",
            "server",
            "-dname",
            "CN=localhost",
            "-ext",
            "SAN=dns:localhost,ip:127.0.0.1",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-validity",
            "2",
        ],
    );
}

/// Starts `corral server` on a zoo.cfg with `tls_lines` (and a fresh data dir and ports)
/// and expects it to refuse to start; returns what it printed on stderr.
fn refused_start(dir: &Path, tls_lines: &str) -> String {
    let cfg = dir.join("zoo.cfg");
    write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nsecureClientPort={}\nadmin.enableServer=false\n{tls_lines}",
            dir.join("data").display(),
            free_port(),
            free_port()
        ),
    );
    let bin = std::env::var("CORRAL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_corral").into());
    let out = Command::new(bin)
        .args(["server", &cfg.display().to_string()])
        .output()
        .expect("run corral server");
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn jks_stores_made_by_keytool_serve_tls_clients() {
    keytool_stores_serve_tls_clients("JKS", "jks").await;
}

/// PKCS12 is what keytool writes unless told otherwise (since Java 9). The server finds the
/// format from the contents: no ssl.keyStore.type needed.
#[tokio::test]
async fn pkcs12_stores_made_by_keytool_serve_tls_clients() {
    keytool_stores_serve_tls_clients("PKCS12", "p12").await;
}

/// A key store and a trust store of `store_type`, made by keytool, serve clients whose
/// certificates chain to the trust store (`ssl.clientAuth=want`) and refuse strangers.
async fn keytool_stores_serve_tls_clients(store_type: &str, ext: &str) {
    let Some(keytool) = keytool() else {
        eprintln!("keytool not found: skipping the {store_type} test (CI installs a JDK)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let server_store = path(&format!("server.{ext}"));
    let trust_store = path(&format!("trust.{ext}"));
    keytool_key_store(keytool, &server_store, store_type);
    run(
        keytool,
        &[
            "-exportcert",
            "-keystore",
            &server_store,
            "-storetype",
            store_type,
            "-storepass",
            PASSWORD,
            "-alias",
            "server",
            "-file",
            &path("server.der"),
        ],
    );
    // The clients' CA in a trust store of the same type.
    let authority = ca("corral client CA");
    write(&dir.path().join("ca.pem"), authority.cert.pem());
    run(
        keytool,
        &[
            "-importcert",
            "-noprompt",
            "-keystore",
            &trust_store,
            "-storetype",
            store_type,
            "-storepass",
            PASSWORD,
            "-alias",
            "clients",
            "-file",
            &path("ca.pem"),
        ],
    );
    let client = issue(&authority, "client");
    let port = free_port();
    let corral = CorralServer::start_with(&[
        &format!("secureClientPort={port}"),
        &format!("ssl.keyStore.location={server_store}"),
        &format!("ssl.keyStore.password={PASSWORD}"),
        &format!("ssl.trustStore.location={trust_store}"),
        &format!("ssl.trustStore.password={PASSWORD}"),
        "ssl.clientAuth=want",
    ]);
    let secure: SocketAddr = ([127, 0, 0, 1], port).into();
    let server_cert = CertificateDer::from(
        std::fs::read(dir.path().join("server.der")).expect("read the server certificate"),
    );

    let mut s = TlsSession::open(secure, client_config(&server_cert, Some(&client)))
        .await
        .unwrap_or_else(|e| panic!("TLS session: {e}\n{}", corral.log()));
    assert_eq!(
        s.create(&format!("/{ext}"), b"ok").await.expect("create"),
        0
    );
    // `want`: a client without a certificate is served; a stranger's is still refused.
    assert!(serves(secure, client_config(&server_cert, None)).await);
    let stranger = issue(&ca("another CA"), "stranger");
    assert!(!serves(secure, client_config(&server_cert, Some(&stranger))).await);
}

#[test]
fn a_wrong_store_password_stops_the_server_with_a_clear_error() {
    let Some(keytool) = keytool() else {
        eprintln!("keytool not found: skipping (CI installs a JDK)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("server.jks").display().to_string();
    keytool_key_store(keytool, &store, "JKS");
    let stderr = refused_start(
        dir.path(),
        &format!(
            "ssl.keyStore.location={store}\nssl.keyStore.password=wrong\nssl.clientAuth=none\n"
        ),
    );
    assert!(
        stderr.contains("key store") && stderr.contains("password"),
        "the error names the key store and its password: {stderr}"
    );
}

#[test]
fn a_key_that_is_not_the_certificates_stops_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = ca("corral test CA");
    let server = issue(&authority, "localhost");
    let other = issue(&authority, "other");
    // The server's certificate with another certificate's key.
    let cert_pem = server
        .pem
        .split("-----BEGIN PRIVATE KEY-----")
        .next()
        .unwrap_or_default();
    let key_pem = &other.pem[other.pem.find("-----BEGIN PRIVATE KEY-----").unwrap_or(0)..];
    write(
        &dir.path().join("server.pem"),
        format!("{cert_pem}{key_pem}"),
    );
    let stderr = refused_start(
        dir.path(),
        &format!(
            "ssl.keyStore.location={}\nssl.clientAuth=none\n",
            dir.path().join("server.pem").display()
        ),
    );
    assert!(
        stderr.contains("does not belong"),
        "the error says the key is not the certificate's: {stderr}"
    );
}

/// `whoami` of a TLS session: (scheme, id) pairs, sorted.
async fn who_am_i(s: &mut TlsSession) -> Vec<(String, String)> {
    let (err, body) = s.request(op::WHO_AM_I, &[]).await.expect("whoami");
    assert_eq!(err, 0, "whoami");
    let mut d = Dec::new(&body);
    let n = d.i32().expect("count");
    let mut ids: Vec<(String, String)> = (0..n)
        .map(|_| (d.str().expect("scheme"), d.str().expect("id")))
        .collect();
    ids.sort();
    ids
}

/// A client certificate makes the session `x509:<subject>`, the subject written as Java's
/// `X500Principal.getName()` writes it (RFC 2253: most specific first, `\,` escaped), as
/// ZooKeeper's X509AuthenticationProvider names it; `auth` ACLs take that identity. The
/// same client against Apache ZooKeeper (Netty, PEM stores) must see the same, and both
/// make it super when `X509AuthenticationProvider.superUser` names its subject.
#[tokio::test]
async fn a_client_certificate_is_the_x509_identity_zookeeper_gives_it() {
    if !support::zookeeper_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = ca("corral test CA");
    let server = issue(&authority, "localhost");
    let client = {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "ops");
        params.distinguished_name.push(DnType::CommonName, "app");
        let key = KeyPair::generate().expect("client key");
        let cert = params
            .signed_by(&key, &authority.cert, &authority.key)
            .expect("client certificate");
        Issued {
            pem: String::new(),
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    };
    write(&dir.path().join("server.pem"), &server.pem);
    write(&dir.path().join("ca.pem"), authority.cert.pem());
    // The client is also the x509 super user: ZooKeeper names it `super` only if its
    // subject string is exactly the one configured, which is written here by Corral.
    let subject = corral_server::tls::subject_name(&client.cert).expect("client subject");
    let tls_lines = |port: u16| {
        vec![
            format!("secureClientPort={port}"),
            // zoo.cfg is a Java properties file: a backslash is written twice.
            format!(
                "X509AuthenticationProvider.superUser={}",
                subject.replace('\\', "\\\\")
            ),
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".to_string(),
            format!(
                "ssl.keyStore.location={}",
                dir.path().join("server.pem").display()
            ),
            "ssl.keyStore.type=PEM".to_string(),
            format!(
                "ssl.trustStore.location={}",
                dir.path().join("ca.pem").display()
            ),
            "ssl.trustStore.type=PEM".to_string(),
        ]
    };
    let (zk_port, corral_port) = (free_port(), free_port());
    let zk_lines = tls_lines(zk_port);
    let corral_lines = tls_lines(corral_port);
    let zk = ApacheZk::try_start_with(&zk_lines.iter().map(String::as_str).collect::<Vec<_>>())
        .expect("zookeeper");
    let corral =
        CorralServer::start_with(&corral_lines.iter().map(String::as_str).collect::<Vec<_>>());
    let ca_der = authority.cert.der().clone();
    let mut seen = Vec::new();
    for (port, who, log) in [
        (zk_port, "ZooKeeper", zk.log()),
        (corral_port, "Corral", corral.log()),
    ] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // ZooKeeper's secure port opens a moment after its plain one.
        let mut session = None;
        for _ in 0..50 {
            match TlsSession::open(addr, client_config(&ca_der, Some(&client))).await {
                Ok(s) => {
                    session = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let mut s = session.unwrap_or_else(|| panic!("{who}: no TLS session\n{log}"));
        let ids = who_am_i(&mut s).await;
        let mut body = Enc::new();
        body.str("/mine")
            .buf(b"")
            .acl(&[Acl::new(31, "auth", "")])
            .i32(0);
        let (err, _) = s.request(op::CREATE, &body.0).await.expect("create");
        assert_eq!(err, 0, "{who}: create with an auth ACL");
        let mut body = Enc::new();
        body.str("/mine");
        let (err, reply) = s.request(op::GET_ACL, &body.0).await.expect("getACL");
        assert_eq!(err, 0, "{who}: getACL");
        let acl = Dec::new(&reply).acl().expect("acl");
        seen.push((who, ids, acl));
    }
    let (_, zk_ids, zk_acl) = &seen[0];
    let (_, corral_ids, corral_acl) = &seen[1];
    assert!(
        zk_ids
            .iter()
            .any(|(scheme, id)| scheme == "x509" && id.contains("O=Acme\\, Inc.")),
        "ZooKeeper's identities: {zk_ids:?}"
    );
    assert!(
        zk_ids.contains(&("super".to_string(), String::new())),
        "ZooKeeper makes the configured subject {subject:?} super: {zk_ids:?}"
    );
    assert_eq!(corral_ids, zk_ids, "whoami over TLS");
    assert_eq!(corral_acl, zk_acl, "an auth ACL made over TLS");
}
