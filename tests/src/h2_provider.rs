//! A provider that speaks HTTPS and HTTP/2 only, as hosted providers do, with a
//! certificate signed by a certificate authority of its own (a private CA, which
//! the gateway trusts only through `[relay] ca_file`), and a cap on the streams a
//! connection carries at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
//!
//! A chat completion is answered whole, or, when it asks for a stream, with a
//! first event at once; the stream then stays open until [`H2Provider::release`].
//! It counts the streams open at once, and the connections it accepted.
//!
//! [`H2Provider::speak_http1`] turns it into a provider that speaks HTTP/1.1
//! only, as one behind a new load balancer might: its connections close, and
//! new ones negotiate `http/1.1` (a client that offers only `h2` is refused in
//! the TLS handshake) and are answered whole.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_rustls::rustls;

/// What the provider saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Seen {
    fn of(head: &http::request::Parts, body: Value) -> Seen {
        Seen {
            version: head.version,
            path: head.uri.path().to_string(),
            authorization: head
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body,
        }
    }
}

#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Connections that completed the TLS handshake.
    accepted: AtomicUsize,
    /// Of those, the ones not yet closed.
    connected: AtomicUsize,
}

/// Counts a connection as connected while it lives.
struct Connected(Arc<Shared>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running provider; it stops when dropped.
pub struct H2Provider {
    /// `https://127.0.0.1:PORT/v1`
    pub base_url: String,
    /// PEM of the certificate authority that signed the provider's certificate.
    pub ca_pem: String,
    shared: Arc<Shared>,
    release: watch::Sender<bool>,
    http1: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl H2Provider {
    /// Listens on `127.0.0.1:0`; a connection carries at most `max_streams` streams at once.
    pub async fn start(max_streams: u32) -> H2Provider {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Sluice test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let mut tls1 = tls.clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        tls1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let acceptor1 = tokio_rustls::TlsAcceptor::from(Arc::new(tls1));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let (release, released) = watch::channel(false);
        let (http1, speaks_http1) = watch::channel(false);
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (shared, released, mut switched) =
                    (accepting.clone(), released.clone(), speaks_http1.clone());
                let h1 = *switched.borrow_and_update();
                let acceptor = if h1 { acceptor1.clone() } else { acceptor.clone() };
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    shared.connected.fetch_add(1, Ordering::SeqCst);
                    let _connected = Connected(shared.clone());
                    if h1 {
                        http1_connection(tls, shared).await;
                        return;
                    }
                    let Ok(mut conn) = h2::server::Builder::new()
                        .max_concurrent_streams(max_streams)
                        .handshake::<_, Bytes>(tls)
                        .await
                    else {
                        return;
                    };
                    // Served until the provider turns to HTTP/1.1: then closed.
                    let serve = async {
                        while let Some(Ok((request, respond))) = conn.accept().await {
                            tokio::spawn(answer(request, respond, shared.clone(), released.clone()));
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = switched.wait_for(|h1| *h1) => {}
                    }
                });
            }
        });
        H2Provider {
            base_url: format!("https://{addr}/v1"),
            ca_pem: ca.pem(),
            shared,
            release,
            http1,
            task,
        }
    }

    /// From now on speak HTTP/1.1 only: the HTTP/2 connections close, new
    /// connections negotiate `http/1.1`.
    pub fn speak_http1(&self) {
        let _ = self.http1.send(true);
    }

    /// Connections accepted so far (TLS handshake done).
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn connections_open(&self) -> usize {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Streams open now (first event sent, not yet ended).
    pub fn open_streams(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Every request received, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// End every open stream (and any opened from now on) with `[DONE]`.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for H2Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    shared: Arc<Shared>,
    mut released: watch::Receiver<bool>,
) {
    let (head, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    shared.seen.lock().unwrap().push(Seen::of(&head, body));
    let content_type = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let response = http::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7});
    if !stream {
        let completion = json!({
            "id": "chatcmpl-h2", "object": "chat.completion", "created": 1, "model": "h2-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello over HTTP/2"}, "finish_reason": "stop"}],
            "usage": usage,
        });
        let _ = send.send_data(Bytes::from(completion.to_string()), true);
        return;
    }
    let chunk = |delta: Value, finish: Value, usage: Value| {
        let event = json!({
            "id": "chatcmpl-h2", "object": "chat.completion.chunk", "created": 1, "model": "h2-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage,
        });
        Bytes::from(format!("data: {event}\n\n"))
    };
    if send
        .send_data(
            chunk(
                json!({"role": "assistant", "content": "Hello"}),
                Value::Null,
                Value::Null,
            ),
            false,
        )
        .is_err()
    {
        return;
    }
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _ = released.wait_for(|r| *r).await;
    let _ = send.send_data(chunk(json!({}), json!("stop"), usage), false);
    let _ = send.send_data(Bytes::from_static(b"data: [DONE]\n\n"), true);
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

/// Serves HTTP/1.1 requests on one connection, each answered whole with a
/// chat completion, until the client closes it.
async fn http1_connection<S>(io: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            let (head, body) = request.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            shared.seen.lock().unwrap().push(Seen::of(&head, body));
            let completion = json!({
                "id": "chatcmpl-h1", "object": "chat.completion", "created": 1, "model": "h2-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello over HTTP/1.1"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            });
            let reply = http_body_util::Full::new(Bytes::from(completion.to_string()));
            Ok::<_, hyper::Error>(
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(reply)
                    .unwrap(),
            )
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}
