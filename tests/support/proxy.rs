//! A TCP proxy on loopback between keepword and a server (PostgreSQL, IMAP)
//! that acts out the network's faults, which a server on the same machine
//! never shows by itself:
//!
//! - a **partition** ([`Proxy::partition`], [`Proxy::heal`]): nothing is
//!   forwarded either way on any connection, old or new, and no socket is
//!   closed, as when a link or a firewall drops packets silently; healed,
//!   what waited is forwarded, as TCP would retransmit it;
//! - a **silent drop** of the connections open now ([`Proxy::drop_silently`]):
//!   they stay open and carry nothing ever again (a NAT or load balancer that
//!   forgot them), while new connections work;
//! - a **cut** ([`Proxy::cut_after`]): the server's answer is forwarded up to
//!   a number of bytes, then both sides are reset (RST), in the middle of a
//!   response.
//!
//! The proxy holds the TCP peer alive itself, so the kernel's keepalive on
//! keepword's side sees nothing wrong: only the application can notice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    /// Connections numbered from 1 as accepted.
    opened: AtomicU64,
    /// Connections numbered up to this one carry nothing any more.
    dropped_up_to: AtomicU64,
    partitioned: AtomicBool,
    /// Bytes from the server still forwarded before a cut; negative: no cut
    /// armed.
    cut_budget: AtomicI64,
    cuts: AtomicUsize,
    /// Bytes forwarded from the server to the client, all connections.
    downstream: AtomicU64,
}

impl State {
    fn blocked(&self, conn: u64) -> bool {
        self.partitioned.load(Ordering::SeqCst) || conn <= self.dropped_up_to.load(Ordering::SeqCst)
    }
}

pub struct Proxy {
    /// The port keepword connects to, on 127.0.0.1.
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards 127.0.0.1:`port` (a free one) to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            cut_budget: AtomicI64::new(-1),
            ..State::default()
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let conn = shared.opened.fetch_add(1, Ordering::SeqCst) + 1;
                let state = shared.clone();
                tokio::spawn(async move {
                    // A partition holds the connection too: it is accepted
                    // (the proxy's own socket) and then nothing moves.
                    while state.blocked(conn) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    pump(conn, client, server, state).await;
                });
            }
        });
        Proxy { port, state, task }
    }

    /// Stops forwarding on every connection, open or new, without closing
    /// any.
    pub fn partition(&self) {
        self.state.partitioned.store(true, Ordering::SeqCst);
    }

    /// Ends a [`Proxy::partition`]: what waited is forwarded.
    pub fn heal(&self) {
        self.state.partitioned.store(false, Ordering::SeqCst);
    }

    /// The connections open now carry nothing from here on, either way, and
    /// stay open; later ones are forwarded.
    pub fn drop_silently(&self) {
        let opened = self.state.opened.load(Ordering::SeqCst);
        self.state.dropped_up_to.store(opened, Ordering::SeqCst);
    }

    /// The next `bytes` of the server's answers are forwarded, then the
    /// connection carrying the next byte is reset on both sides.
    pub fn cut_after(&self, bytes: u64) {
        self.state.cut_budget.store(bytes as i64, Ordering::SeqCst);
    }

    /// Connections reset by [`Proxy::cut_after`] so far.
    pub fn cuts(&self) -> usize {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.opened.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the server so far.
    pub fn downstream(&self) -> u64 {
        self.state.downstream.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until the server closes or a cut, acting out the
/// faults.
async fn pump(conn: u64, client: TcpStream, server: TcpStream, state: Arc<State>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match client_rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                while state.blocked(conn) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if server_tx.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_tx.shutdown().await;
            // Held until the pump ends: the client's half stays open.
            std::future::pending::<()>().await;
        })
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match server_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while state.blocked(conn) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let budget = state.cut_budget.load(Ordering::SeqCst);
        let cut = budget >= 0 && (n as i64) > budget;
        let send = if cut {
            state.cut_budget.store(-1, Ordering::SeqCst);
            budget as usize
        } else {
            if budget >= 0 {
                state.cut_budget.fetch_sub(n as i64, Ordering::SeqCst);
            }
            n
        };
        if client_tx.write_all(&buf[..send]).await.is_err() {
            break;
        }
        state.downstream.fetch_add(send as u64, Ordering::SeqCst);
        if cut {
            state.cuts.fetch_add(1, Ordering::SeqCst);
            // SO_LINGER 0: closing sends RST, not FIN.
            let _ = client_tx.as_ref().set_zero_linger();
            up.abort();
            let _ = up.await;
            return;
        }
    }
    let _ = client_tx.shutdown().await;
    up.abort();
}
