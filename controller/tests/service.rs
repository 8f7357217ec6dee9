//! The gRPC service in-process on 127.0.0.1:0 against a hand-driven client:
//! the secret, version, digest and capacity checks, and an Attach stream
//! both ways.

use std::sync::Arc;
use std::time::Duration;

use common::Secret;
use common::proto;
use common::proto::swarm_client::SwarmClient;
use common::scenario::Scenario;
use controller::messages::{AgentEvent, FromAgent, ToAgent};
use controller::registry::Registry;
use controller::service::{self, SwarmService};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Code;

const SECRET: &str = "test-cluster-secret";

fn request<T>(msg: T, secret: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert(common::SECRET_METADATA, secret.parse().unwrap());
    r
}

fn register_request(version: u32, digest: &str) -> proto::RegisterRequest {
    proto::RegisterRequest {
        protocol_version: version,
        agent_name: "test-agent".into(),
        capacity: 0,
        scenario_digest: digest.into(),
        agent_version: "test".into(),
        region: String::new(),
    }
}

async fn next_event(rx: &mut mpsc::Receiver<AgentEvent>) -> AgentEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("event")
}

/// The next message from the controller that is not a keepalive (`None`
/// once the stream ends); counts the keepalives skipped.
async fn next_command(
    inbound: &mut tonic::Streaming<proto::ControllerMessage>,
    keepalives: &mut usize,
) -> Option<proto::ControllerMessage> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), inbound.message())
            .await
            .expect("message in time")
            .unwrap()?;
        match msg.body {
            Some(proto::controller_message::Body::Keepalive(_)) => *keepalives += 1,
            _ => return Some(msg),
        }
    }
}

#[tokio::test]
async fn register_and_attach() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut events) = mpsc::channel(16);
    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let digest = Scenario::builtin().digest().to_owned();
    let svc = SwarmService::new(
        Arc::new(Registry::new(1)),
        tx,
        digest.clone(),
        Scenario::builtin().series_keys(),
        TaskTracker::new(),
        token.clone(),
    );
    tokio::spawn(service::serve(
        listener,
        svc,
        Secret::new(SECRET),
        None,
        token.clone(),
    ));

    let mut client = SwarmClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let v = common::PROTOCOL_VERSION;

    let e = client
        .register(request(register_request(v, &digest), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = client
        .register(tonic::Request::new(register_request(v, &digest)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    let e = client
        .register(request(register_request(v + 1, &digest), SECRET))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("protocol version") && e.message().contains("same commit"),
        "{}",
        e.message()
    );

    let e = client
        .register(request(register_request(v, "deadbeef"), SECRET))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("scenario"), "{}", e.message());

    let ok = client
        .register(request(register_request(v, &digest), SECRET))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.heartbeat_interval_ms, 1000);
    let e = client
        .register(request(register_request(v, &digest), SECRET))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");

    // Attach: agent → controller and back.
    let (out_tx, out_rx) = mpsc::channel(4);
    let mut req = request(tokio_stream::wrappers::ReceiverStream::new(out_rx), SECRET);
    req.metadata_mut()
        .insert(common::AGENT_METADATA, ok.agent_id.parse().unwrap());
    out_tx
        .send(proto::AgentMessage {
            body: Some(proto::agent_message::Body::Heartbeat(proto::Heartbeat {
                sent_at_ms: 1,
                active_vusers: 7,
            })),
        })
        .await
        .unwrap();
    let mut inbound = client.attach(req).await.unwrap().into_inner();
    let AgentEvent::Attached {
        agent, outbound, ..
    } = next_event(&mut events).await
    else {
        panic!("not attached")
    };
    assert_eq!(agent.as_str(), ok.agent_id);
    let AgentEvent::Message {
        message: FromAgent::Heartbeat { active_vusers },
        ..
    } = next_event(&mut events).await
    else {
        panic!("no heartbeat")
    };
    assert_eq!(active_vusers, 7);

    // Refused: a series no step of the scenario has (dropped, the rest
    // kept), and a whole message past a bound (no event at all).
    let series = |workflow: &str| proto::Series {
        key: Some(proto::SeriesKey {
            kind: proto::SeriesKind::Workflow as i32,
            workflow: workflow.into(),
            ..Default::default()
        }),
        ok: 1,
        ..Default::default()
    };
    let body = |b| proto::AgentMessage { body: Some(b) };
    use proto::agent_message::Body;
    for msg in [
        body(Body::Interval(proto::IntervalReport {
            seq: 1,
            interval_ms: 1000,
            series: vec![series("note_share"), series("no_such_workflow")],
            ..Default::default()
        })),
        body(Body::Ready(proto::Ready {
            failure_samples: vec!["x".into(); common::limits::MAX_FAILURE_SAMPLES + 1],
            ..Default::default()
        })),
        body(Body::Heartbeat(proto::Heartbeat {
            sent_at_ms: 2,
            active_vusers: 8,
        })),
    ] {
        out_tx.send(msg).await.unwrap();
    }
    let AgentEvent::Message {
        message: FromAgent::Interval(interval),
        ..
    } = next_event(&mut events).await
    else {
        panic!("no interval")
    };
    let kept: Vec<&str> = interval
        .series
        .series
        .keys()
        .map(|k| k.workflow.as_str())
        .collect();
    assert_eq!(kept, ["note_share"]);
    let AgentEvent::Message {
        message: FromAgent::Heartbeat { active_vusers },
        ..
    } = next_event(&mut events).await
    else {
        panic!("the Ready past its bound was not refused")
    };
    assert_eq!(active_vusers, 8);

    // Keepalives come every second, whatever the run loop does.
    let mut keepalives = 0;
    tokio::time::sleep(service::KEEPALIVE_INTERVAL * 2 + Duration::from_millis(500)).await;
    outbound
        .send(ToAgent::Stop {
            reason: "test".into(),
        })
        .await
        .unwrap();
    let msg = next_command(&mut inbound, &mut keepalives).await.unwrap();
    assert!(keepalives >= 2, "{keepalives} keepalives");
    assert!(
        matches!(msg.body, Some(proto::controller_message::Body::Stop(ref s)) if s.reason == "test"),
        "{msg:?}"
    );

    // The agent hangs up: the run hears it; dropping the sender ends the stream.
    drop(out_tx);
    assert!(matches!(
        next_event(&mut events).await,
        AgentEvent::Detached { .. }
    ));
    drop(outbound);
    assert!(next_command(&mut inbound, &mut keepalives).await.is_none());
}
