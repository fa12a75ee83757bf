//! Convex's encoded JSON for arguments: `Int64`, bytes and special floats, and the checks
//! Convex applies (no `$`-prefixed field names, no integer that a float64 can't hold).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Largest integer a float64 holds exactly; plain JSON numbers beyond it are refused.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// An `i64` that reaches Convex as an Int64 (`v.int64()`), not as a float64 number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Int64(pub i64);

/// Bytes that reach Convex as an `ArrayBuffer` (`v.bytes()`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

/// A float64 that may be NaN, ±Infinity or -0 (plain JSON can't carry those).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Float(pub f64);

fn single<S: Serializer>(s: S, key: &str, value: &str) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

impl Serialize for Int64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        single(s, "$integer", &STANDARD.encode(self.0.to_le_bytes()))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        single(s, "$bytes", &STANDARD.encode(&self.0))
    }
}

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        if f.is_finite() && !(f == 0.0 && f.is_sign_negative()) {
            s.serialize_f64(f)
        } else {
            single(s, "$float", &STANDARD.encode(f.to_le_bytes()))
        }
    }
}

/// `#[serde(with = "svctoken_client::int64")]` for an `i64` field: sent as a Convex Int64;
/// read back from a Convex `json` answer (a decimal string), a number, or `{"$integer"}`.
pub mod int64 {
    use super::*;

    /// Serialises as `{"$integer": ...}`.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        Int64(*v).serialize(s)
    }

    /// Accepts `"123"`, `123` or `{"$integer": "<base64>"}`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => s.parse().map_err(de::Error::custom),
            Value::Number(n) => n.as_i64().ok_or_else(|| de::Error::custom("not an i64")),
            Value::Object(m) => decode_integer(&m).ok_or_else(|| de::Error::custom("bad $integer")),
            other => Err(de::Error::custom(format!("expected an Int64, got {other}"))),
        }
    }
}

fn decode_integer(m: &Map<String, Value>) -> Option<i64> {
    let bytes = STANDARD.decode(m.get("$integer")?.as_str()?).ok()?;
    Some(i64::from_le_bytes(bytes.try_into().ok()?))
}

/// Converts `args` to Convex's encoded JSON and checks it: an object at the top, field names
/// not starting with `$` (except the encodings above), integers within ±2^53 - 1 unless
/// wrapped in [`Int64`]. NaN or infinite `f64`s must be wrapped in [`Float`] (serde_json
/// would silently turn them into `null`).
pub fn encode_args<T: Serialize + ?Sized>(args: &T) -> Result<Value> {
    let value = serde_json::to_value(args).map_err(|e| Error::Encode(e.to_string()))?;
    if !value.is_object() {
        return Err(Error::Encode(format!(
            "arguments must be an object (a struct or a map), not {value}"
        )));
    }
    check(&value, "args")?;
    Ok(value)
}

fn check(value: &Value, at: &str) -> Result<()> {
    match value {
        Value::Number(n) => {
            let exact = n.as_i64().map(i64::unsigned_abs).or(n.as_u64());
            if exact.is_some_and(|x| x > MAX_SAFE_INTEGER) {
                return Err(Error::Encode(format!(
                    "{at}: {n} is beyond what a Convex float64 holds exactly; wrap it in Int64"
                )));
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check(v, &format!("{at}[{i}]"))),
        Value::Object(map) => {
            if is_encoded(map) {
                return Ok(());
            }
            for (k, v) in map {
                if k.starts_with('$') {
                    return Err(Error::Encode(format!(
                        "{at}.{k}: field names starting with '$' are reserved by Convex"
                    )));
                }
                check(v, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn is_encoded(map: &Map<String, Value>) -> bool {
    if map.len() != 1 {
        return false;
    }
    let Some((k, Value::String(v))) = map.iter().next() else {
        return false;
    };
    let len = STANDARD.decode(v).map(|b| b.len());
    match k.as_str() {
        "$integer" | "$float" => len == Ok(8),
        "$bytes" => len.is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_as_convex_does() {
        #[derive(Serialize)]
        struct Args {
            #[serde(with = "crate::int64")]
            id: i64,
            n: f64,
            blob: Bytes,
            nan: Float,
            small: i64,
        }
        let v = encode_args(&Args {
            id: -2,
            n: 1.5,
            blob: Bytes(vec![1, 2, 3]),
            nan: Float(f64::NAN),
            small: 7,
        })
        .expect("encodes");
        assert_eq!(
            v["id"],
            json!({"$integer": "/v////////8="}),
            "little-endian two's complement"
        );
        assert_eq!(v["n"], json!(1.5));
        assert_eq!(v["blob"], json!({"$bytes": "AQID"}));
        assert_eq!(
            v["nan"],
            json!({"$float": STANDARD.encode(f64::NAN.to_le_bytes())})
        );
        assert_eq!(
            serde_json::to_value(Float(-0.0)).expect("ok"),
            json!({"$float": "AAAAAAAAAIA="})
        );
        assert_eq!(serde_json::to_value(Float(2.0)).expect("ok"), json!(2.0));
        assert_eq!(v["small"], json!(7));
        assert_eq!(
            serde_json::to_value(Int64(1)).expect("ok"),
            json!({"$integer": "AQAAAAAAAAA="})
        );
    }

    #[test]
    fn refuses_what_convex_refuses() {
        assert!(encode_args(&json!([1])).is_err(), "not an object");
        assert!(encode_args(&json!({"$set": 1})).is_err());
        assert!(
            encode_args(&json!({"a": {"$integer": "AQ=="}})).is_err(),
            "wrong length"
        );
        assert!(encode_args(&json!({"a": [{"b": {"$x": 1}}]})).is_err());
        let err = encode_args(&json!({"big": 9_007_199_254_740_993u64})).expect_err("too big");
        assert!(err.to_string().contains("Int64"), "{err}");
        assert!(encode_args(&json!({"ok": 9_007_199_254_740_991u64})).is_ok());
    }

    #[test]
    fn reads_int64_back_in_every_form() {
        #[derive(Deserialize)]
        struct R {
            #[serde(with = "crate::int64")]
            v: i64,
        }
        let encoded = format!(
            r#"{{"v":{{"$integer":"{}"}}}}"#,
            STANDARD.encode((-5i64).to_le_bytes())
        );
        for text in [r#"{"v":"-5"}"#, r#"{"v":-5}"#, encoded.as_str()] {
            let r: R = serde_json::from_str(text).expect(text);
            assert_eq!(r.v, -5, "{text}");
        }
    }
}
