//! The agent against a tiny in-test controller: registers, receives an
//! assignment of two users (in two chunks), opens sessions on the real mock
//! target, runs a short closed-model run, and sends a final report whose
//! series all decode.

mod support;

use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Secret;
use common::proto::swarm_server::{Swarm, SwarmServer};
use common::proto::{self, agent_message, controller_message};
use common::scenario::Scenario;
use common::series::{SeriesKind, SeriesSet};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

const SECRET: &str = "cluster-secret-for-tests";

/// What one `Attach` hands the test: the agent's messages and a sender to it.
type Attached = (
    Streaming<proto::AgentMessage>,
    mpsc::Sender<Result<proto::ControllerMessage, Status>>,
);

type Outbound = Pin<Box<dyn Stream<Item = Result<proto::ControllerMessage, Status>> + Send>>;

/// Hands each attach's two directions to the test.
struct FakeController {
    attached: mpsc::Sender<Attached>,
    registered: Mutex<Vec<proto::RegisterRequest>>,
}

fn check_secret<T>(req: &Request<T>) -> Result<(), Status> {
    match req
        .metadata()
        .get(common::SECRET_METADATA)
        .and_then(|v| v.to_str().ok())
    {
        Some(s) if s == SECRET => Ok(()),
        _ => Err(Status::unauthenticated("wrong cluster secret")),
    }
}

#[tonic::async_trait]
impl Swarm for FakeController {
    async fn register(
        &self,
        req: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        check_secret(&req)?;
        let req = req.into_inner();
        if req.scenario_digest != Scenario::builtin().digest() {
            return Err(Status::failed_precondition("scenario digest mismatch"));
        }
        self.registered.lock().await.push(req);
        Ok(Response::new(proto::RegisterResponse {
            agent_id: "agent-1".into(),
            heartbeat_interval_ms: 200,
        }))
    }

    type AttachStream = Outbound;

