//! Daily bills (`alipay.data.dataservice.bill.downloadurl.query`). A placeholder: every bill
//! is `isp.bill_not_exist` for now. The bill implementation replaces [`download_url`] (it gets
//! the whole [`Sandbox`]: [`Sandbox::trades`] has every trade with amounts, times, refunds,
//! store/operator/terminal ids, subject, body and buyer; [`Sandbox::base_url`] builds download
//! URLs) and serves the files from [`routes`], which the server already merges.

use crate::answer::Answer;
use crate::biz::Biz;
use crate::sandbox::Sandbox;
use axum::Router;

/// Answers the bill method. `bill_type` (`trade`/`signcustomer`) and `bill_date`
/// (`yyyy-MM-dd` or `yyyy-MM`) are in `biz`.
pub async fn download_url(_sandbox: &Sandbox, _biz: &Biz) -> Answer {
    Answer::business("isp.bill_not_exist", "账单不存在")
}

/// Routes for bill downloads (none yet).
pub fn routes() -> Router<Sandbox> {
    Router::new()
}
