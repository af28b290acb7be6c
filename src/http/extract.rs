//! Our own extractors, so that every bad input becomes a problem+json like everything else:
//! `Json` (content type, size, UTF-8, syntax and field paths), `Query`, `Path`, and the
//! authenticated `Principal` that the auth layer put in the request.
//!
//! They are also where text is checked: every string in a body, a query or a path passes
//! [`check_text`] here (no NUL, no control characters but tab and newlines), so a handler never
//! sees one and both backends accept exactly the same input.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Principal;
use crate::domain::text::{check_text, is_refused_char};
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

/// Deserialises `bytes`, telling syntax errors (400) from shape errors (422, with the path)
/// and refusing text with NUL or control characters (422, with the path).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::InvalidJson(format!(
            "The body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        )));
    }
    if may_hold_refused_char(bytes) {
        // Rare: a second, exact look to find the field. Invalid JSON falls through to the
        // syntax error below.
        if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
            let mut path = String::new();
            if let Some(err) = refused_text_in(&value, &mut path) {
                return Err(ApiError::Validation(vec![err]));
            }
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // serde appends " at line L column C"; the path already says where.
                let msg = inner.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                // A missing field is reported at its parent's path: name the field itself. (An
                // unknown field's path already ends with its name.)
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

/// Whether a (UTF-8) JSON body may hold a refused character: a raw DEL or C1 control, or a
/// `\u` escape of any refused character (raw C0 controls are a JSON syntax error already).
/// One pass with memchr; a false positive (`\\u0000`, an escaped backslash) only costs the
/// exact look.
fn may_hold_refused_char(bytes: &[u8]) -> bool {
    memchr::memchr3_iter(b'\\', 0x7f, 0xc2, bytes).any(|i| match bytes[i] {
        0x7f => true,
        // U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8.
        0xc2 => bytes.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b)),
        _ => bytes.get(i + 1..i + 6).is_some_and(|esc| {
            esc[0] == b'u'
                && std::str::from_utf8(&esc[1..])
                    .ok()
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .and_then(char::from_u32)
                    .is_some_and(is_refused_char)
        }),
    })
}

/// The first string (value or object key) in `value` that breaks the text rule, as a field
/// error whose path reads like serde's (`metadata.note`, `items[2].name`).
fn refused_text_in(value: &Value, path: &mut String) -> Option<FieldError> {
    let here = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) => check_text(s)
            .err()
            .map(|e| FieldError::new(here(path), e.0)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = refused_text_in(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if let Err(e) = check_text(key) {
                return Some(FieldError::new(here(path), format!("keys {}", e.0)));
            }
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let found = refused_text_in(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Path parameters: each segment is checked against the text rule (422 naming the
/// parameter) before it is deserialised, so `/appointments/APPT-%00` is a field error on
/// both backends rather than whatever the database makes of a NUL.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bad_path = |detail: String| ApiError::validation("path", detail);
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rej| bad_path(rej.body_text()))?;
        for (name, value) in &raw {
            check_text(value).map_err(|e| ApiError::validation(name, e.0))?;
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|rej| bad_path(rej.body_text()))
    }
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
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            check_text(&name)
                .map_err(|e| ApiError::validation("query", format!("names {}", e.0)))?;
            check_text(&value).map_err(|e| ApiError::validation(name.as_ref(), e.0))?;
        }
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
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized("Authentication required."))?;
        // Agent tokens open the mailbox (which reads the principal itself) and nothing else.
        if matches!(
            principal.credential,
            crate::auth::Credential::AgentToken { .. }
        ) {
            return Err(ApiError::Forbidden(
                "Agent tokens open the mailbox routes only.".to_owned(),
            ));
        }
        Ok(principal)
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
    fn refused_text_is_found_wherever_it_hides() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"name":"a\u0000b","items":[]}"#, "name"),
            (
                br#"{"name":"x","items":[],"meta":{"k":"\u001B[31m"}}"#,
                "meta.k",
            ),
            (br#"{"name":"x","items":[],"meta":{"k\u0000":"v"}}"#, "meta"),
            (
                br#"{"name":"x","items":[],"tags":["ok","\u007f"]}"#,
                "tags[1]",
            ),
            ("{\"name\":\"\u{85}\",\"items\":[]}".as_bytes(), "name"),
        ];
        for (body, field) in cases {
            let err = parse_json::<Value>(body).unwrap_err();
            assert_eq!(field_of(err), *field, "{}", String::from_utf8_lossy(body));
        }
        // An escaped backslash before `u0000` is text, not a NUL; tabs and newlines are fine.
        let ok: Value = parse_json(br#"{"name":"C:\\u0000","note":"a\tb\nc"}"#).unwrap();
        assert_eq!(ok["name"], "C:\\u0000");
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        assert!(matches!(
            parse_json::<Value>(b"{\"name\": \"\xff\"}"),
            Err(ApiError::InvalidJson(_))
        ));
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
