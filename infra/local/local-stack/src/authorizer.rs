//! API Gateway's JWT authorizer (HTTP API) in front of the console's routes, as `template.yaml`
//! configures it: the token from the `Authorization` header (bare or after `Bearer `), an RSA
//! signature by a key of the user pool's JWKS (fetched once, at start), `iss` the pool's issuer,
//! `aud` (or, without `aud`, `client_id`) the app client, `exp` in the future, `nbf` and `iat`
//! not. Anything else is `401 {"message":"Unauthorized"}` with a `www-authenticate` challenge
//! ([`Refusal::challenge`]) and the function is not called; a verified token's claims reach
//! the function in `requestContext.authorizer.jwt`, rendered as API Gateway renders them
//! (every claim a string, arrays as `[a b]`).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Where the authorizer reads the token (the template's `IdentitySource`).
pub const IDENTITY_SOURCE: &str = "$request.header.Authorization";
/// API Gateway verifies RSA signatures only; Cognito signs with RS256.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];

/// The issuer of a Cognito user pool's tokens (moto's tokens carry the same).
pub fn issuer(region: &str, user_pool_id: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}")
}

/// Why a request was refused (logged, and told in the 401's `www-authenticate` header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no Authorization header")]
    NoToken,
    #[error("the Authorization header is not one token")]
    Malformed,
    #[error("the token names no key of the user pool")]
    UnknownKey,
    #[error("the token does not verify: {0}")]
    Invalid(String),
    // API Gateway's own words for this case (its JWT authorizer troubleshooting guide).
    #[error("the token does not have a valid audience")]
    WrongAudience,
    #[error("the token was issued in the future")]
    IssuedInTheFuture,
}

impl Refusal {
    /// The 401's `www-authenticate` value, in the form API Gateway documents for a refused
    /// token (`Bearer scope="" error="invalid_token" error_description="…"`); a request without
    /// a token gets the bare scheme, as RFC 6750 asks when no credentials were sent.
    pub fn challenge(&self) -> String {
        match self {
            Refusal::NoToken => "Bearer".to_owned(),
            refusal => {
                let description = refusal.to_string().replace(['"', '\\'], "'");
                format!(
                    "Bearer scope=\"\" error=\"invalid_token\" error_description=\"{description}\""
                )
            }
        }
    }
}

/// A verified token as the function sees it: `requestContext.authorizer.jwt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJwt {
    pub claims: BTreeMap<String, String>,
    /// The token's `scope` (access tokens); `None` for ID tokens, which have none.
    pub scopes: Option<Vec<String>>,
}

impl VerifiedJwt {
    /// The `requestContext.authorizer` object of the payload v2 event.
    pub fn event_authorizer(&self) -> Value {
        json!({ "jwt": { "claims": self.claims, "scopes": self.scopes } })
    }
}

/// The authorizer of the console's routes: one issuer, its audiences, the pool's keys.
pub struct JwtAuthorizer {
    audience: Vec<String>,
    keys: JwkSet,
    validation: Validation,
}

impl JwtAuthorizer {
    pub fn new(issuer: &str, audience: Vec<String>, keys: JwkSet) -> JwtAuthorizer {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = ALGORITHMS.to_vec();
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_nbf = true;
        // Expired means expired: no clock skew allowed on one machine.
        validation.leeway = 0;
        // `aud`, or `client_id` when a token has no `aud`, checked below as API Gateway does.
        validation.validate_aud = false;
        JwtAuthorizer {
            audience,
            keys,
            validation,
        }
    }

