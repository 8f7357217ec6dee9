//! TLS for the link to the controller (rustls, aws-lc): what this agent
//! trusts (`--tls-ca`), the client certificate it shows for mTLS
//! (`--tls-cert`/`--tls-key`), the connector tonic dials through, and the
//! words for each way a TLS link fails, so an operator reads *which* thing to
//! fix (plaintext against TLS, a CA that did not sign the controller's
//! certificate, a missing or refused client certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The TLS flags of `agent`, as given.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// PEM certificates this agent trusts for the controller: CA
    /// certificates, or the controller's own certificate (trusted as itself).
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) for mTLS.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name to check the controller's certificate against instead of the
    /// host of `--controller` (for a controller dialed by IP).
    pub server_name: Option<String>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none() && self.server_name.is_none()
    }
}

/// A TLS setting that cannot work, found before dialing.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {}: {what}", path.display())]
    Invalid {
        flag: &'static str,
        path: PathBuf,
        what: String,
    },
    #[error(
        "--controller {0} is https:// but no --tls-ca is given: pass the PEM file of the CA that signed the controller's certificate (or the certificate itself; a system bundle such as /etc/ssl/certs/ca-certificates.crt works for public CAs)"
    )]
    NoTrust(String),
    #[error("{0} is set but --controller {1} is not https://: dial https://HOST:PORT to use TLS")]
    NotHttps(&'static str, String),
    #[error("{0} needs {1} too (a client certificate and its private key go together)")]
    Half(&'static str, &'static str),
    #[error("the TLS settings are unusable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why dialing the controller over TLS failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Not reachable (yet): worth retrying.
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The TLS handshake failed: retrying will not help; the message says why.
    #[error("{0}")]
    Handshake(String),
}

/// The agent's TLS client: cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    ca: PathBuf,
    server_name: Option<ServerName<'static>>,
    has_client_cert: bool,
    /// Set when a controller asked for a client certificate this agent does not have.
    asked_for_cert: Arc<AtomicBool>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca)
            .field("has_client_cert", &self.has_client_cert)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// Every PEM certificate in the file at `path` (at least one).
pub fn load_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Invalid {
            flag,
            path: path.to_owned(),
            what: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Invalid {
            flag,
            path: path.to_owned(),
            what: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

/// The PEM private key (PKCS#8, PKCS#1 or SEC1) in the file at `path`.
pub fn load_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsConfigError::Invalid {
        flag,
        path: path.to_owned(),
        what: format!("holds no usable PEM private key: {e}"),
    })
}

