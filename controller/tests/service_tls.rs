//! The gRPC service with TLS in-process on 127.0.0.1:0, certificates made
//! by rcgen at run time: a TLS client that trusts the certificate
//! registers; a plaintext client is told the controller requires TLS; with
//! a client CA (mTLS), a client without a certificate or with one from
//! another CA is refused, and one signed by it registers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Secret;
use common::proto;
use common::proto::swarm_client::SwarmClient;
use common::scenario::Scenario;
use controller::registry::Registry;
use controller::service::{self, SwarmService};
use controller::settings::agents::ServerTlsFiles;
use controller::tls::ServerTls;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const SECRET: &str = "tls-test-cluster-secret";

struct Files {
    _dir: tempfile::TempDir,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_ca: PathBuf,
    /// (cert PEM, key PEM) signed by `client_ca`.
    client: (String, String),
    /// (cert PEM, key PEM) signed by another CA.
    stranger: (String, String),
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn client_of(ca: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .signed_by(&key, &**ca)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let server = rcgen::generate_simple_self_signed(["127.0.0.1".to_owned()]).unwrap();
    let client_ca = ca();
    Files {
        server_cert: write(dir.path(), "server.crt", &server.cert.pem()),
        server_key: write(
            dir.path(),
            "server.key",
            &server.signing_key.serialize_pem(),
        ),
        client_ca: write(dir.path(), "client-ca.crt", &client_ca.pem()),
        client: client_of(&client_ca),
        stranger: client_of(&ca()),
        _dir: dir,
    }
}

/// Serves the swarm with `tls`; returns its address.
async fn serve(tls: ServerTls, token: &CancellationToken) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(16);
    // The events are not looked at here; keep the receiver alive.
    tokio::spawn(async move {
        let _rx = rx;
        std::future::pending::<()>().await
    });
    let svc = SwarmService::new(
        Arc::new(Registry::new(4)),
        tx,
        Scenario::builtin().digest().to_owned(),
        Scenario::builtin().series_keys(),
        TaskTracker::new(),
        token.clone(),
    );
    tokio::spawn(service::serve(
        listener,
        svc,
        Secret::new(SECRET),
        Some(tls.acceptor),
        token.clone(),
    ));
    addr
}

/// A client over TLS that trusts `server_cert`, showing `identity` if given.
async fn tls_client(
    addr: std::net::SocketAddr,
    server_cert: &Path,
    identity: Option<&(String, String)>,
) -> Result<SwarmClient<Channel>, tonic::transport::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server_cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::IpAddress(addr.ip().into());
                connector.connect(name, tcp).await.map(TokioIo::new)
            }
        }))
        .await?;
    Ok(SwarmClient::new(channel))
}

async fn register(client: &mut SwarmClient<Channel>) -> Result<(), tonic::Status> {
    let mut req = tonic::Request::new(proto::RegisterRequest {
        protocol_version: common::PROTOCOL_VERSION,
        agent_name: "tls-test-agent".into(),
        capacity: 0,
        scenario_digest: Scenario::builtin().digest().to_owned(),
        agent_version: "test".into(),
        region: String::new(),
    });
    req.metadata_mut()
        .insert(common::SECRET_METADATA, SECRET.parse().unwrap());
    client.register(req).await.map(|_| ())
}

#[tokio::test]
async fn tls_serves_trusting_clients_and_tells_plaintext_ones_why() {
    let f = files();
    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let tls = ServerTls::load(
        &ServerTlsFiles {
            cert: f.server_cert.clone(),
            key: f.server_key.clone(),
            client_ca: None,
        },
        false,
    )
    .unwrap();
    assert_eq!(
        tls.spawned_agent_args.len(),
        2,
        "spawned agents get --tls-ca"
    );
    let addr = serve(tls, &token).await;

    let mut client = tls_client(addr, &f.server_cert, None).await.unwrap();
    register(&mut client).await.unwrap();

    let mut plain = SwarmClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let refused = register(&mut plain).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("requires TLS") && refused.message().contains("https://"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn mtls_admits_only_clients_signed_by_the_client_ca() {
    let f = files();
    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let tls = ServerTls::load(
        &ServerTlsFiles {
            cert: f.server_cert.clone(),
            key: f.server_key.clone(),
            client_ca: Some(f.client_ca.clone()),
        },
        true,
    )
    .unwrap();
    // Spawned agents get a client certificate, in files only this user reads.
    let args: Vec<String> = tls
        .spawned_agent_args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let (cert, key) = (at("--tls-cert").unwrap(), at("--tls-key").unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let spawned = (
        std::fs::read_to_string(&cert).unwrap(),
        std::fs::read_to_string(&key).unwrap(),
    );
    let addr = serve(tls, &token).await;

    for (who, identity, admitted) in [
        ("a client signed by --tls-client-ca", Some(&f.client), true),
        ("a spawned agent", Some(&spawned), true),
        ("a client without a certificate", None, false),
        ("a client signed by another CA", Some(&f.stranger), false),
    ] {
        // TLS 1.3 refuses a client certificate after the client's side of
        // the handshake: the refusal shows on the first call at the latest.
        let result = match tls_client(addr, &f.server_cert, identity).await {
            Ok(mut client) => register(&mut client).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(result.is_ok(), admitted, "{who}: {result:?}");
    }
}