    async fn attach(
        &self,
        req: Request<Streaming<proto::AgentMessage>>,
    ) -> Result<Response<Outbound>, Status> {
        check_secret(&req)?;
        let id = req
            .metadata()
            .get(common::AGENT_METADATA)
            .and_then(|v| v.to_str().ok());
        if id != Some("agent-1") {
            return Err(Status::unauthenticated("unknown agent"));
        }
        let (tx, rx) = mpsc::channel(16);
        // Keepalives, as the real controller sends them, while the test
        // holds its sender (a weak one here, so dropping it ends the stream).
        let weak = tx.downgrade();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                let Some(tx) = weak.upgrade() else { return };
                let keepalive = proto::Keepalive {
                    sent_at_ms: now_ms(),
                };
                if tx
                    .send(send(controller_message::Body::Keepalive(keepalive)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        self.attached
            .send((req.into_inner(), tx))
            .await
            .map_err(|_| Status::internal("test gone"))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn send(body: controller_message::Body) -> Result<proto::ControllerMessage, Status> {
    Ok(proto::ControllerMessage { body: Some(body) })
}

async fn start_controller() -> (String, mpsc::Receiver<Attached>, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (attached, attached_rx) = mpsc::channel(1);
    let service = FakeController {
        attached,
        registered: Mutex::new(Vec::new()),
    };
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(SwarmServer::new(service))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stopped.cancelled_owned(),
            )
            .await
            .unwrap();
    });
    (format!("http://{addr}"), attached_rx, stop)
}

fn config(controller: String, secret: &str) -> agent::Config {
    agent::Config {
        controller,
        name: "test-agent".into(),
        capacity: 0,
        connect_timeout: Duration::from_secs(5),
        cluster_secret: Secret::new(secret),
        grpc_gzip: false,
        http: None,
        tls: Default::default(),
        fault_final_report_delay: None,
        region: None,
    }
}

#[tokio::test]
async fn runs_an_assignment_and_reports() {
    let target = support::start_target(&["u1", "u2"], mock::MockConfig::default()).await;
    let (url, mut attached, stop_controller) = start_controller().await;
    let agent_task = tokio::spawn(agent::run(config(url, SECRET), CancellationToken::new()));

    let (mut inbound, outbound) = tokio::time::timeout(Duration::from_secs(10), attached.recv())
        .await
        .expect("agent attached in time")
        .unwrap();
    let builtin = Scenario::builtin();
    let mix = builtin.resolve_workload(Some("mixed")).unwrap().mix;
    let settings = proto::RunSettings {
        mcp_url: target.mock.mcp_url.clone(),
        scenario_source: builtin.source().to_owned(),
        scenario_digest: builtin.digest().to_owned(),
        mix: mix
            .iter()
            .map(|m| proto::MixEntry {
                workflow: m.workflow.clone(),
                weight: m.weight,
            })
            .collect(),
        load: Some(proto::LoadModel {
            model: Some(proto::load_model::Model::Closed(proto::Closed {
                think_time_ms: 10,
            })),
        }),
        request_timeout_ms: 5_000,
        headers: Default::default(),
        stages: vec![],
        rate_share: 1.0,
        mcp_version: String::new(),
        elicitation: String::new(),
        max_in_flight: 0,
    };
    // Two chunks, one user each, in one group.
    for (index, user) in ["u1", "u2"].into_iter().enumerate() {
        let chunk = proto::Assignment {
            assignment_id: "as-1".into(),
            chunk_index: index as u32,
            chunk_count: 2,
            settings: (index == 0).then(|| settings.clone()),
            groups: vec![proto::VuserGroup {
                group_index: 0,
                users: vec![proto::VuserSpec {
                    user_index: index as u32,
                    name: user.into(),
                    access_token: target.token(user).await,
                    expires_at_ms: 0,
                    activation_rank: index as u32,
                }],
            }],
        };
        outbound
            .send(send(controller_message::Body::Assignment(chunk)))
            .await
            .unwrap();
    }

    let mut heartbeats = 0;
    let mut intervals = Vec::new();
    let mut final_report = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while final_report.is_none() {
        let msg = tokio::time::timeout_at(deadline, inbound.message())
            .await
            .expect("final report in time")
            .expect("stream ok")
            .expect("stream open");
        match msg.body.expect("body") {
            agent_message::Body::Heartbeat(_) => heartbeats += 1,
            agent_message::Body::Ready(ready) => {
                assert_eq!(ready.assignment_id, "as-1");
                assert_eq!(
                    (ready.sessions_open, ready.sessions_failed),
                    (2, 0),
                    "{:?}",
                    ready.failure_samples
                );
                let start = proto::Start {
                    start_at_ms: now_ms() + 200,
                    warmup_ms: 500,
                    duration_ms: 2_000,
                };
                outbound
                    .send(send(controller_message::Body::Start(start)))
                    .await
                    .unwrap();
                // A token update mid-run must not disturb anything.
                let fresh = target.token("u1").await;
                outbound
                    .send(send(controller_message::Body::TokenUpdate(
                        proto::TokenUpdate {
                            user_name: "u1".into(),
                            access_token: fresh,
                            expires_at_ms: 0,
                        },
                    )))
                    .await
                    .unwrap();
            }
            agent_message::Body::Interval(i) => intervals.push(i),
            agent_message::Body::FinalReport(f) => final_report = Some(f),
            other => panic!("unexpected message {other:?}"),
        }
    }
    let report = final_report.unwrap();
    assert!(!report.interrupted);
    assert_eq!((report.chunk_index, report.chunk_count), (0, 1));
    let series = SeriesSet::from_proto(report.series.clone(), report.users.clone())
        .expect("every series decodes");
    let workflows: Vec<_> = series.iter_kind(SeriesKind::Workflow).collect();
    assert!(!workflows.is_empty());
    let ok: u64 = workflows.iter().map(|(_, s)| s.ok).sum();
    let failed: u64 = workflows.iter().map(|(_, s)| s.failed).sum();
    assert!(ok > 0, "{workflows:?}");
    assert_eq!(failed, 0, "{workflows:?}");
    let (_, init) = series
        .iter_kind(SeriesKind::McpInitialize)
        .next()
        .expect("session initializations");
    assert_eq!(init.ok, 2, "one initialize per user, in one series");
    assert_eq!(series.users.len(), 2, "per-user statistics for both users");
    assert!(
        series
            .users
            .values()
            .all(|u| u.total() > 0 && u.latency.len() == u.total())
    );
    assert!(series.iter_kind(SeriesKind::Operation).count() > 0);
    assert!(heartbeats >= 1);
    assert!(!intervals.is_empty(), "no interval reports");
    for (i, interval) in intervals.iter().enumerate() {
        assert_eq!(interval.seq, i as u64);
        SeriesSet::from_proto(interval.series.clone(), interval.users.clone())
            .expect("interval decodes");
    }
    let mcp = report.mcp.expect("mcp stats");
    assert_eq!(mcp.auth_failures, 0);
    assert!(report.generator.expect("generator").cpu_seconds >= 0.0);

    drop(outbound);
    let result = tokio::time::timeout(Duration::from_secs(10), agent_task)
        .await
        .expect("agent exits")
        .unwrap();
    result.expect("agent exits cleanly");
    stop_controller.cancel();
}

#[tokio::test]
async fn stop_interrupts_the_run() {
    let target = support::start_target(&["s1"], mock::MockConfig::default()).await;
    let (url, mut attached, stop_controller) = start_controller().await;
    let agent_task = tokio::spawn(agent::run(config(url, SECRET), CancellationToken::new()));
    let (mut inbound, outbound) = attached.recv().await.unwrap();
    let builtin = Scenario::builtin();
    let chunk = proto::Assignment {
        assignment_id: "as-2".into(),
        chunk_index: 0,
        chunk_count: 1,
        settings: Some(proto::RunSettings {
            mcp_url: target.mock.mcp_url.clone(),
            scenario_source: builtin.source().to_owned(),
            scenario_digest: builtin.digest().to_owned(),
            mix: vec![proto::MixEntry {
                workflow: "baseline".into(),
                weight: 1,
            }],
            load: Some(proto::LoadModel {
                model: Some(proto::load_model::Model::Open(proto::Open {
                    rate_per_sec: 20.0,
                })),
            }),
            request_timeout_ms: 5_000,
            headers: Default::default(),
            stages: vec![],
            rate_share: 1.0,
            mcp_version: String::new(),
            elicitation: String::new(),
            max_in_flight: 0,
        }),
        groups: vec![proto::VuserGroup {
            group_index: 0,
            users: vec![proto::VuserSpec {
                user_index: 0,
                name: "s1".into(),
                access_token: target.token("s1").await,
                expires_at_ms: 0,
                activation_rank: 0,
            }],
        }],
    };
    outbound
        .send(send(controller_message::Body::Assignment(chunk)))
        .await
        .unwrap();
    let final_report = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg.body.unwrap() {
            agent_message::Body::Ready(_) => {
                let start = proto::Start {
                    start_at_ms: now_ms(),
                    warmup_ms: 0,
                    duration_ms: 60_000,
                };
                outbound
                    .send(send(controller_message::Body::Start(start)))
                    .await
                    .unwrap();
            }
            agent_message::Body::Interval(i) if i.seq == 0 => {
                let stop = proto::Stop {
                    reason: "test".into(),
                };
                outbound
                    .send(send(controller_message::Body::Stop(stop)))
                    .await
                    .unwrap();
            }
            agent_message::Body::FinalReport(f) => break f,
            _ => {}
        }
    };
    assert!(final_report.interrupted);
    let series =
        SeriesSet::from_proto(final_report.series.clone(), final_report.users.clone()).unwrap();
    let (_, baseline) = series
        .iter_kind(SeriesKind::Workflow)
        .next()
        .expect("some workflows ran");
    assert!(baseline.ok > 0);
    assert!(
        !baseline.corrected.is_empty(),
        "open model records corrected latency"
    );
    drop(outbound);
    tokio::time::timeout(Duration::from_secs(10), agent_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    stop_controller.cancel();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_clearly() {
    let (url, _attached, stop_controller) = start_controller().await;
    let err = agent::run(config(url, "wrong"), CancellationToken::new())
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("refused") && text.contains("wrong cluster secret"),
        "{text}"
    );
    stop_controller.cancel();
}

#[tokio::test]
async fn an_unreachable_controller_times_out() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(format!("http://127.0.0.1:{port}"), SECRET);
    cfg.connect_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = agent::run(cfg, CancellationToken::new()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("could not reach the controller"),
        "{err:#}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
