//! Registering the mailbox's agents (issue 12), shared by the admin API and the CLI: handle,
//! display name, description, active flag, and a secret shown once at creation and rotation.
//! Cache eviction is the caller's business (the CLI has none; other instances follow the
//! change log).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminError, AdminResult, get_org};
use crate::auth::agents::{generate_secret, hash_secret};
use crate::domain::agents::{AgentHandle, agent_text};
use crate::domain::{FieldError, OrgId};
use crate::store::Store;
use crate::store::agents::{Agent, AgentChange, NewAgentRecord};

const DISPLAY_NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 500;

/// Body of `POST /api/v1/admin/orgs/{org}/agents`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// 1–64 characters of `a-z`, `0-9`, `.`, `_`, `-`; unique in the organisation.
    #[schema(example = "billing-bot")]
    pub handle: String,
    /// 1–100 characters; the handle when absent.
    #[schema(example = "Billing assistant")]
    pub display_name: Option<String>,
    /// Up to 500 characters.
    #[schema(example = "Answers questions about invoices.")]
    pub description: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

/// Body of `PATCH /api/v1/admin/orgs/{org}/agents/{handle}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    #[schema(example = "Billing assistant")]
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// false: its tokens stop working and nobody can write to it.
    pub active: Option<bool>,
}

/// An agent with its secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentWithSecret {
    #[serde(flatten)]
    pub agent: Agent,
    /// The agent's secret, for `POST /api/v1/auth/token`. Store it now: it cannot be shown
    /// again (rotate it to get a new one).
    #[schema(example = "as_Xk3v9QmZp2Lb0Wq1e2R3t4Y5u6I7o8P9a0S1d2F3")]
    pub agent_secret: String,
}

pub fn parse_handle(raw: &str) -> AdminResult<AgentHandle> {
    AgentHandle::parse(raw)
        .map_err(|e| AdminError::Validation(vec![FieldError::new("handle", e.0)]))
}

async fn new_secret() -> AdminResult<(String, String)> {
    let secret = generate_secret();
    let plaintext = secret.clone();
    let hash = tokio::task::spawn_blocking(move || hash_secret(&plaintext))
        .await
        .map_err(|e| AdminError::Hashing(e.to_string()))?
        .map_err(|e| AdminError::Hashing(e.to_string()))?;
    Ok((secret, hash))
}

/// Registers an agent; its secret is in the answer, once.
pub async fn create_agent(
    store: &Store,
    org: &OrgId,
    req: &NewAgent,
) -> AdminResult<AgentWithSecret> {
    let mut errors = Vec::new();
    let handle = AgentHandle::parse(&req.handle)
        .map_err(|e| errors.push(FieldError::new("handle", e.0)))
        .ok();
    let display_name = agent_text(
        req.display_name.as_deref().unwrap_or(&req.handle),
        DISPLAY_NAME_MAX,
        false,
    )
    .map_err(|e| errors.push(FieldError::new("display_name", e.0)))
    .ok();
    let description = agent_text(
        req.description.as_deref().unwrap_or(""),
        DESCRIPTION_MAX,
        true,
    )
    .map_err(|e| errors.push(FieldError::new("description", e.0)))
    .ok();
    let (Some(handle), Some(display_name), Some(description)) = (handle, display_name, description)
    else {
        return Err(AdminError::Validation(errors));
    };
    get_org(store, org).await?;
    let (secret, hash) = new_secret().await?;
    let agent = store
        .create_agent(
            org,
            &NewAgentRecord {
                handle: &handle,
                display_name: &display_name,
                description: &description,
                active: req.active.unwrap_or(true),
                secret_hash: &hash,
                now: crate::domain::now(),
            },
        )
        .await?;
    Ok(AgentWithSecret {
        agent,
        agent_secret: secret,
    })
}

pub async fn list_agents(store: &Store, org: &OrgId) -> AdminResult<Vec<Agent>> {
    get_org(store, org).await?;
    Ok(store.list_agents(org).await?)
}

pub async fn get_agent(store: &Store, org: &OrgId, handle: &AgentHandle) -> AdminResult<Agent> {
    store.get_agent(org, handle).await?.ok_or_else(|| {
        AdminError::Store(crate::store::StoreError::NotFound(format!(
            "organisation {org} has no agent {handle}"
        )))
    })
}

/// Changes the fields present in `req`.
pub async fn update_agent(
    store: &Store,
    org: &OrgId,
    handle: &AgentHandle,
    req: &UpdateAgent,
) -> AdminResult<Agent> {
    let mut errors = Vec::new();
    let display_name = req.display_name.as_deref().and_then(|d| {
        agent_text(d, DISPLAY_NAME_MAX, false)
            .map_err(|e| errors.push(FieldError::new("display_name", e.0)))
            .ok()
    });
    let description = req.description.as_deref().and_then(|d| {
        agent_text(d, DESCRIPTION_MAX, true)
            .map_err(|e| errors.push(FieldError::new("description", e.0)))
            .ok()
    });
    if !errors.is_empty() {
        return Err(AdminError::Validation(errors));
    }
    Ok(store
        .update_agent(
            org,
            handle,
            &AgentChange {
                display_name: display_name.as_deref(),
                description: description.as_deref(),
                active: req.active,
                secret_hash: None,
            },
            crate::domain::now(),
        )
        .await?)
}

/// Gives the agent a new secret (shown once); the old one, and every token minted with it,
/// stop working.
pub async fn rotate_secret(
    store: &Store,
    org: &OrgId,
    handle: &AgentHandle,
) -> AdminResult<AgentWithSecret> {
    let (secret, hash) = new_secret().await?;
    let agent = store
        .update_agent(
            org,
            handle,
            &AgentChange {
                secret_hash: Some(&hash),
                ..AgentChange::default()
            },
            crate::domain::now(),
        )
        .await?;
    Ok(AgentWithSecret {
        agent,
        agent_secret: secret,
    })
}
