//! The `/api` request body: a JSON object, refused in the API's error shape
//! otherwise. serde's derived `Deserialize` also takes a JSON array for a
//! struct (its fields by position), so `["alice","secret"]` would log in;
//! the document says every body is an object, and so does the server.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body parsed into `T` (use like `web::Json<T>`).
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parse a body that must be one JSON object.
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    from_value(value)
}

/// Read an already parsed body that must be one JSON object.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object, not {}",
            json_kind(&value)
        )));
    }
    let mut value = value;
    integral_numbers(&mut value);
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// JSON has one number type: `100.0` is the integer 100 to JSON Schema (and to
/// JavaScript, whose clients send it), but serde will not read it into an
/// integer field. Whole numbers in range become integers before the typed read.
fn integral_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // Within ±2^53 an f64 holds every integer exactly.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if f.fract() == 0.0 && f.abs() <= EXACT {
                    *n = serde_json::Number::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // `web::Json` checks the content type and the size limit (error::json_config)
        // and parses the text; the kind check and the typed read run on that value.
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move { Ok(JsonObject(from_value(value.await?.into_inner())?)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Login {
        #[allow(dead_code)]
        username: String,
    }

    #[test]
    fn an_object_parses_and_anything_else_is_refused_by_its_kind() {
        assert!(parse_object::<Login>(b" {\"username\": \"a\"}").is_ok());
        for (body, kind) in [
            (&b"[\"a\"]"[..], "an array"),
            (b"null", "null"),
            (b"\"a\"", "a string"),
            (b"3", "a number"),
        ] {
            let err = parse_object::<Login>(body).unwrap_err().to_string();
            assert!(err.contains(kind), "{err}");
        }
        let err = parse_object::<Login>(b"{\"username\": ").unwrap_err().to_string();
        assert!(err.contains("invalid JSON"), "{err}");
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct TopUp {
        amount: i64,
        weights: Vec<u32>,
    }

    #[test]
    fn whole_numbers_written_with_a_point_are_integers_and_fractions_are_not() {
        let parsed: TopUp = parse_object(br#"{"amount": -787.0, "weights": [2.0, 3]}"#).unwrap();
        assert_eq!(
            parsed,
            TopUp {
                amount: -787,
                weights: vec![2, 3]
            }
        );
        assert!(parse_object::<TopUp>(br#"{"amount": 1.5, "weights": []}"#).is_err());
        assert!(parse_object::<TopUp>(br#"{"amount": 1e300, "weights": []}"#).is_err());
    }
}
