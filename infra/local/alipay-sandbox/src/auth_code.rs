//! The buyer behind a barcode payment (`alipay.trade.pay`) is chosen by the payment code the
//! merchant scanned. Sandbox codes are 18 digits: `28` `SS` `NNNN` `RRRRRRRRRR`, where `SS`
//! selects the behaviour, `NNNN` is its parameter (seconds, for delayed outcomes) and the ten
//! `R` digits identify the buyer (the same digits always give the same buyer). Anything else is
//! refused as `ACQ.PAYMENT_AUTH_CODE_INVALID`, like a stale or mistyped code. The table is
//! documented in the README.

/// What happens when a code is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayBehaviour {
    /// `00`: 10000, TRADE_SUCCESS at once.
    Success,
    /// `01`: 10003, then the buyer confirms after `NNNN` sandbox seconds → TRADE_SUCCESS.
    WaitThenPay { seconds: u32 },
    /// `02`: 10003 and the buyer never confirms: WAIT_BUYER_PAY until closed, cancelled or
    /// expired (or paid through the control API).
    WaitForever,
    /// `03`: 10003, then the buyer declines after `NNNN` sandbox seconds → TRADE_CLOSED.
    WaitThenDecline { seconds: u32 },
    /// `04`: 20000, but the trade WAS paid (TRADE_SUCCESS): only a query tells.
    UnknownButPaid,
    /// `05`: 20000, and no trade was created (query → ACQ.TRADE_NOT_EXIST).
    UnknownNotCreated,
    /// `06`: 20000, and the trade waits for the buyer (WAIT_BUYER_PAY, never completes).
    UnknownStillWaiting,
    /// `10`-`14`: a definitive refusal.
    Fail(PayFailure),
}

/// Definitive barcode payment failures (`40004`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayFailure {
    /// `10` (and every code outside the conventions): no trade is created.
    AuthCodeInvalid,
    /// `11`: the trade is created and closed.
    BalanceNotEnough,
    /// `12`: the trade is created and closed.
    BankcardBalanceNotEnough,
    /// `13`: the trade is created and closed.
    PaymentFail,
    /// `14`: the trade is created and closed.
    DayLimit,
}

impl PayFailure {
    pub fn sub_code(self) -> &'static str {
        match self {
            PayFailure::AuthCodeInvalid => "ACQ.PAYMENT_AUTH_CODE_INVALID",
            PayFailure::BalanceNotEnough => "ACQ.BUYER_BALANCE_NOT_ENOUGH",
            PayFailure::BankcardBalanceNotEnough => "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
            PayFailure::PaymentFail => "ACQ.PAYMENT_FAIL",
            PayFailure::DayLimit => "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        }
    }

    pub fn sub_msg(self) -> &'static str {
        match self {
            PayFailure::AuthCodeInvalid => {
                "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款"
            }
            PayFailure::BalanceNotEnough => "买家余额不足",
            PayFailure::BankcardBalanceNotEnough => "用户的银行卡余额不足",
            PayFailure::PaymentFail => "支付失败",
            PayFailure::DayLimit => "买家付款日限额超限",
        }
    }

    /// Whether Alipay created (and closed) a trade before refusing.
    pub fn creates_trade(self) -> bool {
        self != PayFailure::AuthCodeInvalid
    }
}

/// A decoded sandbox payment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub behaviour: PayBehaviour,
    /// The ten buyer digits.
    pub buyer_digits: String,
}

impl AuthCode {
    pub fn parse(code: &str) -> AuthCode {
        let invalid = AuthCode {
            behaviour: PayBehaviour::Fail(PayFailure::AuthCodeInvalid),
            buyer_digits: String::new(),
        };
        if code.len() != 18 || !code.bytes().all(|b| b.is_ascii_digit()) || !code.starts_with("28")
        {
            return invalid;
        }
        let (selector, parameter, buyer) = (&code[2..4], &code[4..8], &code[8..18]);
        let seconds: u32 = parameter.parse().unwrap_or(0);
        let behaviour = match selector {
            "00" => PayBehaviour::Success,
            "01" => PayBehaviour::WaitThenPay { seconds },
            "02" => PayBehaviour::WaitForever,
            "03" => PayBehaviour::WaitThenDecline { seconds },
            "04" => PayBehaviour::UnknownButPaid,
            "05" => PayBehaviour::UnknownNotCreated,
            "06" => PayBehaviour::UnknownStillWaiting,
            "11" => PayBehaviour::Fail(PayFailure::BalanceNotEnough),
            "12" => PayBehaviour::Fail(PayFailure::BankcardBalanceNotEnough),
            "13" => PayBehaviour::Fail(PayFailure::PaymentFail),
            "14" => PayBehaviour::Fail(PayFailure::DayLimit),
            _ => return invalid,
        };
        AuthCode {
            behaviour,
            buyer_digits: buyer.to_owned(),
        }
    }

    /// The buyer this code belongs to: `208810` + the ten buyer digits.
    pub fn buyer(&self) -> crate::trade::Buyer {
        crate::trade::Buyer {
            user_id: format!("208810{}", self.buyer_digits),
            logon_id: crate::ids::masked_logon_id(&self.buyer_digits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_conventions() {
        assert_eq!(
            AuthCode::parse("280000000000000001").behaviour,
            PayBehaviour::Success
        );
        assert_eq!(
            AuthCode::parse("280100300000000001").behaviour,
            PayBehaviour::WaitThenPay { seconds: 30 }
        );
        assert_eq!(
            AuthCode::parse("281300000000000001").behaviour,
            PayBehaviour::Fail(PayFailure::PaymentFail)
        );
        for bad in [
            "",
            "28000000000000000",
            "2800000000000000012",
            "290000000000000001",
            "289900000000000001",
            "28000000000000000a",
        ] {
            assert_eq!(
                AuthCode::parse(bad).behaviour,
                PayBehaviour::Fail(PayFailure::AuthCodeInvalid),
                "{bad}"
            );
        }
        assert_eq!(
            AuthCode::parse("280000000123456789").buyer().user_id,
            "2088100123456789"
        );
    }
}
