//! The sockets the server accepts carry `TCP_NODELAY` and TCP keepalive,
//! plaintext and TLS alike. Without `TCP_NODELAY`, a response written in
//! two segments waits for the client's delayed ACK (40 ms on Linux): the
//! p99 of every load test before this was checked.
//!
//! The server runs in this process, so its accepted sockets are among the
//! process's own file descriptors: the test finds them in `/proc/self/fd`
//! (Linux) and reads their options back with `getsockopt`.

#![cfg(target_os = "linux")]

mod common;

use std::{
    net::SocketAddr,
    os::fd::{BorrowedFd, RawFd},
};

use common::{TestServer, pki::Pki};
use mnist::proto::v1::GetModelInfoRequest;
use tonic::transport::{Certificate, ClientTlsConfig};

/// Options read back from one server-side socket.
#[derive(Debug)]
struct AcceptedSocket {
    peer: SocketAddr,
    nodelay: bool,
    keepalive: bool,
}

/// Every connected socket of this process whose local address is `server`:
/// the connections the server accepted (the listener has no peer).
fn accepted_sockets(server: SocketAddr) -> Vec<AcceptedSocket> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Some(fd) = entry.ok().and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok()) else { continue };
        // SAFETY: the descriptor is only borrowed for the getsockopt calls
        // below; one that closes meanwhile makes them fail, nothing more.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else { continue };
        let (Some(local), Some(peer)) = (local.as_socket(), peer.as_socket()) else { continue };
        if local != server {
            continue;
        }
        found.push(AcceptedSocket {
            peer,
            nodelay: socket.tcp_nodelay().expect("TCP_NODELAY"),
            keepalive: socket.keepalive().expect("SO_KEEPALIVE"),
        });
    }
    found
}

async fn assert_accepted_sockets_are_tuned(server: &TestServer) {
    // A call makes sure the connection is accepted and in use.
    let mut client = server.client().await;
    client.get_model_info(GetModelInfoRequest::default()).await.expect("GetModelInfo");
    let sockets = accepted_sockets(server.addr);
    assert!(!sockets.is_empty(), "no accepted socket found for {}", server.addr);
    for socket in &sockets {
        assert!(socket.nodelay, "the connection from {} has no TCP_NODELAY (Nagle on): {socket:?}", socket.peer);
        assert!(socket.keepalive, "the connection from {} has no SO_KEEPALIVE: {socket:?}", socket.peer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_connections_have_nodelay_and_keepalive() {
    let server = TestServer::start(&[]).await;
    assert_accepted_sockets_are_tuned(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_have_nodelay_and_keepalive() {
    let pki = Pki::generate();
    let flags = ["--tls-cert", &pki.arg("server.pem"), "--tls-key", &pki.arg("server.key")];
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.read("ca.pem")));
    let server = TestServer::start_with_tls(&flags, Some(tls)).await;
    assert_accepted_sockets_are_tuned(&server).await;
}
