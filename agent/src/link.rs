//! The gRPC link to the controller: dial with backoff, `Register`, then one
//! `Attach` stream. Outbound messages go through a bounded channel whose
//! receiver is the request stream; a failed send means the controller is gone.
//! Inbound messages are read on the link runtime, where every arrival is
//! stamped: a controller silent for `CONTROLLER_SILENT_AFTER` (it sends a
//! keepalive every second) is taken for gone, in every phase — the load is
//! stopped through the run's token and every send fails at once.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::Secret;
use common::ids::AgentId;
use common::proto;
use common::proto::swarm_client::SwarmClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::convert;
use crate::messages::{AgentEvent, ControllerEvent};
use crate::tls::{ClientTls, DialError};

/// First retry delay when the controller is not reachable yet; doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Outbound messages buffered before senders wait.
const OUTBOUND_CAPACITY: usize = 256;
/// Heartbeat interval when the controller does not say.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// The controller sends a keepalive every second, whatever the phase;
/// nothing heard for this long, it is taken for gone (stopped, or cut off
/// without the connection closing) and the load stops within 5 s of its
/// last message — as the controller does for a silent agent.
pub const CONTROLLER_SILENT_AFTER: Duration = Duration::from_secs(4);
/// Once the silence deadline passes, how long the stream gets for a last
/// look: a deadline passed while this thread was starved proves nothing.
const LAST_LOOK: Duration = Duration::from_millis(250);
/// Controller messages read but not yet taken by the control loop.
const INBOUND_CAPACITY: usize = 64;

/// What `connect` needs.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub controller: String,
    pub agent_name: String,
    pub capacity: u32,
    /// `--region`; `None` is the default region.
    pub region: Option<common::region::Region>,
    pub connect_timeout: Duration,
    pub secret: Secret,
    pub scenario_digest: String,
    /// Compress outbound messages with gzip (the controller must accept it).
    pub gzip: bool,
    /// TLS towards an `https://` controller.
    pub tls: Option<ClientTls>,
}

/// Sends to the controller; cheap to clone.
#[derive(Clone, Debug)]
pub struct LinkSender {
    tx: mpsc::Sender<proto::AgentMessage>,
    /// Cancelled once the controller broke the stream or went silent: a
    /// send waiting for room then fails instead of waiting forever.
    gone: CancellationToken,
}

/// Why a message did not reach the controller.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the controller is gone (stream closed or broken, or the controller silent)")]
    Closed,
    /// Only a histogram that cannot be encoded gets here: a bug, not the
    /// peer's fault, but the message (a final report, say) is lost and the
    /// caller must know.
    #[error("the message could not be encoded: {0}")]
    Encode(#[from] common::histogram::HistogramError),
}

impl LinkSender {
    pub async fn send(&self, event: AgentEvent) -> Result<(), SendError> {
        let messages = convert::agent_messages(event).inspect_err(|e| {
            tracing::error!(error = %e, "could not encode a message for the controller");
        })?;
        for msg in messages {
            tokio::select! {
                // Once gone, nothing is sent, even where the queue has room.
                biased;
                () = self.gone.cancelled() => return Err(SendError::Closed),
                sent = self.tx.send(msg) => sent.map_err(|_| SendError::Closed)?,
            }
        }
        Ok(())
    }
}

/// Why the controller's stream ended without the controller closing it.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the controller stream broke")]
    Broken(#[source] tonic::Status),
    #[error(
        "the controller went silent: nothing heard for {:.1} s, not even its keepalive (is it stopped, or cut off without the connection closing?); the load was stopped",
        .0.as_secs_f64()
    )]
    Silent(Duration),
}

/// Receives from the controller (what the link runtime's reader hands on).
pub struct LinkReceiver {
    rx: mpsc::Receiver<Result<proto::ControllerMessage, LinkError>>,
}

impl LinkReceiver {
    /// The next event; `Ok(None)` when the controller closed the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<ControllerEvent>> {
        loop {
            let Some(msg) = self.rx.recv().await else {
                return Ok(None);
            };
            if let Some(event) = convert::decode(msg?)? {
                return Ok(Some(event));
            }
        }
    }

    /// Why the link is gone (once `Link::gone` is cancelled): the error the
    /// reader handed on; messages queued before it are dropped.
    pub async fn why_gone(&mut self) -> anyhow::Error {
        loop {
            match self.next().await {
                Ok(Some(_)) => {}
                Ok(None) => return anyhow::anyhow!("the controller stream ended"),
                Err(e) => return e,
            }
        }
    }
}

pub struct Link {
    pub agent_id: AgentId,
    pub heartbeat_interval: Duration,
    pub sender: LinkSender,
    pub receiver: LinkReceiver,
    /// Cancelled once the controller went silent or broke the stream.
    pub gone: CancellationToken,
}

