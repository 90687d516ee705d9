//! `POST /gateway.do`: Alipay's checks on system parameters and the merchant's RSA2
//! signature (refusals unsigned, as Alipay sends them), then faults, the method itself, and
//! the signed answer.

mod params;

use crate::answer::{self, Answer, Signing, render_body};
use crate::biz::Biz;
use crate::faults::{self, FaultSpec};
use crate::methods::{self, Call, Method};
use crate::rules::{AnswerContentType, Rules};
use crate::sandbox::Sandbox;
use crate::server::DropConnection;
use alipay::canonical;
use alipay::response::{ERROR_NODE, node_name};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use encoding_rs::{Encoding, UTF_8};
use params::RawParams;

pub fn routes() -> Router<Sandbox> {
    Router::new().route("/gateway.do", post(handle))
}

/// A refusal before the method runs: which node carries it, and in which encoding.
struct Refusal {
    node: String,
    answer: Answer,
    encoding: &'static Encoding,
}

/// A request that passed every gateway check.
struct Accepted {
    method: Method,
    /// The call, or the business refusal of its `biz_content`.
    call: Result<Call, Answer>,
    node: String,
    encoding: &'static Encoding,
}

async fn handle(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let raw = RawParams::from_parts(query.unwrap_or_default().as_bytes(), &body);
    let rules = sandbox.mutate(|state, _| state.rules.clone()).await;
    let accepted = match check(&sandbox, &raw, &rules) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            tracing::info!(
                node = refusal.node,
                code = refusal.answer.code,
                sub_code = refusal.answer.sub_code,
                "gateway refused the request"
            );
            let body = render_body(
                &refusal.node,
                &refusal.answer,
                Signing::AsAlipay,
                &sandbox.identity().alipay_private_key,
                refusal.encoding,
            );
            return respond(body, refusal.encoding, rules.content_type);
        }
    };
    let method = accepted.method;
    let fault = sandbox
        .mutate(|state, _| faults::take(&mut state.faults, method))
        .await;
    let runs_method = fault.as_ref().is_none_or(FaultSpec::runs_method);
    let real = match (&accepted.call, runs_method) {
        (Ok(call), true) => Some(methods::execute(&sandbox, call).await),
        (Err(refusal), _) => Some(refusal.clone()),
        (Ok(_), false) => None,
    };
    let answer = fault
        .as_ref()
        .and_then(|f| f.replacement(method))
        .or(real)
        .unwrap_or_else(Answer::unknown);
    tracing::info!(
        method = method.name(),
        code = answer.code,
        sub_code = answer.sub_code,
        fault = fault.is_some(),
        "gateway call"
    );
    if let Some(delay) = fault.as_ref().and_then(FaultSpec::delay) {
        tokio::time::sleep(delay).await;
    }
    if fault.as_ref().is_some_and(|f| f.drop_connection) {
        let mut response = Response::new(Body::empty());
        response.extensions_mut().insert(DropConnection);
        return response;
    }
    let signing = fault.as_ref().map_or(Signing::AsAlipay, FaultSpec::signing);
    let body = render_body(
        &accepted.node,
        &answer,
        signing,
        &sandbox.identity().alipay_private_key,
        accepted.encoding,
    );
    respond(body, accepted.encoding, rules.content_type)
}

