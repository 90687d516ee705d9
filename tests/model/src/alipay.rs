//! A model of Alipay's side of face-to-face payments: the truth every order must end up
//! agreeing with. Each trade call has its effect here (when the script lets the request
//! arrive), buyers scan and pay on their own, unpaid trades close at `time_expire`, and every
//! change Alipay notifies is put in an outbox the script delivers from, in any order, any
//! number of times.
//!
//! The answers follow Alipay's documented behaviour: an unscanned QR code has no trade
//! (`ACQ.TRADE_NOT_EXIST`); an identical precreate returns the same code; a cancel closes an
//! unpaid trade or refunds a paid one in full (`action=refund`); a refund is idempotent per
//! `out_request_no` (`fund_change=N` on a repeat) and refuses more than is left; a fully
//! refunded trade is `TRADE_CLOSED`.

use alipay::Fen;
use alipay::api::{
    CancelAction, CancelRequest, CancelResponse, CloseRequest, CloseResponse, PayRequest,
    PayResponse, PrecreateRequest, PrecreateResponse, QueryRequest, QueryResponse,
    RefundQueryRequest, RefundQueryResponse, RefundRequest, RefundResponse, RefundStatus,
};
use alipay::notify::TradeStatus;
use alipay::outcome::{Failure, Outcome};
use alipay::time::format_beijing;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

pub const APP_ID: &str = "2021000000000001";
pub const SELLER_ID: &str = "2088000000000001";
/// How long after its `time_expire` an unpaid trade shows as closed.
const CLOSING_LAG: chrono::Duration = chrono::Duration::seconds(30);

/// What the buyer does when the cashier scans their payment code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarcodeBuyer {
    /// The payment goes through at once (`10000`).
    PaysAtOnce,
    /// The app asks the buyer to confirm (`10003`); they may, later, or never.
    MustConfirm,
    /// The code is refused (`ACQ.PAYMENT_AUTH_CODE_INVALID`).
    Declined,
}

/// A trade's state at Alipay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No trade (an unscanned QR code, or nothing at all).
    None,
    Waiting,
    Paid,
    Closed,
}

/// One refund at Alipay: by the refund API (`out_request_no`) or by a cancel (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunded {
    pub out_request_no: Option<String>,
    pub fen: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    pub out_trade_no: String,
    pub total_fen: i64,
    pub time_expire: Option<DateTime<Utc>>,
    /// A QR code was issued for it.
    pub qr: bool,
    pub trade_no: String,
    pub state: State,
    pub paid_at: Option<DateTime<Utc>>,
    pub refunds: Vec<Refunded>,
}

impl Trade {
    pub fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.fen).sum()
    }

    fn payable(&self, now: DateTime<Utc>) -> bool {
        self.time_expire.is_none_or(|expire| now < expire)
    }

    fn status(&self) -> TradeStatus {
        match self.state {
            State::Waiting | State::None => TradeStatus::WaitBuyerPay,
            State::Paid => TradeStatus::TradeSuccess,
            State::Closed => TradeStatus::TradeClosed,
        }
    }
}

/// A notification Alipay has to deliver: its parameters, unsigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub out_trade_no: String,
    pub params: Vec<(&'static str, String)>,
}

/// A row of a day's trade bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    pub out_trade_no: String,
    pub trade_no: String,
    pub refund: bool,
    pub out_request_no: Option<String>,
    pub fen: i64,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Alipay {
    pub trades: BTreeMap<String, Trade>,
    /// What the buyer of each barcode order does.
    pub buyers: BTreeMap<String, BarcodeBuyer>,
    /// Notifications not yet acknowledged, in the order they were sent.
    pub outbox: Vec<Note>,
    notes_sent: u32,
}

fn failure(sub_code: &str) -> Failure {
    Failure {
        code: "40004".into(),
        msg: "Business Failed".into(),
        sub_code: Some(sub_code.into()),
        sub_msg: Some(sub_code.into()),
    }
}

fn not_exist<T>() -> Outcome<T> {
    Outcome::Failed(failure("ACQ.TRADE_NOT_EXIST"))
}

impl Alipay {
    fn trade_no(out_trade_no: &str) -> String {
        format!("2024{out_trade_no}")
    }

