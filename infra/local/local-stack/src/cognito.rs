//! The operator console's user pool, created in moto as `template.yaml` declares
//! `ConsoleUserPool`, `ConsoleUserPoolClient` and the two groups (`tests/drift.rs` compares
//! these constants with the template), with one local user per group.
//!
//! Also the console's Cognito endpoint (`POST /cognito-idp/`): the calls Cognito accepts from a
//! public client without AWS credentials are passed to moto; the others are refused as Cognito
//! refuses an unsigned call (moto itself checks no signature).

use admin::staff::{OPERATOR_GROUP, VIEWER_GROUP};
use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, ExplicitAuthFlowsType, MessageActionType, PasswordPolicyType,
    PreventUserExistenceErrorTypes, UserPoolPolicyType, UsernameConfigurationType,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use std::fmt;

pub const USER_POOL_NAME: &str = "console";
pub const CLIENT_NAME: &str = "console";
/// Staff accounts are created by an administrator; nobody signs up.
pub const ALLOW_ADMIN_CREATE_USER_ONLY: bool = true;
/// User names match whatever the case typed at sign-in.
pub const USERNAME_CASE_SENSITIVE: bool = false;
/// The console signs in with the password (USER_PASSWORD_AUTH) and keeps the session with the
/// refresh token; SRP is there for clients that would rather not send the password.
pub const EXPLICIT_AUTH_FLOWS: [&str; 3] = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
];
/// The console's groups, each with its precedence (the lower wins when a user is in both).
pub const GROUPS: [(&str, i32); 2] = [(OPERATOR_GROUP, 1), (VIEWER_GROUP, 2)];

/// The pool's password policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub minimum_length: i32,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
    pub temporary_password_validity_days: i32,
}

pub const PASSWORD_POLICY: PasswordPolicy = PasswordPolicy {
    minimum_length: 12,
    require_lowercase: true,
    require_uppercase: true,
    require_numbers: true,
    require_symbols: true,
    temporary_password_validity_days: 3,
};

impl PasswordPolicy {
    /// Whether Cognito would accept `password` under this policy.
    pub fn accepts(&self, password: &str) -> bool {
        let has =
            |wanted: bool, test: fn(&char) -> bool| !wanted || password.chars().any(|c| test(&c));
        usize::try_from(self.minimum_length).is_ok_and(|min| password.chars().count() >= min)
            && has(self.require_lowercase, char::is_ascii_lowercase)
            && has(self.require_uppercase, char::is_ascii_uppercase)
            && has(self.require_numbers, char::is_ascii_digit)
            && has(self.require_symbols, char::is_ascii_punctuation)
    }

    fn to_sdk(self) -> PasswordPolicyType {
        PasswordPolicyType::builder()
            .minimum_length(self.minimum_length)
            .require_lowercase(self.require_lowercase)
            .require_uppercase(self.require_uppercase)
            .require_numbers(self.require_numbers)
            .require_symbols(self.require_symbols)
            .temporary_password_validity_days(self.temporary_password_validity_days)
            .build()
    }
}

/// A local member of staff. The password is the local stack's own, shown in its banner and
/// `stack.json`, and kept out of `Debug`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConsoleUser {
    pub username: &'static str,
    pub password: &'static str,
    pub group: &'static str,
}

impl fmt::Debug for ConsoleUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleUser")
            .field("username", &self.username)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// One user per group, named after it.
pub const USERS: [ConsoleUser; 2] = [
    ConsoleUser {
        username: "operator",
        password: "Operator-local-1",
        group: OPERATOR_GROUP,
    },
    ConsoleUser {
        username: "viewer",
        password: "Viewer-local-1",
        group: VIEWER_GROUP,
    },
];

/// The user pool as created: what the console and the authorizer need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsolePool {
    pub user_pool_id: String,
    pub client_id: String,
}

