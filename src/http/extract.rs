//! Our own extractors, so that every bad input becomes a problem+json like everything else:
//! `Json` (content type, size, syntax and field paths), `Query`, and the authenticated
//! `Principal` that the auth layer put in the request.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::http::error::{ApiError, FieldError};

/// A JSON body, checked for content type, size (413), syntax (400 `INVALID_JSON`) and shape
/// (422 `VALIDATION_ERROR` naming the field's path).
pub struct Json<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        if !ct_ok {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("The request body could not be read.".to_owned())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Deserialises `bytes`, telling syntax errors (400) from shape errors (422, with the path).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // serde appends " at line L column C"; the path already says where.
                let msg = inner.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                // A missing field is reported at its parent's path: name the field itself.
                let missing = msg
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next());
                let field = match (path.as_str(), missing) {
                    (".", Some(name)) => name.to_owned(),
                    (_, Some(name)) => format!("{path}.{name}"),
                    (".", None) => "body".to_owned(),
                    (_, None) => path,
                };
                ApiError::Validation(vec![FieldError::new(field, msg)])
            }
            // serde_json reports some type mismatches (an integer where an enum belongs) as
            // syntax errors; well-formed JSON is never INVALID_JSON.
            _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
                ApiError::validation(
                    if path == "." { "body".to_owned() } else { path },
                    inner.to_string(),
                )
            }
            _ => ApiError::InvalidJson(format!("The body is not valid JSON: {inner}")),
        }
    })
}

/// A UUID from the path; a malformed one is a 422 naming `field`.
pub fn path_uuid(field: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    crate::domain::parse_uuid(raw).map_err(|e| ApiError::validation(field, e.0))
}

/// A UUID-backed id (`ConversationId`, `RunId`, …) from the path; a 422 naming `field` when
/// malformed.
pub fn path_id<T: From<uuid::Uuid>>(field: &str, raw: &str) -> Result<T, ApiError> {
    path_uuid(field, raw).map(T::from)
}

/// Query parameters; a bad one is a 422 naming it.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let field = err.path().to_string();
                ApiError::validation(
                    if field == "." {
                        "query".to_owned()
                    } else {
                        field
                    },
                    err.into_inner().to_string(),
                )
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Present on every route behind the auth layer; absent means a routing mistake, and
        // failing closed is the safe answer to that.
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized("Authentication required."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Validation(e) => e[0].field.clone(),
            other => format!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field_path() {
        let err = parse_json::<Body>(br#"{"name":"x","items":[{"n":1},{"n":"two"}]}"#).unwrap_err();
        assert_eq!(field_of(err), "items[1].n");
        let err = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(field_of(err), "name");
        let err = parse_json::<Body>(br#"{"name":"x","items":[{}]}"#).unwrap_err();
        assert_eq!(field_of(err), "items[0].n");
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        assert!(matches!(
            parse_json::<Body>(b"{\"name\": "),
            Err(ApiError::InvalidJson(_))
        ));
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
    }
}