    fn notify(&mut self, trade: &Trade, now: DateTime<Utc>, refund: Option<&Refunded>) {
        self.notes_sent += 1;
        let mut params = vec![
            ("notify_time", format_beijing(now)),
            ("notify_type", "trade_status_sync".to_owned()),
            ("notify_id", format!("N{:05}", self.notes_sent)),
            ("app_id", APP_ID.to_owned()),
            ("seller_id", SELLER_ID.to_owned()),
            ("charset", "utf-8".to_owned()),
            ("version", "1.0".to_owned()),
            ("out_trade_no", trade.out_trade_no.clone()),
            ("trade_no", trade.trade_no.clone()),
            ("trade_status", trade.status().as_str().to_owned()),
            ("total_amount", Fen::new(trade.total_fen).to_yuan()),
        ];
        if let Some(paid_at) = trade.paid_at {
            params.push(("gmt_payment", format_beijing(paid_at)));
        }
        if let Some(refund) = refund {
            params.push(("refund_fee", Fen::new(trade.refunded_fen()).to_yuan()));
            params.push(("gmt_refund", format_beijing(refund.at)));
            if let Some(no) = &refund.out_request_no {
                params.push(("out_biz_no", no.clone()));
            }
        }
        self.outbox.push(Note {
            out_trade_no: trade.out_trade_no.clone(),
            params,
        });
    }

