//! The tonic `Swarm` server agents dial: checks the cluster secret on every
//! call, refuses protocol or scenario mismatches at `Register`, and turns
//! each `Attach` stream into `AgentEvent`s for the run (and `ToAgent`
//! commands back into the stream). With `convert`, the only proto user.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::Secret;
use common::ids::AgentId;
use common::proto;
use common::proto::swarm_server::{Swarm, SwarmServer};
use common::series::{SeriesKey, WireError};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::messages::{AgentEvent, FromAgent, ToAgent};
use crate::registry::{Registry, RegistryError};
use crate::tls;

/// How often agents must send a heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the controller sends each attached agent a `Keepalive`, in
/// every phase: agents take the controller for gone after a few silent
/// seconds (`agent::link::CONTROLLER_SILENT_AFTER`) and stop their load.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// While the decoder is behind and the reader waits for room, the agent
/// is stamped as heard this often: its messages are there, unread by us.
const BACKLOG_TOUCH: Duration = Duration::from_millis(500);
/// Depth of each agent's outbound queue.
const OUTBOUND_QUEUE: usize = 64;
/// Received messages waiting to be decoded, per agent.
const DECODE_QUEUE: usize = 256;

/// Everything `Register` and `Attach` need.
pub struct SwarmService {
    registry: Arc<Registry>,
    events: mpsc::Sender<AgentEvent>,
    scenario_digest: String,
    /// The series the run's scenario can produce; others are refused.
    known_series: Arc<BTreeSet<SeriesKey>>,
    refusals: Arc<Refusals>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl SwarmService {
    pub fn new(
        registry: Arc<Registry>,
        events: mpsc::Sender<AgentEvent>,
        scenario_digest: String,
        known_series: BTreeSet<SeriesKey>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> SwarmService {
        SwarmService {
            registry,
            events,
            scenario_digest,
            known_series: Arc::new(known_series),
            refusals: Arc::default(),
            tasks,
            shutdown,
        }
    }
}

/// What was refused from agents, by reason, over the run: every refusal is
/// counted here and logged with the running count.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Whole messages past a bound of `common::limits`.
    pub out_of_bounds: AtomicU64,
    /// Whole messages with an undecodable histogram.
    pub bad_histograms: AtomicU64,
    /// Series whose key the run's scenario cannot produce.
    pub unknown_series: AtomicU64,
}

impl Refusals {
    /// Counts `n` under `counter`; returns the new total.
    fn count(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::Relaxed) + n
    }

    /// Counts and logs a message refused whole.
    fn message(&self, agent: &AgentId, error: &WireError) {
        let (counter, what) = match error {
            WireError::Bound(_) => (&self.out_of_bounds, "out of bounds"),
            WireError::Histogram(_) => (&self.bad_histograms, "undecodable histogram"),
        };
        let total = Self::count(counter, 1);
        tracing::warn!(agent = %agent, error = %error, refused_so_far = total, "message from agent refused ({what}); dropped");
    }

    /// Drops and counts the series of `message` the scenario cannot produce.
    fn unknown_series(
        &self,
        agent: &AgentId,
        message: &mut FromAgent,
        known: &BTreeSet<SeriesKey>,
    ) {
        let series = match message {
            FromAgent::Interval(i) => &mut i.series,
            FromAgent::Final(f) => &mut f.series,
            _ => return,
        };
        let dropped = series.retain_known(|key| known.contains(key));
        if dropped > 0 {
            let total = Self::count(&self.unknown_series, dropped as u64);
            tracing::warn!(agent = %agent, dropped, refused_so_far = total, "series from agent refused: no step of the run's scenario has their workflow, step or tool name");
        }
    }
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Status {
        match e {
            RegistryError::Full(_) => Status::resource_exhausted(e.to_string()),
            RegistryError::Unknown(_) => Status::not_found(e.to_string()),
            RegistryError::NotAttachable(_) => Status::failed_precondition(e.to_string()),
        }
    }
}

