//! The operator console on the whole stack: each local user signs in through the stack's
//! Cognito endpoint and its ID token reaches the admin function with its claims; API Gateway's
//! JWT authorizer refuses every other token itself (`401 {"message":"Unauthorized"}`, the
//! function's own refusals have a `code`); the page, its `config.json` and `stack.json` tell
//! the console where everything is.
//!
//! Tokens that moto cannot issue (expired, another issuer or audience, not yet valid) are signed
//! with moto's own key by the venv's Python, with moto's JWT library: everything but the claim
//! under test is as moto makes it, and the same claims signed the same way are accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use local_stack::{LocalStack, Options, authorizer, cognito};
use serde_json::{Value, json};
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

fn http() -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// `InitiateAuth` (USER_PASSWORD_AUTH) at `endpoint`, as the console sends it; the answer's
/// `AuthenticationResult`.
async fn sign_in(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<Value, Error> {
    let response = http
        .post(endpoint)
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(
            json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": {"USERNAME": username, "PASSWORD": password},
            })
            .to_string(),
        )
        .send()
        .await?;
    let status = response.status();
    let answer: Value = serde_json::from_slice(&response.bytes().await?)?;
    if status != 200 {
        return Err(format!("InitiateAuth {username}: {status} {answer}").into());
    }
    Ok(answer["AuthenticationResult"].clone())
}

async fn id_token(
    http: &reqwest::Client,
    stack: &LocalStack,
    client_id: &str,
    user: &cognito::ConsoleUser,
) -> Result<String, Error> {
    let result = sign_in(
        http,
        &stack.cognito_endpoint(),
        client_id,
        user.username,
        user.password,
    )
    .await?;
    Ok(result["IdToken"].as_str().ok_or("no IdToken")?.to_owned())
}

/// The claims of a token, unverified.
fn claims_of(token: &str) -> Result<Value, Error> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// `token` with other claims and its own header and signature.
fn tampered(token: &str, claims: &Value) -> Result<String, Error> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, _, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    Ok(format!("{header}.{payload}.{signature}"))
}

