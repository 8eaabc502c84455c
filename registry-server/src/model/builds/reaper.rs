//! The background task that takes back expired leases (see
//! [`super::jobs::reap`]), every `reaper_interval_seconds`.

use std::time::Duration;

use crate::db::now_ms;
use crate::serve::AppState;

/// Runs until the process ends; errors are logged and the next round goes on.
pub async fn run(state: AppState) {
    let every = Duration::from_secs(state.config.builds.reaper_interval_seconds);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match super::jobs::reap(&state.db.pool, now_ms()).await {
            Ok(changed) => {
                let jobs: Vec<_> = changed.iter().map(|j| j.to_api()).collect();
                super::notify(&state, &jobs);
            }
            Err(e) => tracing::warn!("build lease reaper: {e}"),
        }
    }
}