    /// Changes the trade (if any) and notifies what changed.
    fn change(
        &mut self,
        out_trade_no: &str,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Trade) -> Option<Option<Refunded>>,
    ) {
        let Some(trade) = self.trades.get_mut(out_trade_no) else {
            return;
        };
        if let Some(refund) = change(trade) {
            let trade = trade.clone();
            self.notify(&trade, now, refund.as_ref());
        }
    }

    /// Unpaid trades close a while after their `time_expire` (they cannot be paid from it on).
    pub fn tick(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self
            .trades
            .values()
            .filter(|t| {
                t.state == State::Waiting
                    && t.time_expire
                        .is_some_and(|expire| now >= expire + CLOSING_LAG)
            })
            .map(|t| t.out_trade_no.clone())
            .collect();
        for no in due {
            self.change(&no, now, |trade| {
                trade.state = State::Closed;
                Some(None)
            });
        }
    }

    /// The buyer scans the QR code of `no` (a trade waiting for payment appears).
    pub fn scan(&mut self, no: &str, now: DateTime<Utc>) {
        self.change(no, now, |trade| {
            (trade.qr && trade.state == State::None && trade.payable(now)).then(|| {
                trade.state = State::Waiting;
                None
            })
        });
    }

    /// The buyer pays (scanning first if need be, or confirming a barcode payment).
    pub fn pay_by_buyer(&mut self, no: &str, now: DateTime<Utc>) {
        self.change(no, now, |trade| {
            let open = trade.state == State::Waiting || (trade.qr && trade.state == State::None);
            (open && trade.payable(now)).then(|| {
                trade.state = State::Paid;
                trade.paid_at = Some(now);
                None
            })
        });
    }

    pub fn precreate(
        &mut self,
        request: &PrecreateRequest,
        now: DateTime<Utc>,
    ) -> Outcome<PrecreateResponse> {
        let no = request.out_trade_no.clone();
        let answer = Outcome::Success(PrecreateResponse {
            out_trade_no: no.clone(),
            qr_code: format!("https://qr.alipay.com/{no}"),
        });
        match self.trades.get(&no).map(|t| t.state) {
            None if request.time_expire.is_some_and(|expire| expire <= now) => {
                Outcome::Failed(failure("ACQ.NOW_TIME_AFTER_EXPIRE_TIME_ERROR"))
            }
            None => {
                self.trades.insert(
                    no.clone(),
                    Trade {
                        out_trade_no: no.clone(),
                        total_fen: request.total_amount.get(),
                        time_expire: request.time_expire,
                        qr: true,
                        trade_no: Self::trade_no(&no),
                        state: State::None,
                        paid_at: None,
                        refunds: Vec::new(),
                    },
                );
                answer
            }
            Some(State::None | State::Waiting) => answer,
            Some(State::Paid) => Outcome::Failed(failure("ACQ.TRADE_HAS_SUCCESS")),
            Some(State::Closed) => Outcome::Failed(failure("ACQ.TRADE_HAS_CLOSE")),
        }
    }

    pub fn pay(&mut self, request: &PayRequest, now: DateTime<Utc>) -> Outcome<PayResponse> {
        let no = request.out_trade_no.clone();
        match self.trades.get(&no).map(|t| t.state) {
            Some(State::Paid) => return Outcome::Failed(failure("ACQ.TRADE_HAS_SUCCESS")),
            Some(State::Closed) => return Outcome::Failed(failure("ACQ.TRADE_HAS_CLOSE")),
            Some(State::Waiting) => return Outcome::Failed(failure("ACQ.TRADE_STATUS_ERROR")),
            Some(State::None) | None => {}
        }
        if request.time_expire.is_some_and(|expire| expire <= now) {
            return Outcome::Failed(failure("ACQ.NOW_TIME_AFTER_EXPIRE_TIME_ERROR"));
        }
        let buyer = self
            .buyers
            .get(&no)
            .copied()
            .unwrap_or(BarcodeBuyer::PaysAtOnce);
        if buyer == BarcodeBuyer::Declined {
            return Outcome::Failed(failure("ACQ.PAYMENT_AUTH_CODE_INVALID"));
        }
        let paid = buyer == BarcodeBuyer::PaysAtOnce;
        let trade = Trade {
            out_trade_no: no.clone(),
            total_fen: request.total_amount.get(),
            time_expire: request.time_expire,
            qr: false,
            trade_no: Self::trade_no(&no),
            state: if paid { State::Paid } else { State::Waiting },
            paid_at: paid.then_some(now),
            refunds: Vec::new(),
        };
        self.trades.insert(no.clone(), trade.clone());
        if paid {
            self.notify(&trade, now, None);
        }
        let answer = PayResponse {
            trade_no: trade.trade_no.clone(),
            out_trade_no: no,
            buyer_logon_id: None,
            buyer_user_id: None,
            buyer_open_id: Some("buyer-open-id".into()),
            total_amount: Some(Fen::new(trade.total_fen)),
            receipt_amount: None,
            buyer_pay_amount: None,
            point_amount: None,
            invoice_amount: None,
            gmt_payment: trade.paid_at.map(format_beijing),
            fund_bill_list: Vec::new(),
        };
        if paid {
            Outcome::Success(answer)
        } else {
            Outcome::WaitingForBuyer(answer)
        }
    }

    pub fn query(&self, request: &QueryRequest) -> Outcome<QueryResponse> {
        let Some(trade) = request
            .trade
            .as_out_trade_no()
            .and_then(|no| self.trades.get(no))
            .filter(|t| t.state != State::None)
        else {
            return not_exist();
        };
        Outcome::Success(QueryResponse {
            trade_no: trade.trade_no.clone(),
            out_trade_no: trade.out_trade_no.clone(),
            trade_status: trade.status(),
            total_amount: Fen::new(trade.total_fen),
            receipt_amount: None,
            buyer_pay_amount: None,
            buyer_logon_id: None,
            buyer_user_id: None,
            buyer_open_id: trade.paid_at.map(|_| "buyer-open-id".to_owned()),
            send_pay_date: trade.paid_at.map(format_beijing),
            store_id: None,
            terminal_id: None,
        })
    }

    pub fn close(&mut self, request: &CloseRequest, now: DateTime<Utc>) -> Outcome<CloseResponse> {
        let no = request
            .trade
            .as_out_trade_no()
            .unwrap_or_default()
            .to_owned();
        match self.trades.get(&no).map(|t| t.state) {
            None | Some(State::None) => not_exist(),
            Some(State::Waiting) => {
                self.change(&no, now, |trade| {
                    trade.state = State::Closed;
                    Some(None)
                });
                Outcome::Success(CloseResponse {
                    trade_no: Some(Self::trade_no(&no)),
                    out_trade_no: Some(no),
                })
            }
            Some(State::Paid | State::Closed) => Outcome::Failed(failure("ACQ.TRADE_STATUS_ERROR")),
        }
    }

    /// `busy`: Alipay asks for the cancel to be sent again (`retry_flag=Y`), doing nothing.
    pub fn cancel(
        &mut self,
        request: &CancelRequest,
        now: DateTime<Utc>,
        busy: bool,
    ) -> Outcome<CancelResponse> {
        let no = request
            .trade
            .as_out_trade_no()
            .unwrap_or_default()
            .to_owned();
        let answer = |action, retry_flag| {
            Outcome::Success(CancelResponse {
                trade_no: Some(Self::trade_no(&no)),
                out_trade_no: Some(no.clone()),
                retry_flag,
                action,
                gmt_refund_pay: None,
            })
        };
        if busy {
            return answer(CancelAction::NotReported, true);
        }
        let action = match self.trades.get(&no) {
            // Nothing to close: Alipay answers `close` (whether it then refuses a late pay of
            // this number is not documented, so here it does not).
            None => CancelAction::Close,
            Some(trade) => match trade.state {
                State::None | State::Waiting => {
                    self.change(&no, now, |trade| {
                        let existed = trade.state == State::Waiting;
                        trade.state = State::Closed;
                        existed.then_some(None)
                    });
                    CancelAction::Close
                }
                State::Paid => {
                    self.change(&no, now, |trade| {
                        let refund = Refunded {
                            out_request_no: None,
                            fen: trade.total_fen - trade.refunded_fen(),
                            at: now,
                        };
                        trade.refunds.push(refund.clone());
                        trade.state = State::Closed;
                        Some(Some(refund))
                    });
                    CancelAction::Refund
                }
                State::Closed if trade.refunds.iter().any(|r| r.out_request_no.is_none()) => {
                    CancelAction::Refund
                }
                State::Closed => CancelAction::Close,
            },
        };
        answer(action, false)
    }

    pub fn refund(
        &mut self,
        request: &RefundRequest,
        now: DateTime<Utc>,
    ) -> Outcome<RefundResponse> {
        let no = request
            .trade
            .as_out_trade_no()
            .unwrap_or_default()
            .to_owned();
        let Some(trade) = self.trades.get(&no) else {
            return not_exist();
        };
        if trade.paid_at.is_none() {
            return Outcome::Failed(failure("ACQ.TRADE_STATUS_ERROR"));
        }
        let fen = request.refund_amount.get();
        let answer = |trade: &Trade, fund_change| {
            Outcome::Success(RefundResponse {
                trade_no: trade.trade_no.clone(),
                out_trade_no: trade.out_trade_no.clone(),
                buyer_logon_id: None,
                fund_change,
                refund_fee: Fen::new(trade.refunded_fen()),
                gmt_refund_pay: Some(format_beijing(now)),
            })
        };
        if let Some(known) = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no.is_some() && r.out_request_no == request.out_request_no)
        {
            return if known.fen == fen {
                answer(trade, false)
            } else {
                Outcome::Failed(failure("ACQ.DISCORDANT_REPEAT_REQUEST"))
            };
        }
        if fen > trade.total_fen - trade.refunded_fen() {
            return Outcome::Failed(failure("ACQ.REASON_TRADE_REFUND_FEE_ERR"));
        }
        let refund = Refunded {
            out_request_no: request.out_request_no.clone(),
            fen,
            at: now,
        };
        self.change(&no, now, |trade| {
            trade.refunds.push(refund.clone());
            if trade.refunded_fen() >= trade.total_fen {
                trade.state = State::Closed;
            }
            Some(Some(refund))
        });
        match self.trades.get(&no) {
            Some(trade) => answer(trade, true),
            None => not_exist(),
        }
    }

    pub fn refund_query(&self, request: &RefundQueryRequest) -> Outcome<RefundQueryResponse> {
        let Some(trade) = request
            .trade
            .as_out_trade_no()
            .and_then(|no| self.trades.get(no))
            .filter(|t| t.state != State::None)
        else {
            return not_exist();
        };
        let found = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no.as_deref() == Some(request.out_request_no.as_str()));
        Outcome::Success(match found {
            Some(refund) => RefundQueryResponse {
                trade_no: Some(trade.trade_no.clone()),
                out_trade_no: Some(trade.out_trade_no.clone()),
                out_request_no: refund.out_request_no.clone(),
                total_amount: Some(Fen::new(trade.total_fen)),
                refund_amount: Some(Fen::new(refund.fen)),
                refund_status: RefundStatus::Success,
                gmt_refund_pay: Some(format_beijing(refund.at)),
            },
            None => RefundQueryResponse {
                trade_no: None,
                out_trade_no: None,
                out_request_no: None,
                total_amount: None,
                refund_amount: None,
                refund_status: RefundStatus::NotSucceeded,
                gmt_refund_pay: None,
            },
        })
    }

    /// The trade bill of one Beijing day: every payment and refund finished on it.
    pub fn bill(&self, day: NaiveDate) -> Vec<BillRow> {
        let mut rows = Vec::new();
        for trade in self.trades.values() {
            if let Some(paid_at) = trade.paid_at.filter(|at| domain::beijing_day(*at) == day) {
                rows.push(BillRow {
                    out_trade_no: trade.out_trade_no.clone(),
                    trade_no: trade.trade_no.clone(),
                    refund: false,
                    out_request_no: None,
                    fen: trade.total_fen,
                    finished_at: paid_at,
                });
            }
            for refund in trade
                .refunds
                .iter()
                .filter(|r| domain::beijing_day(r.at) == day)
            {
                rows.push(BillRow {
                    out_trade_no: trade.out_trade_no.clone(),
                    trade_no: trade.trade_no.clone(),
                    refund: true,
                    out_request_no: refund.out_request_no.clone(),
                    fen: refund.fen,
                    finished_at: refund.at,
                });
            }
        }
        rows.sort_by_key(|row| row.finished_at);
        rows
    }
}