/// `claims` signed by moto's Cognito key (RS256, its `kid`), with moto's JWT library.
fn signed_by_moto(claims: &Value) -> Result<String, Error> {
    const SIGN: &str = "import json, sys\n\
        from joserfc import jwk, jwt\n\
        from moto.utilities.utils import load_resource\n\
        key = jwk.RSAKey.import_key(load_resource('cognitoidp/resources/jwks-private.json'))\n\
        print(jwt.encode({'alg': 'RS256', 'kid': 'dummy'}, json.loads(sys.argv[1]), key))\n";
    let python = test_support::workspace_root()
        .join(test_support::moto::VENV)
        .join("bin/python");
    let output = std::process::Command::new(&python)
        .args(["-c", SIGN, &claims.to_string()])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "{} could not sign: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// `GET /admin/anomalies` with `authorization` (if any): status and body.
async fn anomalies(
    http: &reqwest::Client,
    api: &str,
    authorization: Option<&str>,
) -> Result<(u16, Value), Error> {
    let (status, body, _) = anomalies_answer(http, api, authorization).await?;
    Ok((status, body))
}

/// The same, with the answer's `www-authenticate` header.
async fn anomalies_answer(
    http: &reqwest::Client,
    api: &str,
    authorization: Option<&str>,
) -> Result<(u16, Value, Option<String>), Error> {
    let mut request = http.get(format!("{api}/admin/anomalies"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await?;
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, body, challenge))
}

/// How API Gateway's documentation words a token of another audience.
const WRONG_AUDIENCE: &str = "the token does not have a valid audience";

/// API Gateway's own refusal: the function was not called. Returns the `www-authenticate`
/// challenge's description (empty when no token was sent: the challenge is then `Bearer`).
async fn assert_refused_by_the_gateway(
    http: &reqwest::Client,
    api: &str,
    authorization: Option<&str>,
    what: &str,
) -> Result<String, Error> {
    let (status, body, challenge) = anomalies_answer(http, api, authorization).await?;
    assert_eq!(
        (status, body),
        (401, json!({"message": "Unauthorized"})),
        "{what}"
    );
    let challenge = challenge.ok_or_else(|| format!("{what}: no www-authenticate"))?;
    if authorization.is_none() {
        assert_eq!(challenge, "Bearer", "{what}");
    }
    // No token (or an empty one): the bare scheme.
    if challenge == "Bearer" {
        return Ok(String::new());
    }
    let description = challenge
        .strip_prefix(r#"Bearer scope="" error="invalid_token" error_description=""#)
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(|| format!("{what}: {challenge}"))?;
    assert!(!description.is_empty(), "{what}: {challenge}");
    Ok(description.to_owned())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn staff_tokens_reach_the_admin_function_and_the_gateway_refuses_the_others() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options::on_free_ports(dir.path())).await?;
    let outcome = staff_tokens(&stack).await;
    stack.shutdown().await;
    outcome
}

async fn staff_tokens(stack: &LocalStack) -> TestResult {
    let http = http()?;
    let api = stack.api_url();
    let pool = stack.console_pool().clone();
    let issuer = authorizer::issuer(test_support::moto::REGION, &pool.user_pool_id);
    let [operator, viewer] = cognito::USERS;

    // Each user's ID token: moto's claims are Cognito's, and the function answers.
    let mut tokens = Vec::new();
    for user in cognito::USERS {
        let token = id_token(&http, stack, &pool.client_id, &user).await?;
        let claims = claims_of(&token)?;
        assert_eq!(claims["iss"], issuer.as_str());
        assert_eq!(claims["aud"], pool.client_id.as_str());
        assert_eq!(claims["token_use"], "id");
        assert_eq!(claims["cognito:username"], user.username);
        assert_eq!(claims["cognito:groups"], json!([user.group]));
        let (status, body) = anomalies(&http, api, Some(&format!("Bearer {token}"))).await?;
        assert_eq!(status, 200, "{}: {body}", user.username);
        assert_eq!(body["status"], "OPEN", "{body}");
        tokens.push(token);
    }
    let viewer_token = tokens.pop().ok_or("no viewer token")?;
    let viewer_claims = claims_of(&viewer_token)?;

    // What the function is given for the viewer's token: every claim as text, groups as
    // `[viewer]`, no scopes (an ID token), and the admin function reads a viewer from it.
    let jwks = format!(
        "{}/{}/.well-known/jwks.json",
        stack.moto_url(),
        pool.user_pool_id
    );
    let gateway_authorizer =
        authorizer::JwtAuthorizer::fetch(&jwks, &issuer, vec![pool.client_id.clone()]).await?;
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {viewer_token}").parse()?);
    let verified = gateway_authorizer
        .authorize(&headers)
        .map_err(|e| format!("the viewer's token: {e}"))?;
    assert_eq!(verified.claims["cognito:groups"], "[viewer]");
    assert_eq!(verified.claims["cognito:username"], "viewer");
    assert_eq!(
        verified.claims["sub"],
        viewer_claims["sub"].as_str().unwrap_or_default()
    );
    assert_eq!(verified.claims["exp"], viewer_claims["exp"].to_string());
    assert_eq!(verified.claims["aud"], pool.client_id);
    assert_eq!(verified.scopes, None);
    let request = axum::http::Request::get("/admin/anomalies").body(())?;
    let (parts, ()) = request.into_parts();
    let event = local_stack::gateway::event(
        &local_stack::gateway::HttpRequest {
            method: &parts.method,
            path: "/admin/anomalies",
            raw_query: "",
            headers: &headers,
            body: b"",
        },
        &local_stack::gateway::Route::AdminAnomalies,
        "req-1",
        Some(&verified),
    );
    let staff = admin::staff::staff(&local_stack::gateway::lambda_request(&event)?)
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(staff.role, admin::staff::Role::Viewer);
    assert_eq!(
        staff.subject,
        viewer_claims["sub"].as_str().unwrap_or_default()
    );

    // The token alone (no `Bearer`) is taken too, as API Gateway takes it.
    assert_eq!(anomalies(&http, api, Some(&viewer_token)).await?.0, 200);

    // An access token has no `aud`: its `client_id` is checked instead; it carries scopes.
    let result = sign_in(
        &http,
        &stack.cognito_endpoint(),
        &pool.client_id,
        viewer.username,
        viewer.password,
    )
    .await?;
    let access = result["AccessToken"].as_str().ok_or("no AccessToken")?;
    assert!(claims_of(access)?.get("aud").is_none());
    let (status, body) = anomalies(&http, api, Some(&format!("Bearer {access}"))).await?;
    assert_eq!(status, 200, "the access token: {body}");

    // A valid token of someone in no console group: through the authorizer, refused by the
    // function (which read the claims).
    let cognito_client = aws_sdk_cognitoidentityprovider::Client::new(&stack.aws_sdk_config());
    cognito_client
        .admin_create_user()
        .user_pool_id(&pool.user_pool_id)
        .username("nobody")
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await?;
    cognito_client
        .admin_set_user_password()
        .user_pool_id(&pool.user_pool_id)
        .username("nobody")
        .password("Nobody-local-1")
        .permanent(true)
        .send()
        .await?;
    let result = sign_in(
        &http,
        &stack.cognito_endpoint(),
        &pool.client_id,
        "nobody",
        "Nobody-local-1",
    )
    .await?;
    let nobody = result["IdToken"].as_str().ok_or("no IdToken")?;
    let (status, body) = anomalies(&http, api, Some(&format!("Bearer {nobody}"))).await?;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );

    // The function decides what a viewer may do, not the gateway.
    let resolve = http
        .post(format!(
            "{api}/admin/anomalies/T1%2Fpaid_after_close/resolve"
        ))
        .header("authorization", format!("Bearer {viewer_token}"))
        .header("content-type", "application/json")
        .body(r#"{"note":"checked","action":"dismiss"}"#)
        .send()
        .await?;
    let status = resolve.status().as_u16();
    let body: Value = resolve.json().await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "the function refused the viewer: {body}"
    );

    // Refused by the gateway, the function never called.
    assert_refused_by_the_gateway(&http, api, None, "no token").await?;
    for (value, what) in [
        ("Bearer", "an empty token"),
        ("Bearer not-a-token", "not a JWT"),
        ("Basic dmlld2VyOlZpZXdlci1sb2NhbC0x", "another scheme"),
    ] {
        assert_refused_by_the_gateway(&http, api, Some(value), what).await?;
    }
    let mut promoted = viewer_claims.clone();
    promoted["cognito:groups"] = json!(["operator"]);
    let forged = tampered(&viewer_token, &promoted)?;
    assert_refused_by_the_gateway(
        &http,
        api,
        Some(&format!("Bearer {forged}")),
        "a tampered token",
    )
    .await?;
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"dummy"}"#),
        URL_SAFE_NO_PAD.encode(viewer_claims.to_string())
    );
    assert_refused_by_the_gateway(
        &http,
        api,
        Some(&format!("Bearer {unsigned}")),
        "an unsigned token",
    )
    .await?;

    // Real tokens of another app client of the pool, and of another pool (moto signs every
    // pool's tokens with the same key: only the issuer and audience tell them apart).
    let other_client = cognito_client
        .create_user_pool_client()
        .user_pool_id(&pool.user_pool_id)
        .client_name("another-app")
        .explicit_auth_flows(
            aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowUserPasswordAuth,
        )
        .send()
        .await?
        .user_pool_client
        .and_then(|client| client.client_id)
        .ok_or("no client id")?;
    let token = id_token(&http, stack, &other_client, &viewer).await?;
    let refused = assert_refused_by_the_gateway(
        &http,
        api,
        Some(&format!("Bearer {token}")),
        "another client's token",
    )
    .await?;
    assert_eq!(refused, WRONG_AUDIENCE);
    let other_pool = cognito::create(&stack.aws_sdk_config()).await?;
    let token = id_token(&http, stack, &other_pool.client_id, &operator).await?;
    assert_refused_by_the_gateway(
        &http,
        api,
        Some(&format!("Bearer {token}")),
        "another pool's token",
    )
    .await?;

    // Signed with moto's key: accepted as moto makes them, refused with one claim changed.
    let resigned = signed_by_moto(&viewer_claims)?;
    let (status, body) = anomalies(&http, api, Some(&format!("Bearer {resigned}"))).await?;
    assert_eq!(status, 200, "the viewer's claims signed again: {body}");
    let changes = [
        ("exp", json!(now() - 60), "an expired token"),
        (
            "iss",
            json!(authorizer::issuer("us-east-1", "us-east-1_other")),
            "another issuer",
        ),
        ("aud", json!("another-client"), "another audience"),
        ("nbf", json!(now() + 600), "a token not valid yet"),
        ("iat", json!(now() + 600), "a token issued in the future"),
    ];
    for (claim, value, what) in changes {
        let mut claims = viewer_claims.clone();
        claims[claim] = value;
        let token = signed_by_moto(&claims)?;
        let refused =
            assert_refused_by_the_gateway(&http, api, Some(&format!("Bearer {token}")), what)
                .await?;
        if claim == "aud" {
            assert_eq!(refused, WRONG_AUDIENCE);
        }
    }

    // The route is matched first: an unknown console path is API Gateway's 404, token or not.
    for authorization in [None, Some(format!("Bearer {viewer_token}"))] {
        let mut request = http.get(format!("{api}/admin/nowhere"));
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.json::<Value>().await?,
            json!({"message": "Not Found"})
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_console_page_its_config_and_cognito_endpoint_are_served() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stack = LocalStack::start(Options::on_free_ports(dir.path())).await?;
    let outcome = console_served(&stack).await;
    stack.shutdown().await;
    outcome
}