/// Reads the controller's stream: stamps every arrival, drops keepalives
/// and hands the rest on. A controller silent past `silent_after` is taken
/// for gone, as is a broken stream: `stop_load` (the run's token, the one a
/// `Stop` cancels) and `gone` (every send) are cancelled here, on the link
/// runtime, so the load stops even while the control loop's runtime is
/// saturated; the receiver then gets the error.
async fn read_controller(
    mut stream: tonic::Streaming<proto::ControllerMessage>,
    tx: mpsc::Sender<Result<proto::ControllerMessage, LinkError>>,
    silent_after: Duration,
    stop_load: CancellationToken,
    gone: CancellationToken,
) {
    use proto::controller_message::Body;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            biased;
            next = stream.message() => next,
            () = tokio::time::sleep_until(last_heard + silent_after) => {
                match tokio::time::timeout(LAST_LOOK, stream.message()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let silent_for = last_heard.elapsed();
                        tracing::warn!(
                            "the controller has been silent for {:.1} s (not even a keepalive): stopping the load",
                            silent_for.as_secs_f64()
                        );
                        // `gone` first: whoever sees the load stopped sees why.
                        gone.cancel();
                        stop_load.cancel();
                        let _ = tx.send(Err(LinkError::Silent(silent_for))).await;
                        return;
                    }
                }
            }
        };
        match next {
            Ok(Some(msg)) => {
                if !matches!(msg.body, Some(Body::Keepalive(_))) && tx.send(Ok(msg)).await.is_err()
                {
                    return;
                }
                // Stamped after the hand-over: time spent waiting for the
                // control loop to take a message is ours, not silence.
                last_heard = tokio::time::Instant::now();
            }
            Ok(None) => return,
            Err(status) => {
                gone.cancel();
                stop_load.cancel();
                let _ = tx.send(Err(LinkError::Broken(status))).await;
                return;
            }
        }
    }
}

/// Dials (retrying until `connect_timeout`), registers and attaches; from
/// then on a silent controller or a broken stream cancels `stop_load`.
/// Must run on the link runtime: the stream's reader is spawned there.
pub async fn connect(config: &LinkConfig, stop_load: CancellationToken) -> anyhow::Result<Link> {
    let channel = dial(config).await?;
    let secret = MetadataValue::try_from(config.secret.expose())
        .context("the cluster secret is not a valid gRPC metadata value (use printable ASCII)")?;
    let secret_for_calls = secret.clone();
    let mut client = SwarmClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        req.metadata_mut()
            .insert(common::SECRET_METADATA, secret_for_calls.clone());
        Ok(req)
    })
    .max_decoding_message_size(common::limits::MAX_CONTROLLER_MESSAGE_BYTES)
    .max_encoding_message_size(common::limits::MAX_AGENT_MESSAGE_BYTES)
    .accept_compressed(CompressionEncoding::Gzip);
    if config.gzip {
        client = client.send_compressed(CompressionEncoding::Gzip);
    }

    let registered = client
        .register(convert::register_request(
            &config.agent_name,
            config.capacity,
            config.region.as_ref(),
            &config.scenario_digest,
        ))
        .await
        .map_err(|status| refused(config, &status))?
        .into_inner();
    let agent_id = AgentId::new(registered.agent_id);
    let heartbeat_interval = match registered.heartbeat_interval_ms {
        0 => DEFAULT_HEARTBEAT,
        ms => Duration::from_millis(u64::from(ms)),
    };

    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.metadata_mut().insert(
        common::AGENT_METADATA,
        MetadataValue::try_from(agent_id.as_str())
            .context("the controller returned an agent id that is not valid metadata")?,
    );
    let stream = client
        .attach(request)
        .await
        .map_err(|status| refused(config, &status))
        .context("attach")?
        .into_inner();
    let gone = CancellationToken::new();
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
    tokio::spawn(read_controller(
        stream,
        inbound_tx,
        CONTROLLER_SILENT_AFTER,
        stop_load,
        gone.clone(),
    ));
    Ok(Link {
        agent_id,
        heartbeat_interval,
        sender: LinkSender {
            tx,
            gone: gone.clone(),
        },
        receiver: LinkReceiver { rx: inbound_rx },
        gone,
    })
}

fn refused(config: &LinkConfig, status: &tonic::Status) -> anyhow::Error {
    if let Some(tls) = &config.tls
        && let Some(why) = tls.explain_call_failure(&config.controller, status)
    {
        return anyhow::anyhow!("{why}");
    }
    anyhow::anyhow!(
        "the controller refused this agent ({:?}): {}",
        status.code(),
        status.message()
    )
}

async fn dial(config: &LinkConfig) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(config.controller.clone())
        .with_context(|| format!("invalid controller URL {:?}", config.controller))?
        .connect_timeout(config.connect_timeout.min(Duration::from_secs(5)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    let deadline = Instant::now() + config.connect_timeout;
    let mut backoff = MIN_BACKOFF;
    loop {
        let connected = match &config.tls {
            Some(tls) => endpoint.connect_with_connector(tls.connector()).await,
            None => endpoint.connect().await,
        };
        let e = match connected {
            Ok(channel) => return Ok(channel),
            Err(e) => e,
        };
        // A failed handshake fails the same way every time: say why now.
        if let Some(why) = handshake_failure(&e) {
            anyhow::bail!("{why}");
        }
        // So does a client certificate the controller refused (or missed).
        if let Some(tls) = &config.tls
            && let Some(why) = tls.explain_call_failure(&config.controller, &e)
        {
            anyhow::bail!("{why}");
        }
        if Instant::now() + backoff >= deadline {
            return Err(anyhow::Error::new(e)).with_context(|| {
                format!(
                    "could not reach the controller at {} within {:?}",
                    config.controller, config.connect_timeout
                )
            });
        }
        tracing::debug!(error = %e, controller = %config.controller, "controller not reachable yet; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The explanation of a failed TLS handshake inside a tonic connect error.
fn handshake_failure(error: &tonic::transport::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(DialError::Handshake(why)) = e.downcast_ref::<DialError>() {
            return Some(why.clone());
        }
        next = e.source();
    }
    None
}
