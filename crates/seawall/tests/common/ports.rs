//! Loopback ports for tests that need nobody listening: one refused for as long as the test
//! holds it, or one free for a process the test starts.

use std::net::SocketAddr;

use tokio::net::TcpSocket;

/// An address nothing listens on: a bound socket that never listens, so connections are
/// refused and the port cannot be handed to another test while the returned socket lives.
pub fn closed_port() -> (SocketAddr, TcpSocket) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// A port free at the time of the call (bound, then released), for a child process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
