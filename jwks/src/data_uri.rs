//! `data:` URIs that carry a JWKS, for verifiers that must never fetch (Convex's `jwks`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Jwks;

/// The prefix Convex expects before the base64 of the JWKS.
pub const DATA_URI_PREFIX: &str = "data:text/plain;charset=utf-8;base64,";

/// Renders `jwks` as `data:text/plain;charset=utf-8;base64,<standard base64 of its JSON>`.
pub fn data_uri(jwks: &Jwks) -> String {
    let mut uri = String::from(DATA_URI_PREFIX);
    STANDARD.encode_string(jwks.to_json(), &mut uri);
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_back_to_the_same_set() {
        let jwks: Jwks = serde_json::from_str(
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}]}"#,
        )
        .expect("valid");
        let uri = data_uri(&jwks);
        let body = uri.strip_prefix(DATA_URI_PREFIX).expect("prefix");
        let decoded: Jwks =
            serde_json::from_slice(&STANDARD.decode(body).expect("standard base64")).expect("json");
        assert_eq!(decoded, jwks);
    }
}
