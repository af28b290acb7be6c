//! The browser-origin allow-list: `CORS_ORIGINS` plus every active organisation's
//! `allowed_origins`. Read on every cross-origin request, so it is an immutable set behind an
//! `Arc` that changes are swapped in as a whole (readers never wait on a writer's work).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;

use crate::store::Store;

#[derive(Clone, Default)]
pub struct CorsOrigins {
    global: Arc<HashSet<String>>,
    current: Arc<RwLock<Arc<HashSet<String>>>>,
}

impl CorsOrigins {
    pub fn new(global: &[String]) -> Self {
        let global: HashSet<String> = global
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        let current = Arc::new(RwLock::new(Arc::new(global.clone())));
        Self {
            global: Arc::new(global),
            current,
        }
    }

    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let set = match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        set.contains(&origin.to_ascii_lowercase())
    }

    /// Re-reads the organisations' origins; keeps the old set if the database fails.
    pub async fn reload(&self, store: &Store) {
        match store.active_org_origins().await {
            Ok(origins) => {
                let mut set = (*self.global).clone();
                set.extend(origins);
                let fresh = Arc::new(set);
                match self.current.write() {
                    Ok(mut guard) => *guard = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::cause_chain(&e), "could not reload CORS origins")
            }
        }
    }
}