/// Creates the pool, its app client, its groups and [`USERS`] (permanent passwords, so they
/// sign in without a first password change).
pub async fn create(sdk: &SdkConfig) -> Result<ConsolePool, crate::Error> {
    let cognito = Client::new(sdk);
    let failed = |what: &str, error: &dyn fmt::Display| format!("moto: {what}: {error}");
    let pool = cognito
        .create_user_pool()
        .pool_name(USER_POOL_NAME)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(PASSWORD_POLICY.to_sdk())
                .build(),
        )
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(ALLOW_ADMIN_CREATE_USER_ONLY)
                .build(),
        )
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(USERNAME_CASE_SENSITIVE)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| failed("creating the console's user pool", &e))?;
    let user_pool_id = pool
        .user_pool
        .and_then(|pool| pool.id)
        .ok_or("moto: the console's user pool has no id")?;
    let client = cognito
        .create_user_pool_client()
        .user_pool_id(&user_pool_id)
        .client_name(CLIENT_NAME)
        .generate_secret(false)
        .set_explicit_auth_flows(Some(
            EXPLICIT_AUTH_FLOWS
                .iter()
                .map(|flow| ExplicitAuthFlowsType::from(*flow))
                .collect(),
        ))
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .send()
        .await
        .map_err(|e| failed("creating the console's app client", &e))?;
    let client_id = client
        .user_pool_client
        .and_then(|client| client.client_id)
        .ok_or("moto: the console's app client has no id")?;
    for (group, precedence) in GROUPS {
        cognito
            .create_group()
            .user_pool_id(&user_pool_id)
            .group_name(group)
            .precedence(precedence)
            .send()
            .await
            .map_err(|e| failed(&format!("creating the group {group}"), &e))?;
    }
    for user in USERS {
        let username = user.username;
        cognito
            .admin_create_user()
            .user_pool_id(&user_pool_id)
            .username(username)
            .message_action(MessageActionType::Suppress)
            .send()
            .await
            .map_err(|e| failed(&format!("creating the user {username}"), &e))?;
        cognito
            .admin_set_user_password()
            .user_pool_id(&user_pool_id)
            .username(username)
            .password(user.password)
            .permanent(true)
            .send()
            .await
            .map_err(|e| failed(&format!("setting {username}'s password"), &e))?;
        cognito
            .admin_add_user_to_group()
            .user_pool_id(&user_pool_id)
            .username(username)
            .group_name(user.group)
            .send()
            .await
            .map_err(|e| failed(&format!("adding {username} to {}", user.group), &e))?;
    }
    Ok(ConsolePool {
        user_pool_id,
        client_id,
    })
}

/// The header naming a Cognito operation: `AWSCognitoIdentityProviderService.<operation>`.
pub const TARGET_HEADER: &str = "x-amz-target";
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
/// The operations of a signed-in user (or of signing in) that Cognito takes without AWS
/// credentials. `SignUp` is one, but this pool lets administrators only create users.
pub const UNSIGNED_OPERATIONS: [&str; 13] = [
    "InitiateAuth",
    "RespondToAuthChallenge",
    "GetUser",
    "ChangePassword",
    "GlobalSignOut",
    "RevokeToken",
    "ForgotPassword",
    "ConfirmForgotPassword",
    "AssociateSoftwareToken",
    "VerifySoftwareToken",
    "SetUserMFAPreference",
    "UpdateUserAttributes",
    "VerifyUserAttribute",
];
/// Cognito's JSON protocol.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// `POST /cognito-idp/`: one of [`UNSIGNED_OPERATIONS`] passed to moto's Cognito endpoint
/// (`endpoint`), its answer passed back; anything else refused as Cognito refuses it.
pub async fn proxy(
    http: &reqwest::Client,
    endpoint: &str,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let target = headers
        .get(TARGET_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or_default();
    if operation == "SignUp" {
        return cognito_error(
            StatusCode::BAD_REQUEST,
            "NotAuthorizedException",
            "SignUp is not permitted for this user pool",
        );
    }
    if !UNSIGNED_OPERATIONS.contains(&operation) {
        return cognito_error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static(CONTENT_TYPE));
    let answer = http
        .post(endpoint)
        .header(TARGET_HEADER, target)
        .header(reqwest::header::CONTENT_TYPE, content_type.as_bytes())
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            tracing::error!(%error, operation, "the emulator's Cognito endpoint did not answer");
            return cognito_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the AWS emulator did not answer",
            );
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| HeaderValue::from_bytes(value.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static(CONTENT_TYPE));
    match answer.bytes().await {
        Ok(body) => {
            let mut response = axum::response::Response::new(axum::body::Body::from(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, content_type);
            response
        }
        Err(error) => {
            tracing::error!(%error, operation, "the emulator's Cognito answer could not be read");
            cognito_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the AWS emulator's answer could not be read",
            )
        }
    }
}

/// Cognito's error shape: `{"__type": ..., "message": ...}`.
fn cognito_error(status: StatusCode, kind: &str, message: &str) -> axum::response::Response {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_passwords_meet_the_policy_and_it_refuses_weak_ones() {
        for user in USERS {
            assert!(PASSWORD_POLICY.accepts(user.password), "{}", user.username);
            assert!(!format!("{user:?}").contains(user.password));
        }
        for weak in [
            "Short-1a",
            "no-upper-case-1",
            "NO-LOWER-CASE-1",
            "No-digits-here",
            "NoSymbols12345",
        ] {
            assert!(!PASSWORD_POLICY.accepts(weak), "{weak}");
        }
    }

    #[test]
    fn every_user_is_in_a_console_group() {
        for user in USERS {
            assert!(GROUPS.iter().any(|(group, _)| *group == user.group));
        }
    }
}