    /// Fetches the user pool's JWKS (`<endpoint>/<pool id>/.well-known/jwks.json`) once.
    pub async fn fetch(
        jwks_url: &str,
        issuer: &str,
        audience: Vec<String>,
    ) -> Result<JwtAuthorizer, crate::Error> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .no_proxy()
            .build()?;
        let response = http
            .get(jwks_url)
            .send()
            .await
            .map_err(|e| format!("GET {jwks_url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {jwks_url}: status {}", response.status()).into());
        }
        let body = response.bytes().await?;
        let keys: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("GET {jwks_url}: not a JWKS: {e}"))?;
        if keys.keys.is_empty() {
            return Err(format!("GET {jwks_url}: no keys").into());
        }
        Ok(JwtAuthorizer::new(issuer, audience, keys))
    }

    /// Verifies the request's token; answers what the function is given.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<VerifiedJwt, Refusal> {
        let token = token(headers)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let jwk = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or(Refusal::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|e| Refusal::Invalid(e.to_string()))?
            .claims;
        let audience = match claims.get("aud") {
            Some(aud) => aud,
            None => claims.get("client_id").unwrap_or(&Value::Null),
        };
        let for_us = |value: &Value| {
            value
                .as_str()
                .is_some_and(|aud| self.audience.iter().any(|ours| ours == aud))
        };
        let accepted = match audience {
            Value::Array(values) => values.iter().any(for_us),
            one => for_us(one),
        };
        if !accepted {
            return Err(Refusal::WrongAudience);
        }
        if let Some(issued_at) = claims.get("iat") {
            let now = chrono::Utc::now().timestamp();
            if issued_at.as_i64().is_none_or(|iat| iat > now) {
                return Err(Refusal::IssuedInTheFuture);
            }
        }
        let scopes = claims
            .get("scope")
            .or_else(|| claims.get("scp"))
            .map(|scope| match scope {
                Value::Array(items) => items.iter().map(claim_text).collect(),
                other => claim_text(other)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            });
        Ok(VerifiedJwt {
            claims: claims
                .iter()
                .map(|(name, value)| (name.clone(), claim_text(value)))
                .collect(),
            scopes,
        })
    }
}

const BEARER: &str = "Bearer";

/// The token of the identity source: one `Authorization` header, the token alone or after
/// `Bearer `.
fn token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(Refusal::NoToken)?;
    if values.next().is_some() {
        return Err(Refusal::Malformed);
    }
    let value = value.to_str().map_err(|_| Refusal::Malformed)?.trim();
    let after_scheme = value
        .get(..BEARER.len())
        .filter(|scheme| scheme.eq_ignore_ascii_case(BEARER))
        .and_then(|_| value.get(BEARER.len()..))
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
    let token = after_scheme.map_or(value, str::trim);
    if token.is_empty() {
        return Err(Refusal::NoToken);
    }
    if token.contains(char::is_whitespace) {
        return Err(Refusal::Malformed);
    }
    Ok(token)
}

/// A claim as API Gateway hands it to the function: text as is, numbers and booleans as
/// written, arrays as `[a b]`, objects as JSON.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(claim_text).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null | Value::Object(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_token_is_taken_bare_or_after_bearer() {
        assert_eq!(token(&headers(&["Bearer a.b.c"])), Ok("a.b.c"));
        assert_eq!(token(&headers(&["bearer a.b.c"])), Ok("a.b.c"));
        assert_eq!(token(&headers(&["a.b.c"])), Ok("a.b.c"));
        assert_eq!(token(&headers(&[])), Err(Refusal::NoToken));
        assert_eq!(token(&headers(&["Bearer "])), Err(Refusal::NoToken));
        assert_eq!(token(&headers(&["Bearer"])), Err(Refusal::NoToken));
        assert_eq!(token(&headers(&["Bearera.b.c"])), Ok("Bearera.b.c"));
        assert_eq!(token(&headers(&["Bearer a b"])), Err(Refusal::Malformed));
        assert_eq!(
            token(&headers(&["Bearer a.b.c", "Bearer d.e.f"])),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn claims_are_rendered_as_api_gateway_renders_them() {
        assert_eq!(claim_text(&json!("viewer")), "viewer");
        assert_eq!(
            claim_text(&json!(["viewer", "operator"])),
            "[viewer operator]"
        );
        assert_eq!(claim_text(&json!(1_700_000_000)), "1700000000");
        assert_eq!(claim_text(&json!(true)), "true");
        assert_eq!(claim_text(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn a_token_without_a_known_key_or_shape_is_refused() {
        let authorizer = JwtAuthorizer::new(
            &issuer("us-east-1", "us-east-1_x"),
            vec!["client".into()],
            JwkSet { keys: Vec::new() },
        );
        assert_eq!(
            authorizer.authorize(&headers(&["Bearer not-a-token"])),
            Err(Refusal::Malformed)
        );
        // {"alg":"RS256","kid":"k"}.{}.signature
        assert_eq!(
            authorizer.authorize(&headers(&[
                "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln"
            ])),
            Err(Refusal::UnknownKey)
        );
    }
}
