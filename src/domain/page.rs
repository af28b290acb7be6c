//! Pagination, the same for every list: `limit` 1–100 (default 20) and `offset` ≥ 0 in,
//! the items and the total out.

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
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl PageRequest {
    /// Checks `limit` (1–100, default 20) and `offset` (≥ 0, default 0), reporting both.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, Vec<FieldError>> {
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
        if errors.is_empty() {
            Ok(Self { limit, offset })
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
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
        }
    }

    /// Whether items follow this page.
    pub fn has_more(&self, req: PageRequest) -> bool {
        req.offset + i64::try_from(self.items.len()).unwrap_or(i64::MAX) < self.total
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
    fn a_page_knows_whether_more_follow() {
        let req = PageRequest {
            limit: 2,
            offset: 2,
        };
        let page = Page {
            items: vec![1, 2],
            total: 5,
        };
        assert!(page.has_more(req));
        let last = Page {
            items: vec![5],
            total: 5,
        };
        assert!(!last.has_more(PageRequest {
            limit: 2,
            offset: 4
        }));
    }
}
