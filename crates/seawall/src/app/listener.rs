//! A listener a reload can change (another address, other workers, limits or timeouts)
//! without dropping a connection. Each version of its settings is a *generation* serving from
//! its own task; a new generation takes over the same listening socket (duplicated
//! descriptors, so nothing waiting in the kernel's backlog is lost) or binds the new address,
//! and the old one stops accepting and drains its connections, each finishing its request.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::server::{self, Limits};

/// What one generation of a listener is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    /// The configured address (port 0: any).
    pub(crate) addr: SocketAddr,
    /// Worker threads, each with its own runtime; 0: the main runtime.
    pub(crate) workers: usize,
    pub(crate) limits: Limits,
}

/// Starts a generation serving `sockets` with `listen`'s settings until `stop` is sent.
pub(crate) type Spawn = Box<
    dyn Fn(Vec<std::net::TcpListener>, &Listen, &broadcast::Sender<()>) -> JoinHandle<()>
        + Send
        + Sync,
>;

/// A listener and its generations.
pub(crate) struct Listener {
    name: &'static str,
    spawn: Spawn,
    state: Mutex<State>,
}

struct State {
    current: Generation,
    /// Earlier generations, draining.
    draining: Vec<JoinHandle<()>>,
    stopped: bool,
}

struct Generation {
    listen: Listen,
    /// Where it listens (port 0 resolved).
    local: SocketAddr,
    /// The listening sockets it serves, kept to hand duplicates to the next generation.
    sockets: Vec<std::net::TcpListener>,
    stop: broadcast::Sender<()>,
    /// Taken by [`Listener::wait`].
    task: Option<JoinHandle<()>>,
}

/// What a reload did to a listener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Moved {
    /// The settings did not change.
    Unchanged,
    /// A new generation took over the same socket.
    Restarted,
    /// A new generation listens at this address; the old one drains.
    Rebound(SocketAddr),
}

impl Listener {
    /// Serves `sockets` (bound for `listen`) with a first generation.
    pub(crate) fn start(
        name: &'static str,
        listen: Listen,
        sockets: Vec<std::net::TcpListener>,
        spawn: Spawn,
    ) -> io::Result<Listener> {
        let current = Self::generation(&spawn, listen, sockets)?;
        Ok(Listener {
            name,
            spawn,
            state: Mutex::new(State {
                current,
                draining: Vec::new(),
                stopped: false,
            }),
        })
    }

    fn generation(
        spawn: &Spawn,
        listen: Listen,
        sockets: Vec<std::net::TcpListener>,
    ) -> io::Result<Generation> {
        let local = sockets
            .first()
            .ok_or_else(|| io::Error::other("no socket to listen on"))?
            .local_addr()?;
        let served = sockets
            .iter()
            .map(|s| s.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        let (stop, _) = broadcast::channel(1);
        let task = spawn(served, &listen, &stop);
        Ok(Generation {
            listen,
            local,
            sockets,
            stop,
            task: Some(task),
        })
    }

    /// Where the current generation listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.lock().current.local
    }

    /// Serves with `listen` from now on: nothing when it did not change; a new generation on
    /// the same socket when only workers, limits or timeouts changed; a new socket when the
    /// address did (an error binding it changes nothing). The old generation drains.
    pub(crate) fn reload(&self, listen: Listen) -> io::Result<Moved> {
        let mut state = self.lock();
        if state.stopped || state.current.listen == listen {
            return Ok(Moved::Unchanged);
        }
        let rebind = state.current.listen.addr != listen.addr;
        let sockets = if rebind {
            server::workers::bind(listen.addr, listen.workers)?
        } else {
            let first = &state.current.sockets[0];
            (0..listen.workers.max(1))
                .map(|_| first.try_clone())
                .collect::<io::Result<Vec<_>>>()?
        };
        let next = Self::generation(&self.spawn, listen, sockets)?;
        let moved = if rebind {
            Moved::Rebound(next.local)
        } else {
            Moved::Restarted
        };
        let old = std::mem::replace(&mut state.current, next);
        let _ = old.stop.send(());
        state.draining.extend(old.task);
        state.draining.retain(|t| !t.is_finished());
        tracing::info!(listener = self.name, address = %state.current.local, ?moved,
            "listener reloaded; the previous generation drains its connections");
        Ok(moved)
    }

    /// Stops accepting on every generation; each drains its connections.
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        let _ = state.current.stop.send(());
        // The sockets kept for a next generation: closed, so the address refuses at once
        // (the generation's own copies close when it stops accepting).
        state.current.sockets.clear();
    }

    /// Resolves when every generation has finished (after [`stop`](Self::stop)).
    pub(crate) async fn wait(&self) {
        loop {
            let task = {
                let mut state = self.lock();
                match state.draining.pop() {
                    Some(task) => task,
                    None => match state.current.task.take() {
                        Some(task) => task,
                        None => return,
                    },
                }
            };
            if let Err(error) = task.await {
                tracing::error!(listener = self.name, %error, "listener task failed");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
