//! The signed query string of `GET /v1/payments/{out_trade_no}`: a query whose percent-escapes
//! do not decode to UTF-8 has no canonical form, so it is refused before its signature is
//! looked at (decoded lossily, `x=%FF` and `x=%FE` would share one signature).

use aws_adapters::{DynamoNonceStore, DynamoOrderStore};
use f2f_runtime::{Function, SystemClock};
use harness::*;
use query::{Orders, QueryApi};
use std::collections::BTreeMap;

type Api = QueryApi<DynamoOrderStore, alipay::client::AlipayClient, SystemClock, DynamoNonceStore>;

async fn query_api(env: &Env) -> TestResult<Api> {
    let config = env.config(Function::Query)?;
    let adapters = env.adapters(Function::Query).await?;
    Ok(QueryApi {
        orders: Orders {
            store: adapters.orders,
            gateway: adapters.alipay,
            clock: SystemClock,
            sync_after: config.knobs.sync_after,
        },
        nonces: adapters.nonces,
        keys: adapters.merchant_keys,
    })
}

#[tokio::test]
async fn a_query_that_is_not_utf8_once_decoded_is_refused_with_400() -> TestResult {
    let env = Env::start().await?;
    let api = query_api(&env).await?;
    // Signed over what a lossy decoder makes of `%FF` (U+FFFD, `%EF%BF%BD`), sent as `%FF`.
    let headers: BTreeMap<String, String> = sign_headers(
        KEY_ID,
        SECRET,
        "GET",
        "/v1/payments/T1?x=%EF%BF%BD",
        b"",
        chrono::Utc::now().timestamp(),
    )
    .into_iter()
    .collect();
    let response = api
        .handle(api_gateway_request(
            "GET",
            "/v1/payments/T1?x=%FF",
            &headers,
            "",
        ))
        .await;
    let error = body_json(&response);
    assert_eq!(response.status().as_u16(), 400, "{error}");
    assert_eq!(error["code"], "invalid_query");
    assert_eq!(
        env.items("NONCE").await?,
        0,
        "a refused request burns no nonce"
    );

    // The same key signing a well-formed query is accepted (the order simply does not exist).
    let response = api
        .handle(env.signed("GET", "/v1/payments/T1?x=%C3%BF", ""))
        .await;
    assert_eq!(response.status().as_u16(), 404, "{}", body_json(&response));
    assert_eq!(body_json(&response)["code"], "order_not_found");
    Ok(())
}