#[tonic::async_trait]
impl Swarm for SwarmService {
    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        let req = request.into_inner();
        if req.protocol_version != common::PROTOCOL_VERSION {
            tracing::warn!(agent = %req.agent_name, theirs = req.protocol_version, "agent refused: protocol version");
            return Err(Status::failed_precondition(format!(
                "protocol version mismatch: agent speaks {}, controller speaks {}; build agent and controller from the same commit",
                req.protocol_version,
                common::PROTOCOL_VERSION
            )));
        }
        if req.scenario_digest != self.scenario_digest {
            tracing::warn!(agent = %req.agent_name, "agent refused: scenario digest");
            return Err(Status::failed_precondition(format!(
                "built-in scenario mismatch: agent has {}, controller has {}; build agent and controller from the same commit",
                short(&req.scenario_digest),
                short(&self.scenario_digest)
            )));
        }
        let region = common::region::Region::from_wire(&req.region).map_err(|e| {
            tracing::warn!(agent = %req.agent_name, error = %e, "agent refused: region");
            Status::invalid_argument(format!("agent --region: {e}"))
        })?;
        let id = self
            .registry
            .register(&req.agent_name, region.clone())
            .inspect_err(|e| {
                tracing::warn!(agent = %req.agent_name, error = %e, "agent refused");
            })?;
        tracing::info!(agent = %req.agent_name, id = %id, %region, version = %req.agent_version, "agent registered");
        Ok(Response::new(proto::RegisterResponse {
            agent_id: id.to_string(),
            heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
        }))
    }

    type AttachStream = ReceiverStream<Result<proto::ControllerMessage, Status>>;

    async fn attach(
        &self,
        request: Request<Streaming<proto::AgentMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let id = request
            .metadata()
            .get(common::AGENT_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(AgentId::from)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "Attach needs the agent id in {}",
                    common::AGENT_METADATA
                ))
            })?;
        let name = self.registry.attach(&id)?;
        let mut inbound = request.into_inner();

        let (proto_tx, proto_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (domain_tx, mut domain_rx) = mpsc::channel::<ToAgent>(OUTBOUND_QUEUE);
        self.events
            .send(AgentEvent::Attached {
                agent: id.clone(),
                name,
                outbound: domain_tx,
            })
            .await
            .map_err(|_| Status::unavailable("the run is over"))?;

        // Outbound: domain commands → proto messages, until the run drops
        // its sender (then the stream ends) or the agent is gone; and a
        // keepalive every second from this runtime, not the run loop's, so
        // a busy run loop never looks like a silent controller.
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut keepalive = tokio::time::interval_at(
                tokio::time::Instant::now() + KEEPALIVE_INTERVAL,
                KEEPALIVE_INTERVAL,
            );
            keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let msg = tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = keepalive.tick() => {
                        // A full queue already holds messages the agent will
                        // hear from us; a keepalive would add nothing.
                        match proto_tx.try_send(Ok(convert::keepalive())) {
                            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => continue,
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    msg = domain_rx.recv() => match msg {
                        Some(m) => m,
                        None => break,
                    },
                };
                for m in convert::to_proto(&msg) {
                    if proto_tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                }
            }
        });

        // Inbound: a reader stamps arrival (liveness) and queues the raw
        // message; a decoder turns it into an event for the run. Decoding
        // histograms is CPU-heavy: kept off the reader, it cannot stall the
        // stream and make a busy agent look lost.
        let (raw_tx, mut raw_rx) = mpsc::channel::<proto::AgentMessage>(DECODE_QUEUE);
        let registry = self.registry.clone();
        let shutdown = self.shutdown.clone();
        let reader_id = id.clone();
        let reader = self.tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => break Some("controller shutting down".to_owned()),
                    next = inbound.message() => next,
                };
                match next {
                    Ok(Some(msg)) => {
                        registry.touch(&reader_id);
                        if !queue_for_decoding(&raw_tx, msg, &registry, &reader_id).await {
                            break None;
                        }
                    }
                    Ok(None) => break None,
                    Err(status) => break Some(format!("stream error: {}", status.message())),
                }
            }
        });
        let events = self.events.clone();
        let registry = self.registry.clone();
        let (refusals, known) = (self.refusals.clone(), self.known_series.clone());
        self.tasks.spawn(async move {
            while let Some(msg) = raw_rx.recv().await {
                match convert::from_proto(msg) {
                    Ok(Some(mut message)) => {
                        refusals.unknown_series(&id, &mut message, &known);
                        let event = AgentEvent::Message {
                            agent: id.clone(),
                            message,
                        };
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => refusals.message(&id, &e),
                }
            }
            // The reader has ended and every message before the end is delivered.
            let reason = reader
                .await
                .unwrap_or_else(|e| Some(format!("stream reader failed: {e}")));
            registry.detach(&id);
            let _ = events
                .send(AgentEvent::Detached { agent: id, reason })
                .await;
        });

        Ok(Response::new(ReceiverStream::new(proto_rx)))
    }
}

