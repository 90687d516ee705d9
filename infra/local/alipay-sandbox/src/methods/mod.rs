//! The gateway methods and Alipay's rules for each. Trade methods are synchronous rules over
//! [`State`] run under the state lock; the bill method is delegated to [`crate::bill`].

mod cancel;
mod close;
mod pay;
mod precreate;
mod query;
mod refund;
mod refund_query;
mod views;

use crate::answer::Answer;
use crate::biz::Biz;
use crate::sandbox::Sandbox;
use crate::state::{Ctx, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Precreate,
    Pay,
    Query,
    Close,
    Cancel,
    Refund,
    RefundQuery,
    BillDownloadUrl,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Precreate,
        Method::Pay,
        Method::Query,
        Method::Close,
        Method::Cancel,
        Method::Refund,
        Method::RefundQuery,
        Method::BillDownloadUrl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Precreate => "alipay.trade.precreate",
            Method::Pay => "alipay.trade.pay",
            Method::Query => "alipay.trade.query",
            Method::Close => "alipay.trade.close",
            Method::Cancel => "alipay.trade.cancel",
            Method::Refund => "alipay.trade.refund",
            Method::RefundQuery => "alipay.trade.fastpay.refund.query",
            Method::BillDownloadUrl => "alipay.data.dataservice.bill.downloadurl.query",
        }
    }

    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A verified gateway call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub app_id: String,
    /// The system parameter `notify_url`, if sent.
    pub notify_url: Option<String>,
    pub biz: Biz,
}

/// Runs `call` for real and returns its answer.
pub async fn execute(sandbox: &Sandbox, call: &Call) -> Answer {
    match call.method {
        Method::BillDownloadUrl => crate::bill::download_url(sandbox, &call.biz).await,
        method => {
            sandbox
                .mutate(|state, ctx| run_trade_method(method, state, ctx, call))
                .await
        }
    }
}

fn run_trade_method(method: Method, state: &mut State, ctx: &Ctx<'_>, call: &Call) -> Answer {
    let outcome = match method {
        Method::Precreate => precreate::run(state, ctx, call),
        Method::Pay => pay::run(state, ctx, call),
        Method::Query => query::run(state, call),
        Method::Close => close::run(state, ctx, call),
        Method::Cancel => cancel::run(state, ctx, call),
        Method::Refund => refund::run(state, ctx, call),
        Method::RefundQuery => refund_query::run(state, call),
        Method::BillDownloadUrl => Err(Answer::unknown()),
    };
    outcome.unwrap_or_else(|refusal| refusal)
}
