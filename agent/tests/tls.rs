//! The agent's TLS link against a small TLS controller in the test
//! (rustls, certificates made by rcgen at run time): it registers when it
//! trusts the certificate, and each way TLS fails is refused with an error
//! that says which — a CA that did not sign the controller's certificate, a
//! missing client certificate under mTLS, `https://` against a plaintext
//! controller, and flags that do not fit the URL.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agent::link::{self, LinkConfig};
use agent::tls::{ClientTls, TlsFiles};
use common::Secret;
use common::proto;
use common::proto::swarm_server::{Swarm, SwarmServer};
use common::scenario::Scenario;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Response, Status, Streaming};

/// Accepts every agent; `Attach` streams nothing.
struct Controller;

#[tonic::async_trait]
impl Swarm for Controller {
    async fn register(
        &self,
        _req: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        Ok(Response::new(proto::RegisterResponse {
            agent_id: "agent-1".into(),
            heartbeat_interval_ms: 1000,
        }))
    }

    type AttachStream = ReceiverStream<Result<proto::ControllerMessage, Status>>;

    async fn attach(
        &self,
        _req: Request<Streaming<proto::AgentMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        // Keep the stream open for the test's lifetime.
        std::mem::forget(tx);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Tls(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl Connected for Tls {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

struct Pki {
    dir: tempfile::TempDir,
    server: rcgen::CertifiedKey<KeyPair>,
    client_ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Pki {
            dir: tempfile::tempdir().unwrap(),
            server: rcgen::generate_simple_self_signed(["127.0.0.1".to_owned()]).unwrap(),
            client_ca: CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn server_cert(&self) -> PathBuf {
        self.write("server.crt", &self.server.cert.pem())
    }

    /// A client certificate and key signed by the client CA, as files.
    fn client_files(&self) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .signed_by(&key, &*self.client_ca)
            .unwrap();
        (
            self.write("client.crt", &cert.pem()),
            self.write("client.key", &key.serialize_pem()),
        )
    }

    fn server_config(&self, mtls: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mtls {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.client_ca.der().clone()).unwrap();
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(
                vec![self.server.cert.der().clone()],
                PrivateKeyDer::from_pem_slice(self.server.signing_key.serialize_pem().as_bytes())
                    .unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }
}

/// Serves `Controller` on 127.0.0.1:0, over TLS with `tls`, else plaintext.
async fn controller(tls: Option<rustls::ServerConfig>, stop: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder().add_service(SwarmServer::new(Controller));
    let stop = stop.clone();
    match tls {
        None => {
            tokio::spawn(server.serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            ));
            format!("http://{addr}")
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            // Failed handshakes are dropped, as a real controller does.
            let incoming = TcpListenerStream::new(listener)
                .filter_map(|tcp| tcp.ok())
                .then(move |tcp| {
                    let acceptor = acceptor.clone();
                    async move { acceptor.accept(tcp).await.map(Tls) }
                })
                .filter(|r| r.is_ok());
            tokio::spawn(server.serve_with_incoming_shutdown(incoming, stop.cancelled_owned()));
            format!("https://{addr}")
        }
    }
}

fn link_config(controller: &str, files: TlsFiles) -> Result<LinkConfig, String> {
    let tls = ClientTls::for_controller(controller, &files, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    Ok(LinkConfig {
        controller: controller.to_owned(),
        agent_name: "tls-test-agent".into(),
        capacity: 0,
        region: None,
        connect_timeout: Duration::from_secs(5),
        secret: Secret::new("s"),
        scenario_digest: Scenario::builtin().digest().to_owned(),
        gzip: false,
        tls,
    })
}

/// `Ok` when the agent registered and attached; else its error, all causes.
async fn connect(controller: &str, files: TlsFiles) -> Result<(), String> {
    let config = link_config(controller, files)?;
    let attempt = tokio::time::timeout(
        Duration::from_secs(20),
        link::connect(&config, CancellationToken::new()),
    )
    .await
    .expect("connect ends in time");
    attempt.map(|_| ()).map_err(|e| format!("{e:#}"))
}

fn trust(ca: &Path) -> TlsFiles {
    TlsFiles {
        ca: Some(ca.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn registers_over_tls_when_it_trusts_the_certificate() {
    let pki = Pki::new();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let url = controller(Some(pki.server_config(false)), &stop).await;
    connect(&url, trust(&pki.server_cert())).await.unwrap();

    // A CA that did not sign the controller's certificate.
    let other = rcgen::generate_simple_self_signed(["127.0.0.1".to_owned()]).unwrap();
    let wrong = pki.write("other.crt", &other.cert.pem());
    let e = connect(&url, trust(&wrong)).await.unwrap_err();
    assert!(e.contains("not trusted") && e.contains("--tls-ca"), "{e}");
}

#[tokio::test]
async fn mtls_needs_a_client_certificate_and_says_so() {
    let pki = Pki::new();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let url = controller(Some(pki.server_config(true)), &stop).await;
    let e = connect(&url, trust(&pki.server_cert())).await.unwrap_err();
    assert!(
        e.contains("requires a client certificate") && e.contains("--tls-cert"),
        "{e}"
    );
    let (cert, key) = pki.client_files();
    let files = TlsFiles {
        cert: Some(cert),
        key: Some(key),
        ..trust(&pki.server_cert())
    };
    connect(&url, files).await.unwrap();
}

#[tokio::test]
async fn https_to_a_plaintext_controller_says_so() {
    let pki = Pki::new();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let url = controller(None, &stop).await.replace("http://", "https://");
    let e = connect(&url, trust(&pki.server_cert())).await.unwrap_err();
    assert!(
        e.contains("does not speak TLS") || e.contains("dial http://"),
        "{e}"
    );
}

#[test]
fn flags_that_do_not_fit_the_url_are_refused_before_dialing() {
    let pki = Pki::new();
    let check = |url: &str, files: TlsFiles, needle: &str| {
        let e = link_config(url, files).unwrap_err();
        assert!(e.contains(needle), "{url}: {e}");
    };
    check("https://127.0.0.1:1", TlsFiles::default(), "--tls-ca");
    check("http://127.0.0.1:1", trust(&pki.server_cert()), "https://");
    let missing = pki.dir.path().join("missing.crt");
    check("https://127.0.0.1:1", trust(&missing), "missing.crt");
    let not_pem = pki.write("not.pem", "hello");
    check("https://127.0.0.1:1", trust(&not_pem), "no PEM certificate");
    let (cert, _) = pki.client_files();
    let half = TlsFiles {
        cert: Some(cert),
        ..trust(&pki.server_cert())
    };
    check("https://127.0.0.1:1", half, "--tls-key");
}
