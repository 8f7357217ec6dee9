//! `--json-replies`: answer each MCP POST with `application/json` instead of an SSE stream.
//!
//! The Streamable HTTP spec lets a server answer a POST that carries a request with either a
//! JSON body or `text/event-stream`; rmcp answers with SSE whenever a session is open. Clients
//! that read only JSON bodies (cargo-pmcp's `loadtest`) need the first. In this mode the guard
//! reads rmcp's finished SSE answer and, when it carries exactly one JSON-RPC message, sends that
//! message as the JSON body; an answer with more than one (a server request or notification
//! before the response) stays SSE, so nothing is lost.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Rewrites a finished SSE answer of one message as JSON; any other answer is returned as it
/// came. `limit` bounds the bytes read from the SSE stream.
pub(super) async fn into_json(response: Response, limit: usize) -> Response {
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse || response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!(error = %e, "an SSE answer could not be read for a JSON reply");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "answer too large or broken",
            )
                .into_response();
        }
    };
    let messages = sse_data(&bytes);
    let [message] = messages.as_slice() else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let json = Bytes::from(message.clone());
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CACHE_CONTROL);
    Response::from_parts(parts, Body::from(json))
}

/// The non-empty `data` payloads of an SSE stream, one per event (multi-line data joined by
/// `\n`, as the SSE spec does); priming events with empty data are skipped.
fn sse_data(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut has_data = false;
    let mut flush = |data: &mut Vec<u8>, has_data: &mut bool| {
        if *has_data && !data.is_empty() {
            events.push(std::mem::take(data));
        }
        data.clear();
        *has_data = false;
    };
    for line in stream.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            flush(&mut data, &mut has_data);
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if has_data {
                data.push(b'\n');
            }
            data.extend_from_slice(value);
            has_data = true;
        }
    }
    flush(&mut data, &mut has_data);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_of_each_event_priming_events_skipped() {
        let stream = b"id: 0\nretry: 3000\ndata: \n\nid: 1\ndata: {\"a\":1}\n\n";
        assert_eq!(sse_data(stream), vec![b"{\"a\":1}".to_vec()]);
        let two = b"data: {\"n\":1}\r\n\r\ndata:{\"r\":\ndata: 2}\n";
        assert_eq!(
            sse_data(two),
            vec![b"{\"n\":1}".to_vec(), b"{\"r\":\n2}".to_vec()]
        );
        assert!(sse_data(b"").is_empty());
        assert!(sse_data(b": comment\n\n").is_empty());
    }

    #[tokio::test]
    async fn one_message_becomes_json_more_stay_sse() {
        let sse = |body: &'static str| {
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header("mcp-session-id", "s1")
                .body(Body::from(body))
                .expect("response")
        };
        let one = into_json(sse("data: \n\ndata: {\"id\":1}\n\n"), 1024).await;
        assert_eq!(one.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(one.headers()["mcp-session-id"], "s1");
        let body = axum::body::to_bytes(one.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"{\"id\":1}");

        let two = into_json(sse("data: {\"m\":1}\n\ndata: {\"id\":1}\n\n"), 1024).await;
        assert_eq!(two.headers()[header::CONTENT_TYPE], "text/event-stream");
        let body = axum::body::to_bytes(two.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"data: {\"m\":1}\n\ndata: {\"id\":1}\n\n");

        let too_big = into_json(sse("data: {\"id\":1}\n\n"), 4).await;
        assert_eq!(too_big.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
