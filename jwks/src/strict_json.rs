//! JSON read the strict way: an object whose member names are unique at every depth.
//!
//! RFC 7515 section 5.2 and RFC 7519 section 7.2 let a parser either reject duplicate member
//! names or keep the last one; RFC 8725 section 3.8 asks for the first. Two parsers that pick
//! differently see two different tokens under one signature (`{"sub":"a","sub":"admin"}`), so
//! every JOSE header and claims set this crate reads goes through here.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON object with unique member names at every depth.
pub(crate) fn object(bytes: &[u8]) -> Result<Map<String, Value>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut deserializer)?;
    deserializer.end()?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(de::Error::custom("not a JSON object")),
    }
}

/// Builds a [`Value`] like `serde_json` does, but refuses a repeated member name.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom("a member name appears twice"));
            }
            let value = access.next_value_seed(Strict)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_like_serde_json() {
        let text = br#"{"a":1,"b":[true,null,-2,1.5,"x"],"c":{"d":{}},"e":18446744073709551615}"#;
        let strict = object(text).expect("valid");
        let lenient: Value = serde_json::from_slice(text).expect("valid");
        assert_eq!(Value::Object(strict), lenient);
    }

    #[test]
    fn refuses_repeated_names_at_any_depth_and_non_objects() {
        for text in [
            r#"{"sub":"a","sub":"admin"}"#,
            r#"{"act":{"sub":"a","sub":"b"}}"#,
            r#"{"x":[{"k":1,"k":1}]}"#,
            r#"["not","an","object"]"#,
            r#""text""#,
            r#"{"a":1} trailing"#,
            r#"{"a":1}{"b":2}"#,
        ] {
            assert!(object(text.as_bytes()).is_err(), "{text}");
        }
        // The same name in different objects is fine.
        assert!(object(br#"{"sub":"a","act":{"sub":"b","act":{"sub":"c"}}}"#).is_ok());
    }
}
