//! TLS for the gRPC listener (rustls, aws-lc): loads `--tls-cert`/`--tls-key`
//! and, for mTLS, the `--tls-client-ca` roots; accepts connections (each
//! handshake off the accept loop, bounded in number and time) and sends a
//! plaintext one to a server that refuses every call with the reason; and
//! gives spawned agents the trust they need: this certificate as their
//! `--tls-ca` and, for mTLS, a client certificate from an ephemeral CA of
//! this run, written to 0600 files in a private temporary directory.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context as _;
use common::proto;
use common::proto::swarm_server::Swarm;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Response, Status, Streaming};

use crate::settings::agents::ServerTlsFiles;

/// Longest a connection may take to send its first byte and finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the listen queue.
const MAX_HANDSHAKES: usize = 64;
/// Accepted connections waiting for the gRPC server to take them.
const ACCEPTED_QUEUE: usize = 64;
/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The listener's TLS, ready to accept, plus what spawned agents are given.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    /// Agent arguments for spawned agents (`--tls-ca` …): paths only, no secret.
    pub spawned_agent_args: Vec<OsString>,
    /// Holds the spawned agents' client certificate and key; removed on drop.
    _spawned_identity: Option<tempfile::TempDir>,
}

fn load_certs(flag: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "{flag} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

fn load_key(flag: &str, path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })
}

impl ServerTls {
    /// Loads the files (errors name the flag and the file) and, when
    /// `spawning` under mTLS, issues the spawned agents' client certificate.
    pub fn load(files: &ServerTlsFiles, spawning: bool) -> anyhow::Result<ServerTls> {
        let chain = load_certs("--tls-cert", &files.cert)?;
        let key = load_key("--tls-key", &files.key)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let mut spawned_agent_args: Vec<OsString> =
            vec!["--tls-ca".into(), files.cert.clone().into()];
        let mut spawned_identity = None;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in load_certs("--tls-client-ca", client_ca)? {
                    roots.add(cert).with_context(|| {
                        format!(
                            "--tls-client-ca {}: not a usable CA certificate",
                            client_ca.display()
                        )
                    })?;
                }
                if spawning {
                    let identity = SpawnedIdentity::issue()?;
                    roots
                        .add(identity.ca.clone())
                        .context("the spawned agents' ephemeral CA")?;
                    spawned_agent_args.extend([
                        "--tls-cert".into(),
                        identity.cert_path.clone().into(),
                        "--tls-key".into(),
                        identity.key_path.clone().into(),
                    ]);
                    spawned_identity = Some(identity.dir);
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .context("--tls-client-ca: cannot build the client certificate check")?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).with_context(|| {
            format!(
                "--tls-key {} does not fit --tls-cert {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            spawned_agent_args,
            _spawned_identity: spawned_identity,
        })
    }
}

/// A client certificate for this run's spawned agents, signed by a CA whose
/// key lives only in this process for as long as it takes to sign.
struct SpawnedIdentity {
    ca: CertificateDer<'static>,
    dir: tempfile::TempDir,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl SpawnedIdentity {
    fn issue() -> anyhow::Result<SpawnedIdentity> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let issue = || -> Result<_, rcgen::Error> {
            let mut ca = CertificateParams::new(Vec::<String>::new())?;
            ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            ca.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            ca.distinguished_name
                .push(DnType::CommonName, "mcp-swarm ephemeral agent CA");
            let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
            let mut leaf = CertificateParams::new(Vec::<String>::new())?;
            leaf.distinguished_name
                .push(DnType::CommonName, "mcp-swarm spawned agent");
            leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate()?;
            let cert = leaf.signed_by(&key, &*ca)?;
            Ok((ca.der().clone(), cert.pem(), key.serialize_pem()))
        };
        let (ca, cert_pem, key_pem) =
            issue().context("issuing the spawned agents' client certificate")?;
        let dir = tempfile::Builder::new()
            .prefix("mcp-swarm-agent-tls-")
            .tempdir()
            .context("a temporary directory for the spawned agents' client certificate")?;
        let cert_path = dir.path().join("agent.crt");
        let key_path = dir.path().join("agent.key");
        write_private(&cert_path, cert_pem.as_bytes())?;
        write_private(&key_path, key_pem.as_bytes())?;
        Ok(SpawnedIdentity {
            ca,
            dir,
            cert_path,
            key_path,
        })
    }
}

/// Writes a new file readable by this user only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// A TLS connection the gRPC server can serve.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Connections sorted by what they speak.
pub struct Incoming {
    pub tls: ReceiverStream<io::Result<TlsConn>>,
    pub plaintext: ReceiverStream<io::Result<TcpStream>>,
}

/// Accepts on `listener` until `shutdown`: the returned future is the
/// accept loop (run it beside the servers); `Incoming` feeds them.
pub fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) -> (impl Future<Output = ()> + Send, Incoming) {
    let (tls_tx, tls_rx) = mpsc::channel(ACCEPTED_QUEUE);
    let (plain_tx, plain_rx) = mpsc::channel(ACCEPTED_QUEUE);
    let accept_loop = async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let tasks = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting an agent connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = handshakes.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (acceptor, tls_tx, plain_tx) = (acceptor.clone(), tls_tx.clone(), plain_tx.clone());
            tasks.spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, sort(tcp, peer, &acceptor)).await {
                    Ok(Some(Sorted::Tls(conn))) => {
                        let _ = tls_tx.send(Ok(TlsConn(*conn))).await;
                    }
                    Ok(Some(Sorted::Plaintext(tcp))) => {
                        let _ = plain_tx.send(Ok(tcp)).await;
                    }
                    Ok(None) => {}
                    Err(_) => tracing::warn!(%peer, "TLS connection refused: no handshake within {HANDSHAKE_TIMEOUT:?}"),
                }
            });
        }
        tasks.close();
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, tasks.wait()).await;
    };
    let incoming = Incoming {
        tls: ReceiverStream::new(tls_rx),
        plaintext: ReceiverStream::new(plain_rx),
    };
    (accept_loop, incoming)
}

