//! Pagination on the wire, the same for every list: `limit` (1–100, default 20) and `offset`
//! (or, on conversations, messages and appointments, the cursor `after`) in the query;
//! `items`, `total`, `limit`, `offset` and `has_more` in the answer, whatever the list.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::domain::page::{Page, PageRequest};

/// `limit`/`offset` pagination.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// Items to skip.
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

impl PageParams {
    pub fn resolve(&self) -> Result<PageRequest, ApiError> {
        PageRequest::new(self.limit, self.offset).map_err(ApiError::Validation)
    }
}

/// `limit` with `offset` or the cursor `after`, for lists that grow while you read them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorPageParams {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// Items to skip (not with `after`).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// The `id` of the last item of the previous page: the next page starts after it, and
    /// does not shift when new items arrive meanwhile.
    #[param(value_type = Option<String>, format = Uuid, example = "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11")]
    pub after: Option<String>,
}

impl CursorPageParams {
    pub fn resolve(&self) -> Result<PageRequest, ApiError> {
        PageRequest::with_cursor(self.limit, self.offset, self.after.as_deref())
            .map_err(ApiError::Validation)
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    /// Whether items follow this page.
    pub has_more: bool,
}

impl<T> Paged<T> {
    /// The wire page of `page`, its items shown through `view`.
    pub fn of<U>(page: Page<U>, req: PageRequest, view: impl FnMut(U) -> T) -> Self {
        let has_more = page.has_more();
        Self {
            total: page.total,
            items: page.items.into_iter().map(view).collect(),
            limit: req.limit,
            offset: req.offset,
            has_more,
        }
    }
}