impl ClientTls {
    /// The TLS client for `controller`, or `None` for a plaintext
    /// `http://` controller with no TLS flag. Checks that the flags fit the
    /// URL and reads every file now, so a typo fails before any dialing.
    pub fn for_controller(
        controller: &str,
        files: &TlsFiles,
        connect_timeout: Duration,
    ) -> Result<Option<ClientTls>, TlsConfigError> {
        let https = controller.starts_with("https://");
        if !https {
            let set = [
                (files.ca.is_some(), "--tls-ca"),
                (files.cert.is_some(), "--tls-cert"),
                (files.key.is_some(), "--tls-key"),
                (files.server_name.is_some(), "--tls-server-name"),
            ];
            return match set.iter().find(|(on, _)| *on) {
                Some((_, flag)) => Err(TlsConfigError::NotHttps(flag, controller.to_owned())),
                None => Ok(None),
            };
        }
        let ca = files
            .ca
            .clone()
            .ok_or_else(|| TlsConfigError::NoTrust(controller.to_owned()))?;
        let trusted = load_certs("--tls-ca", &ca)?;
        let provider = provider();
        let verifier = Arc::new(TrustedCerts::new(trusted, provider.clone())?);
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let asked_for_cert = Arc::new(AtomicBool::new(false));
        let mut config = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs("--tls-cert", cert)?, load_key("--tls-key", key)?)
                .map_err(|e| TlsConfigError::Invalid {
                    flag: "--tls-key",
                    path: key.clone(),
                    what: format!("does not fit --tls-cert {}: {e}", cert.display()),
                })?,
            (Some(_), None) => return Err(TlsConfigError::Half("--tls-cert", "--tls-key")),
            (None, Some(_)) => return Err(TlsConfigError::Half("--tls-key", "--tls-cert")),
            (None, None) => builder.with_client_cert_resolver(Arc::new(NoClientCert {
                asked: asked_for_cert.clone(),
            })),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = files
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_owned()).map_err(|e| TlsConfigError::Invalid {
                    flag: "--tls-server-name",
                    path: PathBuf::from(n),
                    what: format!("not a DNS name or IP address: {e}"),
                })
            })
            .transpose()?;
        Ok(Some(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            ca,
            server_name,
            has_client_cert: files.cert.is_some(),
            asked_for_cert,
            connect_timeout,
        }))
    }

    /// A tower service tonic's `connect_with_connector` dials through.
    pub fn connector(
        &self,
    ) -> impl tower::Service<
        http::Uri,
        Response = TokioIo<TlsStream<TcpStream>>,
        Error = DialError,
        Future = impl Future<Output = Result<TokioIo<TlsStream<TcpStream>>, DialError>> + Send,
    > + Clone
    + Send
    + 'static {
        let tls = self.clone();
        tower::service_fn(move |uri: http::Uri| {
            let tls = tls.clone();
            async move { tls.dial(&uri).await.map(TokioIo::new) }
        })
    }

    async fn dial(&self, uri: &http::Uri) -> Result<TlsStream<TcpStream>, DialError> {
        let host = uri.host().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let addr = format!("{host}:{port}");
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((host.as_str(), port)),
        )
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        .map_err(|source| DialError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => ServerName::try_from(host.clone()).map_err(|e| {
                DialError::Handshake(format!(
                    "{host} is not a name a certificate can be checked against ({e}): pass --tls-server-name"
                ))
            })?,
        };
        let handshake = self.connector.connect(name.clone(), tcp);
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(DialError::Handshake(
                self.explain_handshake(&addr, &name, &e),
            )),
            Err(_) => Err(DialError::Handshake(format!(
                "the TLS handshake with the controller at {addr} did not finish within {:?}: is it a TLS controller (--tls-cert)?",
                self.connect_timeout
            ))),
        }
    }

    fn explain_handshake(&self, addr: &str, name: &ServerName<'_>, e: &std::io::Error) -> String {
        let ca = self.ca.display();
        let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset
            {
                format!(
                    "the controller at {addr} closed the connection during the TLS handshake ({e}): if it runs without --tls-cert, dial http:// instead of https://"
                )
            } else {
                format!("TLS handshake with the controller at {addr} failed: {e}")
            };
        };
        match tls {
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            }) => format!(
                "the controller's certificate at {addr} is not valid for {}: dial the name it was issued for, or pass --tls-server-name",
                name.to_str()
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => format!("the controller's certificate at {addr} has expired"),
            rustls::Error::InvalidCertificate(why) => format!(
                "the controller's certificate at {addr} is not trusted: it is not signed by (nor is it) a certificate in --tls-ca {ca} ({why:?}); pass the CA that signed the controller's --tls-cert"
            ),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                format!(
                    "the controller at {addr} does not speak TLS ({tls}): dial http:// instead, or start the controller with --tls-cert and --tls-key"
                )
            }
            rustls::Error::AlertReceived(alert) => self.explain_alert(addr, *alert),
            other => format!("TLS handshake with the controller at {addr} failed: {other}"),
        }
    }

    fn explain_alert(&self, addr: &str, alert: AlertDescription) -> String {
        match alert {
            AlertDescription::CertificateRequired => self.missing_client_cert(addr),
            AlertDescription::HandshakeFailure if !self.has_client_cert && self.asked() => {
                self.missing_client_cert(addr)
            }
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
                if self.has_client_cert =>
            {
                format!(
                    "the controller at {addr} refused this agent's client certificate (alert {alert:?}): --tls-cert must be signed by the controller's --tls-client-ca"
                )
            }
            other => format!("the controller at {addr} ended the TLS handshake (alert {other:?})"),
        }
    }

    fn missing_client_cert(&self, addr: &str) -> String {
        format!(
            "the controller at {addr} requires a client certificate (mTLS, its --tls-client-ca) and this agent has none: pass --tls-cert and --tls-key signed by that CA"
        )
    }

    fn asked(&self) -> bool {
        self.asked_for_cert.load(Ordering::Relaxed)
    }

    /// Explains a failure that came after the handshake looked complete: in
    /// TLS 1.3 a controller refuses a client certificate (or its absence)
    /// only once the client has finished, so it surfaces on the first call.
    pub fn explain_call_failure(
        &self,
        addr: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> Option<String> {
        if let Some(alert) = find_alert(error) {
            return Some(self.explain_alert(addr, alert));
        }
        if !self.has_client_cert && self.asked() {
            return Some(self.missing_client_cert(addr));
        }
        None
    }
}

/// The TLS alert a peer sent, wherever it sits in `error`'s chain (an
/// `io::Error` hides its inner error from `source()`: look inside).
fn find_alert(error: &(dyn std::error::Error + 'static)) -> Option<AlertDescription> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::AlertReceived(alert)) = e.downcast_ref::<rustls::Error>() {
            return Some(*alert);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(rustls::Error::AlertReceived(alert)) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(*alert);
        }
        next = e.source();
    }
    None
}

/// Used when this agent has no client certificate: records that the
/// controller asked for one, so the failure can say so.
#[derive(Debug)]
struct NoClientCert {
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// Trusts a controller certificate that is itself in `--tls-ca` (a
/// self-signed certificate, or what a controller hands its own spawned
/// agents), and otherwise one that chains to a CA in it with the usual
/// WebPKI checks (validity, name). The handshake signature is checked
/// either way, so only the holder of the key passes.
#[derive(Debug)]
struct TrustedCerts {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl TrustedCerts {
    fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<TrustedCerts, TlsConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
        let webpki = if added > 0 {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?,
            )
        } else {
            None
        };
        Ok(TrustedCerts {
            pinned: certs,
            webpki,
            provider,
        })
    }
}

impl ServerCertVerifier for TrustedCerts {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
