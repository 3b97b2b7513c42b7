//! Noticing that a client hung up while its request waits or runs. actix-web
//! keeps a handler running after the peer closes (HTTP allows a half-close),
//! so a request abandoned in the queue would still take a key's slot and call
//! the provider. Each connection notes its socket's descriptor and peer; a
//! waiting request peeks at the socket now and then, and end-of-file means the
//! client left. (A client that half-closes its side after sending counts as
//! gone; no OpenAI client does that.) The socket is borrowed, not duplicated: a
//! duplicate cost every open stream a third descriptor, and with it a third of
//! the streams a process's open-files limit allows (docs/BENCHMARKS.md).

use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

/// How often a waiting request checks on its client.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// A client connection's socket, by descriptor, and who is at its other end.
#[derive(Clone, Copy, Debug)]
pub struct ClientSocket {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    peer: SocketAddr,
}

impl ClientSocket {
    /// Whether the peer closed its side.
    #[cfg(unix)]
    fn closed(&self) -> bool {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor stays open as long as its connection's
        // dispatcher lives, and the dispatcher owns the handler future that
        // calls this: the socket is open whenever this runs. It is borrowed
        // (`ManuallyDrop`: never closed here). Were it closed and its number
        // reused, the socket there has another peer (or is no socket), which
        // also means this client's connection is gone.
        let socket = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.fd) });
        if !matches!(socket.peer_addr(), Ok(peer) if peer == self.peer) {
            return true;
        }
        let mut byte = [0u8; 1];
        // The socket is non-blocking (it is actix's); 0 bytes is end-of-file.
        match socket.peek(&mut byte) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }

    /// Not known off Unix.
    #[cfg(not(unix))]
    fn closed(&self) -> bool {
        false
    }
}

/// `HttpServer::on_connect` hook: note each TCP socket, and turn off Nagle's
/// algorithm (it holds back small SSE chunks by ~40 ms).
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut Extensions) {
    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    #[cfg(unix)]
    if let Ok(peer) = tcp.peer_addr() {
        use std::os::fd::AsRawFd;
        ext.insert(ClientSocket {
            fd: tcp.as_raw_fd(),
            peer,
        });
    }
}

/// Resolves when the client of `req` has hung up; never, when that cannot be known.
pub fn client_gone(req: &HttpRequest) -> impl std::future::Future<Output = ()> {
    let socket = req.conn_data::<ClientSocket>().copied();
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
