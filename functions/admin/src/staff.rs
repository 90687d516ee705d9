//! Who is asking. API Gateway's JWT authorizer has already verified the token (issuer, audience,
//! signature, expiry) and refused the request with `401` otherwise; the function reads the
//! verified claims from the request context and decides what the caller may do from the
//! Cognito groups in `cognito:groups`: `viewer` reads, `operator` reads and acts.
//!
//! The authorizer hands array claims over as text, `[viewer operator]`; a JSON array
//! (`["viewer","operator"]`) is read as well.

use f2f_runtime::ApiError;
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::collections::HashMap;

pub const VIEWER_GROUP: &str = "viewer";
pub const OPERATOR_GROUP: &str = "operator";

/// What a member of staff may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
}

/// A verified member of staff: the token's subject and user name, and the role its groups give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub subject: String,
    pub username: Option<String>,
    pub role: Role,
}

impl Staff {
    /// The name staff know each other by: the user name, else the token's subject.
    pub fn name(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.subject)
    }

    /// How the audit trail names this member of staff's actions.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.name())
    }

    /// Refuses (`403 forbidden`) a member of staff whose role is below `needed`.
    pub fn may(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                FORBIDDEN,
                "this needs the operator group",
            ))
        }
    }
}

pub const UNAUTHENTICATED: &str = "unauthenticated";
pub const FORBIDDEN: &str = "forbidden";

/// The caller, from the authorizer's claims: `401` without verified claims (a request that
/// did not come through the authorizer), `403` without a console group.
pub fn staff(request: &Request) -> Result<Staff, ApiError> {
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    let Some(claims) = claims.filter(|claims| claims.contains_key("sub")) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            "no verified identity: sign in to the console",
        ));
    };
    from_claims(claims)
}

fn from_claims(claims: &HashMap<String, String>) -> Result<Staff, ApiError> {
    let groups = claims
        .get("cognito:groups")
        .map_or_else(Vec::new, |g| groups(g));
    let role = if groups.contains(&OPERATOR_GROUP) {
        Role::Operator
    } else if groups.contains(&VIEWER_GROUP) {
        Role::Viewer
    } else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            FORBIDDEN,
            "this identity is in neither the viewer nor the operator group",
        ));
    };
    Ok(Staff {
        subject: claims.get("sub").cloned().unwrap_or_default(),
        username: claims
            .get("cognito:username")
            .or_else(|| claims.get("username"))
            .cloned(),
        role,
    })
}

/// The group names of a `cognito:groups` claim as the authorizer renders it.
fn groups(text: &str) -> Vec<&str> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split([' ', ','])
        .map(|group| group.trim().trim_matches('"'))
        .filter(|group| !group.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(groups: Option<&str>) -> HashMap<String, String> {
        let mut claims = HashMap::from([
            ("sub".to_owned(), "5e1f".to_owned()),
            ("cognito:username".to_owned(), "li.na".to_owned()),
        ]);
        if let Some(groups) = groups {
            claims.insert("cognito:groups".to_owned(), groups.to_owned());
        }
        claims
    }

    #[test]
    fn the_groups_claim_decides_the_role_in_either_rendering() {
        let role = |groups| from_claims(&claims(groups)).map(|s| s.role).ok();
        assert_eq!(role(Some("[viewer]")), Some(Role::Viewer));
        assert_eq!(role(Some("[viewer operator]")), Some(Role::Operator));
        assert_eq!(role(Some(r#"["operator"]"#)), Some(Role::Operator));
        assert_eq!(role(Some("[finance]")), None);
        assert_eq!(role(Some("[operators]")), None, "names match whole");
        assert_eq!(role(None), None);
        let staff = from_claims(&claims(Some("[viewer]"))).ok();
        assert_eq!(
            staff.as_ref().and_then(|s| s.username.as_deref()),
            Some("li.na")
        );
    }

    #[test]
    fn a_viewer_may_read_but_not_act() {
        let viewer = Staff {
            subject: "s".into(),
            username: None,
            role: Role::Viewer,
        };
        assert!(viewer.may(Role::Viewer).is_ok());
        let refused = viewer.may(Role::Operator).err();
        assert_eq!(
            refused.map(|e| (e.status, e.code)),
            Some((StatusCode::FORBIDDEN, FORBIDDEN))
        );
    }
}
