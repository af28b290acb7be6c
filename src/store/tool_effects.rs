//! The at-most-once record of side-effecting tool calls: a retried turn (same effect key)
//! gets the recorded result instead of acting twice.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::{Store, StoreError, StoreResult, is_unique_violation, on_pool, on_read};
use crate::domain::{ConversationId, OrgId};

impl Store {
    /// The recorded result of a side-effecting tool call, if it already ran.
    pub async fn tool_effect(
        &self,
        org: &OrgId,
        conversation: ConversationId,
        call_id: &str,
    ) -> StoreResult<Option<Value>> {
        let row: Option<Json<Value>> = on_read!(self, pool => sqlx::query_scalar(
            "SELECT result FROM tool_effects WHERE org_id = $1 AND conversation_id = $2 AND tool_call_id = $3")
            .bind(org.as_str()).bind(conversation).bind(call_id)
            .fetch_optional(pool).await)?;
        Ok(row.map(|j| j.0))
    }

    /// Records a side-effecting tool call's result. A second record for the same call is a
    /// `Conflict` (two runs raced; the first one's effect stands).
    pub async fn record_tool_effect(
        &self,
        org: &OrgId,
        conversation: ConversationId,
        call_id: &str,
        tool: &str,
        result: &Value,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let res = on_pool!(self, pool => sqlx::query(
            "INSERT INTO tool_effects (org_id, conversation_id, tool_call_id, tool_name, result, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(org.as_str()).bind(conversation).bind(call_id).bind(tool).bind(Json(result)).bind(now)
            .execute(pool).await.map(|r| r.rows_affected()));
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "tool call {call_id} already ran"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}
