//! Conversations as callers may use them — the one place the ownership rule is applied: an end
//! user sees only their own conversations (another user's is 403), an API-key caller all of
//! its organisation's, and another organisation's are 404 like unknown ids. Every handler,
//! the agent and the run routes go through here; the store only ever sees the org id.

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use crate::domain::conversation::Caller;
use crate::domain::conversation::{Conversation, Message, NotOwner, check_owner};
use crate::domain::page::{Page, PageRequest};
use crate::domain::{ConversationId, EndUserId, MessageId};
use crate::store::conversations::ConversationFilter;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("no such conversation")]
    NotFound,
    #[error(transparent)]
    NotOwner(#[from] NotOwner),
    #[error("no such message")]
    MessageNotFound,
    /// Changing it now would break the turn that holds its lease.
    #[error("a turn of this conversation is running")]
    Busy,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ConversationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::NotFound,
            StoreError::Conflict(_) => Self::Busy,
            other => Self::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, ConversationError>;

/// A live conversation the caller may use.
pub async fn visible(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
) -> Result<Conversation> {
    let conv = store
        .get_conversation(caller.org, id)
        .await?
        .ok_or(ConversationError::NotFound)?;
    conv.check_owner(caller.end_user)?;
    Ok(conv)
}

/// The session `id` (a conversation whose id the client chose), created at its first message;
/// an id another organisation uses looks like an unknown one.
pub async fn session(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
    now: DateTime<Utc>,
) -> Result<Conversation> {
    let end_user = caller.end_user.map(EndUserId::as_str);
    let conv = store.ensure_session(caller.org, id, end_user, now).await?;
    conv.check_owner(caller.end_user)?;
    Ok(conv)
}

/// Starts a conversation owned by the caller.
pub async fn create(
    store: &Store,
    caller: Caller<'_>,
    title: &str,
    metadata: &Value,
    now: DateTime<Utc>,
) -> Result<Conversation> {
    let end_user = caller.end_user.map(EndUserId::as_str);
    Ok(store
        .create_conversation(caller.org, end_user, title, metadata, now)
        .await?)
}

/// The caller's live conversations, newest first: an end user's own, or all of the org's.
pub async fn list(
    store: &Store,
    caller: Caller<'_>,
    archived: Option<bool>,
    page: PageRequest,
) -> Result<Page<Conversation>> {
    let filter = ConversationFilter {
        end_user: caller.end_user.map(EndUserId::as_str),
        archived,
    };
    Ok(store.list_conversations(caller.org, &filter, page).await?)
}

/// Changes title, metadata and/or archived.
pub async fn update(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
    title: Option<&str>,
    metadata: Option<&Value>,
    archived: Option<bool>,
    now: DateTime<Utc>,
) -> Result<Conversation> {
    visible(store, caller, id).await?;
    store
        .update_conversation(caller.org, id, title, metadata, archived, now)
        .await?
        .ok_or(ConversationError::NotFound)
}

/// Soft-deletes a conversation and its messages.
pub async fn delete(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
    now: DateTime<Utc>,
) -> Result<()> {
    visible(store, caller, id).await?;
    if store.soft_delete_conversation(caller.org, id, now).await? {
        Ok(())
    } else {
        Err(ConversationError::NotFound)
    }
}

/// Erases a conversation for good (GDPR): its messages, checkpoints, runs and what skills kept
/// about it. Soft-deleted conversations can be erased too: erasure is the stronger request.
pub async fn erase(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
    now: DateTime<Utc>,
) -> Result<()> {
    let owner = store
        .conversation_owner(caller.org, id)
        .await?
        .ok_or(ConversationError::NotFound)?;
    check_owner(owner.as_deref(), caller.end_user)?;
    if store.erase_conversation(caller.org, id, now).await? {
        Ok(())
    } else {
        Err(ConversationError::NotFound)
    }
}

/// A page of a conversation's live messages.
pub async fn messages(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
    newest_first: bool,
    page: PageRequest,
) -> Result<(Conversation, Page<Message>)> {
    let conv = visible(store, caller, id).await?;
    let messages = store
        .list_messages(caller.org, conv.id, newest_first, page)
        .await?;
    Ok((conv, messages))
}

/// Soft-deletes one message.
pub async fn delete_message(
    store: &Store,
    caller: Caller<'_>,
    id: ConversationId,
    message: MessageId,
    now: DateTime<Utc>,
) -> Result<()> {
    visible(store, caller, id).await?;
    if store
        .soft_delete_message(caller.org, id, message, now)
        .await?
    {
        Ok(())
    } else {
        Err(ConversationError::MessageNotFound)
    }
}