/// Queues `msg` for the decoder; false once the decoder is gone. While it
/// waits for room the agent keeps being stamped as heard: a decoder behind
/// on a large final report is our slowness, and the agent's next messages
/// are already on the wire; it must not make a live agent look silent.
async fn queue_for_decoding(
    raw_tx: &mpsc::Sender<proto::AgentMessage>,
    msg: proto::AgentMessage,
    registry: &Registry,
    id: &AgentId,
) -> bool {
    let send = raw_tx.send(msg);
    tokio::pin!(send);
    let mut touch =
        tokio::time::interval_at(tokio::time::Instant::now() + BACKLOG_TOUCH, BACKLOG_TOUCH);
    loop {
        tokio::select! {
            sent = &mut send => return sent.is_ok(),
            _ = touch.tick() => registry.touch(id),
        }
    }
}

fn short(digest: &str) -> &str {
    if digest.is_empty() {
        return "(none)";
    }
    &digest[..digest.len().min(12)]
}

/// Serves the swarm on `listener` until `shutdown`; every call must carry
/// `secret`. With `tls`, only TLS connections reach the swarm; a plaintext
/// one is answered by `PlaintextRefusal`, which says why.
pub async fn serve(
    listener: TcpListener,
    service: SwarmService,
    secret: Secret,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    // Agents' reports are compressed (histograms and names compress well);
    // what the controller sends is not: assignments are mostly OAuth tokens,
    // which gzip barely shrinks, and gzipping 100,000 of them kept the
    // service runtime busy for seconds — the runtime that hears heartbeats.
    let server = SwarmServer::new(service)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(common::limits::MAX_AGENT_MESSAGE_BYTES)
        .max_encoding_message_size(common::limits::MAX_CONTROLLER_MESSAGE_BYTES);
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        match req
            .metadata()
            .get(common::SECRET_METADATA)
            .and_then(|v| v.to_str().ok())
        {
            Some(given) if secret.matches(given) => Ok(req),
            _ => Err(Status::unauthenticated(format!(
                "missing or wrong cluster secret: give the agent the controller's {}",
                common::CLUSTER_SECRET_ENV
            ))),
        }
    };
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .add_service(InterceptedService::new(server, check));
    let Some(acceptor) = tls else {
        return router
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.cancelled_owned(),
            )
            .await;
    };
    let (accept_loop, incoming) = tls::accept(listener, acceptor, shutdown.clone());
    let refusal = tonic::transport::Server::builder()
        .add_service(SwarmServer::new(tls::PlaintextRefusal))
        .serve_with_incoming_shutdown(incoming.plaintext, shutdown.clone().cancelled_owned());
    let swarm = router.serve_with_incoming_shutdown(incoming.tls, shutdown.cancelled_owned());
    let ((), swarm, refusal) = tokio::join!(accept_loop, swarm, refusal);
    swarm.and(refusal)
}

/// The address to tell agents: `0.0.0.0` is not dialable, loopback is.
pub fn dial_address(local: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    }
}