async fn console_served(stack: &LocalStack) -> TestResult {
    let http = http()?;
    let api = stack.api_url();
    let console_dir = local_stack::console::default_dir();

    // The page, each of its files with its type, and its configuration.
    let page = http.get(stack.console_url()).send().await?;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        page.bytes().await?,
        std::fs::read(console_dir.join("index.html"))?
    );
    for entry in std::fs::read_dir(&console_dir)? {
        let file = entry?.path();
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !file.is_file() || name.starts_with('.') {
            continue;
        }
        let response = http.get(format!("{api}/console/{name}")).send().await?;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            local_stack::console::content_type(&file),
            "{name}"
        );
    }
    let moved = http.get(format!("{api}/console")).send().await?;
    assert_eq!(moved.status(), 308);
    assert_eq!(moved.headers()["location"], "/console/");
    let config: Value = http
        .get(format!("{api}/console/config.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        config,
        json!({
            "api_base": "",
            "cognito_endpoint": "/cognito-idp/",
            "client_id": stack.console_pool().client_id,
            "region": test_support::moto::REGION,
        })
    );

    // Nothing else: no missing file, no way out of the directory.
    for path in [
        "/console/missing.js",
        "/console/%2e%2e/%2e%2e/%2e%2e/Cargo.toml",
        "/console/.gitignore",
    ] {
        let response = http.get(format!("{api}{path}")).send().await?;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(raw_get(api, "/console/../../../Cargo.toml").await?, 404);

    // stack.json: the console, the pool and the users, whose passwords sign them in at the
    // endpoint it names.
    stack.write_stack_file()?;
    let file: Value = serde_json::from_str(&std::fs::read_to_string(stack.stack_file())?)?;
    assert_eq!(file["console_url"], stack.console_url());
    assert_eq!(
        file["cognito"]["user_pool_id"],
        stack.console_pool().user_pool_id
    );
    assert_eq!(file["cognito"]["client_id"], stack.console_pool().client_id);
    let endpoint = file["cognito"]["endpoint"].as_str().ok_or("no endpoint")?;
    let users = file["console_users"].as_array().ok_or("no console_users")?;
    assert_eq!(users.len(), cognito::USERS.len());
    for user in users {
        let username = user["username"].as_str().ok_or("no username")?;
        let password = user["password"].as_str().ok_or("no password")?;
        let result = sign_in(
            &http,
            endpoint,
            file["cognito"]["client_id"].as_str().unwrap_or_default(),
            username,
            password,
        )
        .await?;
        let claims = claims_of(result["IdToken"].as_str().ok_or("no IdToken")?)?;
        assert_eq!(
            claims["cognito:groups"],
            json!([user["group"]]),
            "{username}"
        );
    }
    let banner = stack.banner();
    assert!(banner.contains(&stack.console_url()));
    assert!(banner.contains(&stack.console_pool().user_pool_id));
    for user in cognito::USERS {
        assert!(banner.contains(&format!("{} / {}", user.username, user.password)));
    }
    stack.remove_stack_file();

    // The Cognito endpoint takes only what Cognito takes without AWS credentials.
    for (operation, refusal) in [
        ("AdminCreateUser", "MissingAuthenticationTokenException"),
        ("ListUsers", "MissingAuthenticationTokenException"),
        ("SignUp", "NotAuthorizedException"),
    ] {
        let response = http
            .post(stack.cognito_endpoint())
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{operation}"),
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body(json!({"UserPoolId": stack.console_pool().user_pool_id}).to_string())
            .send()
            .await?;
        assert_eq!(response.status(), 400, "{operation}");
        let answer: Value = serde_json::from_slice(&response.bytes().await?)?;
        assert_eq!(answer["__type"], refusal, "{operation}");
    }
    let wrong = sign_in(
        &http,
        &stack.cognito_endpoint(),
        &stack.console_pool().client_id,
        "viewer",
        "not-the-password",
    )
    .await;
    assert!(wrong.is_err(), "a wrong password signs no one in");
    Ok(())
}

/// The status of `GET <path>` sent as is (an HTTP client would resolve `..` first).
async fn raw_get(api: &str, path: &str) -> Result<u16, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = api.strip_prefix("http://").ok_or("not an http URL")?;
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| format!("no status in {answer}"))?;
    Ok(status)
}
