//! Reload on file change: watch the folder of every file the config was read from (Kubernetes
//! ConfigMaps swap a `..data` symlink, editors write a new file and rename it over the old one,
//! so the file itself is the wrong thing to watch), wait until changes settle (`debounce`),
//! then reload. A change that leaves every file as it was is found by the digest and does
//! nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::Reloader;

/// The folders holding `sources`.
fn folders(sources: &[PathBuf]) -> BTreeSet<PathBuf> {
    sources
        .iter()
        .filter_map(|p| p.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .collect()
}

/// Watches the config's folders and reloads on change until `stop`; after each reload the
/// watched set follows the files the config now reads.
pub async fn run(reloader: Arc<Reloader>, debounce: Duration, mut stop: watch::Receiver<bool>) {
    let (changed, mut changes) = mpsc::unbounded_channel();
    let debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        if let Ok(events) = result
            && events.iter().any(|e| !e.kind.is_access())
        {
            let _ = changed.send(());
        }
    });
    let mut debouncer = match debouncer {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot watch the config files; reload with SIGHUP or the admin listener");
            return;
        }
    };
    let mut watched = BTreeSet::new();
    loop {
        let wanted = folders(&reloader.current().await.sources);
        for gone in watched.difference(&wanted) {
            let _ = debouncer.unwatch(gone);
        }
        for folder in wanted.difference(&watched) {
            if let Err(e) = debouncer.watch(folder, RecursiveMode::NonRecursive) {
                warn!(folder = %folder.display(), error = %e, "cannot watch a config folder");
            }
        }
        watched = wanted;
        tokio::select! {
            change = changes.recv() => if change.is_none() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        // Several batches may have queued while the last reload ran: one reload covers them.
        while changes.try_recv().is_ok() {}
        debug!("config files changed");
        let _ = reloader.reload("file change").await;
    }
}
