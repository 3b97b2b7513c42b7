//! Noticing that a client hung up while its request waits or runs. actix-web
//! keeps a handler running after the peer closes (HTTP allows a half-close),
//! so a request abandoned in the queue would still take a key's slot and call
//! the provider. Each connection keeps a duplicate of its socket; a waiting
//! request peeks at it now and then, and end-of-file means the client left.
//! (A client that half-closes its side after sending counts as gone; no
//! OpenAI client does that.)

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

/// How often a waiting request checks on its client.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// A duplicate handle of a client connection's socket.
#[derive(Clone)]
pub struct ClientSocket(Arc<std::net::TcpStream>);

impl ClientSocket {
    /// Whether the peer closed its side.
    fn closed(&self) -> bool {
        let mut byte = [0u8; 1];
        // The socket is non-blocking (it is actix's); 0 bytes is end-of-file.
        matches!(self.0.peek(&mut byte), Ok(0))
            || matches!(self.0.peek(&mut byte), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
    }
}

/// `HttpServer::on_connect` hook: keep a duplicate of each TCP socket, and
/// turn off Nagle's algorithm (it holds back small SSE chunks by ~40 ms).
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut Extensions) {
    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
            ext.insert(ClientSocket(Arc::new(std::net::TcpStream::from(fd))));
        }
    }
}

/// Resolves when the client of `req` has hung up; never, when that cannot be known.
pub fn client_gone(req: &HttpRequest) -> impl std::future::Future<Output = ()> {
    let socket = req.conn_data::<ClientSocket>().cloned();
    async move {
        let Some(socket) = socket else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if socket.closed() {
                return;
            }
        }
    }
}
