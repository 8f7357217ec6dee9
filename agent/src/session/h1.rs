//! Plain-HTTP/1.1 connections driven by the task that makes the call.
//!
//! hyper's pooled client runs each connection as a task of its own: a call
//! hands its request to that task over a channel and gets the answer's head
//! and every body chunk back over others, two task hops and their wake-ups
//! per call on top of the socket's. Here a call checks a connection out of
//! a small pool, sends its request and reads the answer while it polls the
//! connection itself (hyper's `client::conn::http1`, the same parser and
//! encoder), and puts it back once the body has ended — what wrk does. A
//! connection is only polled while a call has it: one the server closed
//! while idle is found closed at checkout and dropped, and a request that
//! was never written (hyper hands it back) goes out on the next one.
//!
//! Only `http://` targets without a proxy take this path; TLS (and with it
//! HTTP/2) stays on the pooled client.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service as _;

type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One HTTP/1.1 connection: the request side and the future that does its I/O.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Pin<Box<Driver>>,
    /// The driver has finished (the connection is closed); never polled again.
    done: bool,
}

impl Conn {
    /// Polls the connection's I/O once; notes when it has finished.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.done && self.driver.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
    }

    /// Drives the connection until it can take a request: `false` when it
    /// closed first (the server hung up while it sat idle).
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            for _ in 0..2 {
                match self.sender.poll_ready(cx) {
                    Poll::Ready(ready) => return Poll::Ready(ready.is_ok()),
                    Poll::Pending if self.done => return Poll::Ready(false),
                    Poll::Pending => self.drive(cx),
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Polls `f` with the connection driven beside it: `f` first, then the
    /// I/O when `f` waits, then `f` again for what the I/O delivered.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut f: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if let Poll::Ready(t) = f(cx) {
            return Poll::Ready(t);
        }
        if self.done {
            return Poll::Pending;
        }
        self.drive(cx);
        f(cx)
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections per target host and port, the most recently used first.
pub struct Pool {
    connector: HttpConnector,
    idle_timeout: Duration,
    idle: Mutex<HashMap<Authority, VecDeque<Idle>>>,
}

/// Why a request got no answer: the connection could not be made, or broke.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("the connection closed before it could take the request")]
    Closed,
}

impl Pool {
    pub fn new(connector: HttpConnector, idle_timeout: Duration) -> Self {
        Self {
            connector,
            idle_timeout,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, HashMap<Authority, VecDeque<Idle>>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used idle connection to `authority` that has not
    /// idled past the timeout (older ones are dropped).
    fn checkout(&self, authority: &Authority) -> Option<Conn> {
        let mut idle = self.idle();
        let queue = idle.get_mut(authority)?;
        while let Some(entry) = queue.pop_front() {
            if entry.since.elapsed() < self.idle_timeout {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Puts a connection back after a call, and drops the longest idle
    /// ones past the timeout.
    fn checkin(&self, authority: &Authority, conn: Conn) {
        if conn.done || conn.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle();
        let queue = idle.entry(authority.clone()).or_default();
        while queue
            .back()
            .is_some_and(|e| now.duration_since(e.since) >= self.idle_timeout)
        {
            queue.pop_back();
        }
        queue.push_front(Idle { conn, since: now });
    }

    async fn connect(&self, uri: &Uri) -> Result<Conn, Error> {
        let mut connector = self.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        let io = connector
            .call(uri.clone())
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        let (sender, driver) = http1::handshake(io).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
            done: false,
        })
    }

    /// Sends `request` (origin-form URI, `Host` set) to `uri`'s host on an
    /// idle connection, or a new one when none is left that can take it.
    pub async fn send(
        self: &Arc<Self>,
        uri: &Uri,
        authority: &Authority,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Answer, Error> {
        loop {
            let (mut conn, fresh) = match self.checkout(authority) {
                Some(conn) => (conn, false),
                None => (self.connect(uri).await?, true),
            };
            if !conn.ready().await {
                if fresh {
                    return Err(Error::Closed);
                }
                continue;
            }
            let mut sent = std::pin::pin!(conn.sender.try_send_request(request));
            let outcome = poll_fn(|cx| conn.poll_with(cx, |cx| sent.as_mut().poll(cx))).await;
            match outcome {
                Ok(response) => {
                    return Ok(Answer {
                        response,
                        ended: false,
                        conn: Some(conn),
                        pool: Arc::clone(self),
                        authority: authority.clone(),
                    });
                }
                Err(mut e) => match e.take_message() {
                    // Never written: a stale connection; the request goes
                    // out on the next one.
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(Error::Http(e.into_error())),
                },
            }
        }
    }
}

/// An answer whose body is read on the connection that carried it; the
/// connection goes back to the pool when the body has ended, and is closed
/// if the answer is dropped before that.
pub struct Answer {
    response: http::Response<Incoming>,
    /// The body has been read to its end.
    ended: bool,
    conn: Option<Conn>,
    pool: Arc<Pool>,
    authority: Authority,
}

impl Answer {
    pub fn response(&self) -> &http::Response<Incoming> {
        &self.response
    }

    /// The next frame of the body, driving the connection while it waits.
    pub async fn frame(&mut self) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        let frame = poll_fn(|cx| {
            let body = Pin::new(self.response.body_mut());
            match &mut self.conn {
                Some(conn) => {
                    let mut body = body;
                    conn.poll_with(cx, |cx| body.as_mut().poll_frame(cx))
                }
                None => body.poll_frame(cx),
            }
        })
        .await;
        if frame.is_none() {
            self.ended = true;
            self.release();
        }
        frame
    }

    /// Hands the connection back once the body has ended (nothing is left
    /// of this answer on it).
    fn release(&mut self) {
        if (self.ended || self.response.body().is_end_stream())
            && let Some(conn) = self.conn.take()
        {
            self.pool.checkin(&self.authority, conn);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // A body with nothing in it (a 202, say) is over without a read.
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    /// A plain HTTP/1.1 server on 127.0.0.1 that answers every request with
    /// `body` (chunked when `chunked`), closes a connection after
    /// `per_connection` answers, and counts the connections it accepted.
    async fn server(
        body: &'static str,
        chunked: bool,
        per_connection: usize,
    ) -> (Uri, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/mcp", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for _ in 0..per_connection {
                        // One request: its head, then a Content-Length body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        assert!(head.starts_with("post /mcp http/1.1\r\n"), "{head}");
                        assert!(head.contains("\r\nhost: 127.0.0.1:"), "{head}");
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < head_end + len {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..head_end + len);
                        let answer = if chunked {
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                                body.len()
                            )
                        } else {
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    // Closed after its last answer, as a server with a
                    // keep-alive limit or an idle timeout does.
                });
            }
        });
        (uri, accepted)
    }

