//! A provider that speaks HTTPS and HTTP/2 only, as hosted providers do, with a
//! certificate signed by a certificate authority of its own (a private CA, which
//! the gateway trusts only through `[relay] ca_file`), and a cap on the streams a
//! connection carries at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
//!
//! A chat completion is answered whole, or, when it asks for a stream, with a
//! first event at once; the stream then stays open until [`H2Provider::release`].
//! It counts the streams open at once.

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

#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// A running provider; it stops when dropped.
pub struct H2Provider {
    /// `https://127.0.0.1:PORT/v1`
    pub base_url: String,
    /// PEM of the certificate authority that signed the provider's certificate.
    pub ca_pem: String,
    shared: Arc<Shared>,
    release: watch::Sender<bool>,
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
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let (release, released) = watch::channel(false);
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, shared, released) = (acceptor.clone(), accepting.clone(), released.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut conn) = h2::server::Builder::new()
                        .max_concurrent_streams(max_streams)
                        .handshake::<_, Bytes>(tls)
                        .await
                    else {
                        return;
                    };
                    while let Some(Ok((request, respond))) = conn.accept().await {
                        tokio::spawn(answer(request, respond, shared.clone(), released.clone()));
                    }
                });
            }
        });
        H2Provider {
            base_url: format!("https://{addr}/v1"),
            ca_pem: ca.pem(),
            shared,
            release,
            task,
        }
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
    shared.seen.lock().unwrap().push(Seen {
        version: head.version,
        path: head.uri.path().to_string(),
        authorization: head
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body,
    });
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