enum Sorted {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plaintext(TcpStream),
}

/// Peeks at the first byte: a TLS client starts with a handshake record,
/// a plaintext gRPC client with the HTTP/2 preface.
async fn sort(tcp: TcpStream, peer: SocketAddr, acceptor: &TlsAcceptor) -> Option<Sorted> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        tracing::warn!(
            %peer,
            "plaintext connection refused: this controller requires TLS; the agent must dial https:// and trust this controller's certificate (--tls-ca)"
        );
        return Some(Sorted::Plaintext(tcp));
    }
    match acceptor.accept(tcp).await {
        Ok(conn) => Some(Sorted::Tls(Box::new(conn))),
        Err(e) => {
            tracing::warn!(%peer, "TLS connection refused: {}", explain(&e));
            None
        }
    }
}

/// What a failed server-side handshake means, in the words of the flags.
fn explain(e: &io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("the handshake failed: {e}");
    };
    use rustls::AlertDescription as Alert;
    match tls {
        rustls::Error::NoCertificatesPresented => {
            "the agent presented no client certificate; --tls-client-ca requires one (agent flags --tls-cert and --tls-key)".into()
        }
        rustls::Error::InvalidCertificate(why) => format!(
            "the agent's client certificate is not accepted ({why:?}): it must be signed by --tls-client-ca"
        ),
        rustls::Error::AlertReceived(
            alert @ (Alert::UnknownCA | Alert::BadCertificate | Alert::CertificateUnknown),
        ) => format!(
            "the agent does not trust this controller's certificate (alert {alert:?}): give it the CA that signed --tls-cert as --tls-ca"
        ),
        other => format!("the handshake failed: {other}"),
    }
}

/// Answers every call of a plaintext connection to a TLS controller, so the
/// agent learns why instead of seeing a broken connection.
pub struct PlaintextRefusal;

fn requires_tls() -> Status {
    Status::failed_precondition(
        "this controller requires TLS: dial https:// instead of http:// and trust the controller's certificate with --tls-ca",
    )
}

#[tonic::async_trait]
impl Swarm for PlaintextRefusal {
    async fn register(
        &self,
        _request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        Err(requires_tls())
    }

    type AttachStream = ReceiverStream<Result<proto::ControllerMessage, Status>>;

    async fn attach(
        &self,
        _request: Request<Streaming<proto::AgentMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        Err(requires_tls())
    }
}