fn respond(
    body: Vec<u8>,
    encoding: &'static Encoding,
    content_type: AnswerContentType,
) -> Response {
    let content_type = match (content_type, encoding == UTF_8) {
        (AnswerContentType::Html, true) => "text/html;charset=utf-8",
        (AnswerContentType::Html, false) => "text/html;charset=GBK",
        (AnswerContentType::Json, true) => "application/json;charset=utf-8",
        (AnswerContentType::Json, false) => "application/json;charset=GBK",
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn missing(node: &str, sub_code: &str, sub_msg: &str, encoding: &'static Encoding) -> Box<Refusal> {
    Box::new(Refusal {
        node: node.to_owned(),
        answer: Answer::new(
            answer::MISSING_ARGUMENTS,
            answer::default_msg(answer::MISSING_ARGUMENTS),
        )
        .with_sub(sub_code, sub_msg),
        encoding,
    })
}

fn invalid(node: &str, sub_code: &str, sub_msg: &str, encoding: &'static Encoding) -> Box<Refusal> {
    Box::new(Refusal {
        node: node.to_owned(),
        answer: Answer::new(
            answer::INVALID_ARGUMENTS,
            answer::default_msg(answer::INVALID_ARGUMENTS),
        )
        .with_sub(sub_code, sub_msg),
        encoding,
    })
}

/// Alipay's gateway checks, in the order it applies them.
fn check(sandbox: &Sandbox, raw: &RawParams, rules: &Rules) -> Result<Accepted, Box<Refusal>> {
    let present = |key: &str| raw.system(key).filter(|v| !v.is_empty());
    let Some(method_name) = present("method") else {
        return Err(missing(
            ERROR_NODE,
            "isv.missing-method",
            "缺少方法名参数",
            UTF_8,
        ));
    };
    let Some(method) = Method::parse(&method_name) else {
        return Err(invalid(
            ERROR_NODE,
            "isv.invalid-method",
            "不存在的方法名",
            UTF_8,
        ));
    };
    let node = node_name(method.name());
    let Some(app_id) = present("app_id") else {
        return Err(missing(&node, "isv.missing-app-id", "缺少AppID参数", UTF_8));
    };
    if app_id != sandbox.identity().app_id {
        return Err(invalid(
            &node,
            "isv.invalid-app-id",
            "无效的AppID参数",
            UTF_8,
        ));
    }
    let Some(encoding) = params::charset(present("charset").as_deref()) else {
        return Err(invalid(&node, "isv.invalid-charset", "字符集错误", UTF_8));
    };
    let params = raw.decode(encoding).map_err(|key| {
        invalid(
            &node,
            "isv.invalid-encoding",
            &format!("参数 {key} 的编码与 charset 不符"),
            encoding,
        )
    })?;
    let get = |key: &str| params.get(key).filter(|v| !v.is_empty()).cloned();
    if let Some(format) = get("format")
        && !format.eq_ignore_ascii_case("json")
    {
        return Err(invalid(
            &node,
            "isv.invalid-format",
            "无效的数据格式",
            encoding,
        ));
    }
    let Some(sign_type) = get("sign_type") else {
        return Err(missing(
            &node,
            "isv.missing-signature-type",
            "缺少签名类型参数",
            encoding,
        ));
    };
    if sign_type != "RSA2" {
        return Err(invalid(
            &node,
            "isv.invalid-signature-type",
            "无效的签名类型",
            encoding,
        ));
    }
    let Some(sign) = get("sign") else {
        return Err(missing(
            &node,
            "isv.missing-signature",
            "缺少签名参数",
            encoding,
        ));
    };
    let Some(timestamp) = get("timestamp") else {
        return Err(missing(
            &node,
            "isv.missing-timestamp",
            "缺少时间戳参数",
            encoding,
        ));
    };
    if !alipay::time::is_wire_time(&timestamp) {
        return Err(invalid(
            &node,
            "isv.invalid-timestamp",
            "非法的时间戳参数，格式应为 yyyy-MM-dd HH:mm:ss",
            encoding,
        ));
    }
    if !timestamp_is_current(&timestamp, rules) {
        return Err(invalid(
            &node,
            "isv.invalid-timestamp",
            "非法的时间戳参数，timestamp 与当前北京时间相差过大",
            encoding,
        ));
    }
    let Some(version) = get("version") else {
        return Err(missing(
            &node,
            "isv.missing-version",
            "缺少版本参数",
            encoding,
        ));
    };
    if version != "1.0" {
        return Err(invalid(
            &node,
            "isv.invalid-parameter",
            "版本号只支持 1.0",
            encoding,
        ));
    }
    let content = canonical::request_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let content_bytes = encoding.encode(&content).0;
    if sandbox
        .identity()
        .app_public_key
        .verify_base64(&content_bytes, &sign)
        .is_err()
    {
        return Err(invalid(
            &node,
            "isv.invalid-signature",
            &format!(
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{}",
                html_escape(&content)
            ),
            encoding,
        ));
    }
    let call = Biz::parse(params.get("biz_content").map(String::as_str)).map(|biz| Call {
        method,
        app_id,
        notify_url: get("notify_url"),
        biz,
    });
    Ok(Accepted {
        method,
        call,
        node,
        encoding,
    })
}

/// Whether `timestamp` (Beijing time) is within the allowed skew of *real* time: the merchant's
/// clock is a real clock, whatever the sandbox clock has been advanced to.
fn timestamp_is_current(timestamp: &str, rules: &Rules) -> bool {
    let Some(skew) = rules.timestamp_skew() else {
        return true;
    };
    alipay::time::parse_beijing(timestamp)
        .is_ok_and(|sent| (chrono::Utc::now() - sent).abs() <= skew)
}

/// The escaping Alipay applies to the verification string it echoes.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;")
}
