//! SIGTERM (Kubernetes stopping a pod, `kill`) and SIGINT (Ctrl-C) end a sync
//! cleanly instead of killing it. Scopes not yet applied are given up: their
//! staged rows and scope locks go with their connections, and an apply in flight
//! rolls back, so nothing is half written, as after a crash. Unlike a crash, the
//! run is then recorded as failed, naming the signal, at once rather than by the
//! next run, and the process exits with code 1. A second signal exits at once.

use std::sync::OnceLock;

use tokio::sync::watch;

/// The signal that arrived, if one did. A sender alone: each waiter subscribes.
fn sender() -> &'static watch::Sender<Option<&'static str>> {
    static SENDER: OnceLock<watch::Sender<Option<&'static str>>> = OnceLock::new();
    SENDER.get_or_init(|| watch::channel(None).0)
}

/// Starts listening for SIGTERM and SIGINT (once per process; later calls do
/// nothing). Until it is called, the signals keep their default effect; once it
/// returns, they are caught. Must be called within a tokio runtime.
pub fn listen() {
    static LISTENING: OnceLock<()> = OnceLock::new();
    LISTENING.get_or_init(|| {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered here, before returning, so that no signal falls between
        // this call and the task's first poll. One that cannot be caught keeps
        // its default effect.
        let catch = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(stream) => Some((stream, name)),
            Err(e) => {
                tracing::warn!(signal = name, error = %e, "cannot catch it; it will end the process at once");
                None
            }
        };
        let caught: Vec<_> = [
            catch(SignalKind::terminate(), "SIGTERM"),
            catch(SignalKind::interrupt(), "SIGINT"),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (mut stream, name) in caught {
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if sender().borrow().is_some() {
                        eprintln!("error: {name} again: exiting without recording the run");
                        std::process::exit(1);
                    }
                    tracing::warn!(
                        signal = name,
                        "interrupted: giving up the scopes not yet applied and recording the run"
                    );
                    sender().send_replace(Some(name));
                }
            });
        }
    });
}

/// Resolves with the signal's name once one has arrived; never, otherwise.
pub async fn interrupted() -> &'static str {
    let mut rx = sender().subscribe();
    let signal = *rx
        .wait_for(Option::is_some)
        .await
        .expect("the sender is a static, never dropped");
    signal.unwrap_or_default()
}
