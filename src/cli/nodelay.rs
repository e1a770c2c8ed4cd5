//! TCP_NODELAY on the job's database connections.
//!
//! sqlx 0.9.0 opens its TCP sockets without TCP_NODELAY (sqlx issue #4335; the
//! fix, PR #4336, is merged but not released). A COPY then pays for Nagle's
//! algorithm: the small tail of each batch (its last bytes, CopyDone, Sync)
//! waits until the server acknowledges what went before, and the server delays
//! its acknowledgement. On a first sync of 100k instances over loopback that
//! was 1.1-1.3 s of an 8.8 s run (BENCHMARKS.md). libpq, and so psql, always
//! sets the option.
//!
//! sqlx gives no access to its socket, so the new connection's own socket is
//! found among the process's descriptors: the one whose local port is the
//! client port the server reports and whose peer port is the server's.
//! Through a proxy or NAT the ports differ and nothing is set (as before);
//! over a Unix socket there is nothing to set.

use sqlx::PgConnection;

/// Sets TCP_NODELAY on the socket of `conn`, if it is a TCP connection that can
/// be told apart from this side. Never fails: the option only saves time.
pub(crate) async fn set(conn: &mut PgConnection) {
    if !platform::CAN_FIND_SOCKETS {
        return;
    }
    let ports: Result<(Option<i32>, Option<i32>), _> =
        sqlx::query_as("SELECT inet_client_port(), inet_server_port()")
            .fetch_one(conn)
            .await;
    let (local, peer) = match ports {
        Ok((Some(local), Some(peer))) => (local, peer),
        Ok(_) => return, // a Unix socket
        Err(e) => {
            tracing::debug!(error = %e, "could not ask the server for the connection's ports");
            return;
        }
    };
    let (Ok(local), Ok(peer)) = (u16::try_from(local), u16::try_from(peer)) else {
        return;
    };
    match platform::set_on_socket(local, peer) {
        Ok(true) => {}
        Ok(false) => tracing::debug!(
            local,
            peer,
            "no socket of this process has the connection's ports (a proxy?); TCP_NODELAY not set"
        ),
        Err(e) => tracing::debug!(error = %e, "TCP_NODELAY not set"),
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use std::os::fd::BorrowedFd;

    pub(super) const CAN_FIND_SOCKETS: bool = true;

    /// Sets TCP_NODELAY on the process's TCP socket from local port `local` to
    /// peer port `peer`; false when there is none.
    pub(super) fn set_on_socket(local: u16, peer: u16) -> std::io::Result<bool> {
        for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
            let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // SAFETY: the descriptor is only used for the calls below, which
            // read and set socket options. If another thread closes it
            // meanwhile, they fail (EBADF); if its number is reused at once,
            // they see that descriptor's addresses and type, and set the option
            // only on a TCP socket with the very same ports (harmless on any).
            // No memory is involved either way.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            if !matches!(socket.r#type(), Ok(socket2::Type::STREAM)) {
                continue; // not a socket, or not TCP (a Unix stream has no ports)
            }
            let (Ok(ours), Ok(theirs)) = (socket.local_addr(), socket.peer_addr()) else {
                continue; // not connected
            };
            let ports = ours.as_socket().zip(theirs.as_socket());
            if ports.is_some_and(|(o, t)| o.port() == local && t.port() == peer) {
                socket.set_tcp_nodelay(true)?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    /// Elsewhere the process's sockets are not listed: nothing is set.
    pub(super) const CAN_FIND_SOCKETS: bool = false;

    pub(super) fn set_on_socket(_local: u16, _peer: u16) -> std::io::Result<bool> {
        Ok(false)
    }
}
