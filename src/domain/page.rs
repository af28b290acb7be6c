//! Pagination, the same for every list: `limit` 1–100 (default 20) and either `offset` ≥ 0 or,
//! on the long lists (conversations, messages, appointments), the cursor `after` (the id of
//! the last item of the previous page, so pages do not shift when items arrive); the items,
//! the total and whether more follow out.

use uuid::Uuid;

use super::FieldError;

/// Largest page.
pub const MAX_LIMIT: i64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 20;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
    /// Items after this one, in the list's order (then `offset` is 0).
    pub after: Option<Uuid>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
            after: None,
        }
    }
}

impl PageRequest {
    /// Checks `limit` (1–100, default 20) and `offset` (≥ 0, default 0), reporting both.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, Vec<FieldError>> {
        Self::with_cursor(limit, offset, None)
    }

    /// Like [`PageRequest::new`], with the cursor `after` (an item id), which excludes a
    /// non-zero `offset`.
    pub fn with_cursor(
        limit: Option<i64>,
        offset: Option<i64>,
        after: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let offset = offset.unwrap_or(0);
        let mut errors = Vec::new();
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        if offset < 0 {
            errors.push(FieldError::new("offset", "must not be negative"));
        }
        let after = match after.map(|a| Uuid::try_parse(a.trim())) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                errors.push(FieldError::new(
                    "after",
                    "must be the id (a UUID) of the last item of the previous page",
                ));
                None
            }
        };
        if after.is_some() && offset != 0 {
            errors.push(FieldError::new(
                "offset",
                "cannot be combined with after; page with one or the other",
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                limit,
                offset,
                after,
            })
        } else {
            Err(errors)
        }
    }
}

/// One page of a list, with the size of the whole list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// Whether items follow this page.
    pub more: bool,
}

impl<T> Page<T> {
    /// A page read with `LIMIT/OFFSET`: more follow when the total goes beyond it.
    pub fn by_offset(items: Vec<T>, total: i64, req: PageRequest) -> Self {
        let more = req.offset + i64::try_from(items.len()).unwrap_or(i64::MAX) < total;
        Self { items, total, more }
    }

    /// A page read with one row beyond `req.limit` (works for offsets and cursors alike):
    /// more follow when that extra row came back; it is dropped.
    pub fn by_peek(mut items: Vec<T>, total: i64, req: PageRequest) -> Self {
        let limit = usize::try_from(req.limit).unwrap_or(0);
        let more = items.len() > limit;
        items.truncate(limit);
        Self { items, total, more }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            more: self.more,
        }
    }

    /// Whether items follow this page.
    pub fn has_more(&self) -> bool {
        self.more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_offsets_are_checked_together() {
        assert_eq!(
            PageRequest::new(None, None).unwrap(),
            PageRequest::default()
        );
        let errs = PageRequest::new(Some(0), Some(-1)).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "offset"]);
        assert!(PageRequest::new(Some(101), None).is_err());
    }

    #[test]
    fn a_cursor_is_a_uuid_and_excludes_an_offset() {
        let id = Uuid::now_v7();
        let req = PageRequest::with_cursor(Some(5), None, Some(&id.to_string())).unwrap();
        assert_eq!(req.after, Some(id));
        let errs = PageRequest::with_cursor(None, Some(3), Some(&id.to_string())).unwrap_err();
        assert_eq!(errs[0].field, "offset");
        let errs = PageRequest::with_cursor(None, None, Some("APPT-1")).unwrap_err();
        assert_eq!(errs[0].field, "after");
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let req = PageRequest {
            limit: 2,
            offset: 2,
            after: None,
        };
        assert!(Page::by_offset(vec![1, 2], 5, req).has_more());
        let last = PageRequest {
            limit: 2,
            offset: 4,
            after: None,
        };
        assert!(!Page::by_offset(vec![5], 5, last).has_more());
        let peeked = Page::by_peek(vec![1, 2, 3], 9, req);
        assert_eq!((peeked.items.len(), peeked.has_more()), (2, true));
        assert!(!Page::by_peek(vec![1, 2], 9, req).has_more());
    }
}