    fn pool() -> Arc<Pool> {
        Arc::new(Pool::new(HttpConnector::new(), Duration::from_secs(90)))
    }

    fn request(uri: &Uri) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = Uri::from_static("/mcp");
        let host = uri.authority().unwrap().as_str().to_owned();
        request
            .headers_mut()
            .insert(http::header::HOST, host.parse().unwrap());
        request
    }

    async fn read_all(answer: &mut Answer) -> Vec<u8> {
        let mut body = Vec::new();
        while let Some(frame) = answer.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                body.extend_from_slice(&data);
            }
        }
        body
    }

    async fn call(pool: &Arc<Pool>, uri: &Uri) -> Vec<u8> {
        let authority = uri.authority().unwrap().clone();
        let mut answer = pool.send(uri, &authority, request(uri)).await.unwrap();
        assert_eq!(answer.response().status(), 200);
        read_all(&mut answer).await
    }

    #[tokio::test]
    async fn calls_in_turn_share_one_connection() {
        for chunked in [false, true] {
            let (uri, accepted) = server("hello", chunked, usize::MAX).await;
            let pool = pool();
            for _ in 0..20 {
                assert_eq!(call(&pool, &uri).await, b"hello");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "chunked: {chunked}");
        }
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced() {
        for chunked in [false, true] {
            let (uri, accepted) = server("hi", chunked, 2).await;
            let pool = pool();
            for i in 0..7 {
                assert_eq!(call(&pool, &uri).await, b"hi", "call {i}");
                // Let the server's close reach us while the connection idles.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 4, "chunked: {chunked}");
        }
    }

    #[tokio::test]
    async fn calls_at_once_take_their_own_connections_and_give_them_back() {
        let (uri, accepted) = server("x", false, usize::MAX).await;
        let pool = pool();
        let authority = uri.authority().unwrap().clone();
        let mut first = pool.send(&uri, &authority, request(&uri)).await.unwrap();
        let mut second = pool.send(&uri, &authority, request(&uri)).await.unwrap();
        assert_eq!(read_all(&mut first).await, b"x");
        assert_eq!(read_all(&mut second).await, b"x");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        for _ in 0..4 {
            assert_eq!(call(&pool, &uri).await, b"x");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "both were pooled");
        assert_eq!(pool.idle()[&authority].len(), 2);
    }

    #[tokio::test]
    async fn an_answer_dropped_before_its_end_closes_its_connection() {
        let (uri, accepted) = server("a longer body", true, usize::MAX).await;
        let pool = pool();
        let authority = uri.authority().unwrap().clone();
        let answer = pool.send(&uri, &authority, request(&uri)).await.unwrap();
        drop(answer);
        assert!(pool.idle().get(&authority).is_none_or(VecDeque::is_empty));
        assert_eq!(call(&pool, &uri).await, b"a longer body");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn no_server_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/mcp", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(listener);
        let authority = uri.authority().unwrap().clone();
        let err = pool()
            .send(&uri, &authority, request(&uri))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
    }
}
