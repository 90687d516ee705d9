//! HTML helpers: escaping, URL path segments, the page frame and its CSS.
//!
//! Every value that goes into a page passes through [`esc`]. A five-character escape is all
//! HTML needs when every attribute is double-quoted and nothing is put into `<script>`,
//! `<style>` or URLs unencoded (path segments go through [`seg`] first), which is how these
//! pages are written; a dependency (template engine or escaping crate) would add more than it
//! saves here.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt;

/// Text made safe for HTML text and double- or single-quoted attribute values.
pub struct Escaped<'a>(&'a str);

/// Escapes `&`, `<`, `>`, `"` and `'` when displayed.
pub fn esc(text: &str) -> Escaped<'_> {
    Escaped(text)
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            let entity = match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            };
            f.write_str(entity)?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Characters kept as they are in a URL path segment: letters, digits and `-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `out_trade_no` as a URL path segment (percent-encoded; still to be HTML-escaped).
pub fn seg(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// The URL of a trade's page.
pub fn trade_href(out_trade_no: &str) -> String {
    format!("/trades/{}", seg(out_trade_no))
}

/// What the header shows about the running sandbox.
pub struct Header<'a> {
    pub app_id: &'a str,
    pub seller_id: &'a str,
    pub gateway_url: &'a str,
    pub now: &'a str,
    pub time_scale: f64,
}

/// A whole page: head, CSS, header with the sandbox identity and clock, then `body`.
pub fn page(title: &str, header: &Header<'_>, body: &str) -> String {
    let scale = if header.time_scale == 1.0 {
        "1× (real time)".to_owned()
    } else {
        format!(
            "{}× (sandbox time runs {} times faster than real time)",
            header.time_scale, header.time_scale
        )
    };
    format!(
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>{title} · Alipay sandbox</title><style>{css}</style></head><body>",
            "<header><div class=\"brand\"><a href=\"/\">Alipay sandbox</a></div>",
            "<dl class=\"facts\">",
            "<div><dt>Sandbox clock</dt><dd id=\"clock\">{now} <small>Beijing time</small></dd></div>",
            "<div><dt>Time scale</dt><dd id=\"time-scale\">{scale}</dd></div>",
            "<div><dt>app_id</dt><dd><code>{app_id}</code></dd></div>",
            "<div><dt>seller_id</dt><dd><code>{seller_id}</code></dd></div>",
            "<div><dt>Gateway</dt><dd><code>{gateway}</code></dd></div>",
            "</dl></header><main>{body}</main>",
            "<footer>Local simulator: no real money, no real Alipay. ",
            "<a href=\"/sandbox\">Control API (JSON)</a></footer></body></html>\n",
        ),
        title = esc(title),
        css = CSS,
        now = esc(header.now),
        scale = esc(&scale),
        app_id = esc(header.app_id),
        seller_id = esc(header.seller_id),
        gateway = esc(header.gateway_url),
        body = body,
    )
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI','Noto Sans CJK SC','PingFang SC',sans-serif;color:#1f2328;background:#f6f7f9}\
header{background:#1677ff;color:#fff;padding:12px 24px;display:flex;flex-wrap:wrap;gap:8px 32px;align-items:center}\
header a{color:#fff;text-decoration:none}\
.brand{font-size:20px;font-weight:600}\
.facts{display:flex;flex-wrap:wrap;gap:4px 24px;margin:0}\
.facts div{display:flex;gap:6px;align-items:baseline}\
.facts dt{opacity:.8;font-size:13px}.facts dd{margin:0}\
.facts code{color:#fff;background:rgba(255,255,255,.15)}\
main{max-width:1180px;margin:0 auto;padding:16px 24px}\
footer{max-width:1180px;margin:0 auto;padding:8px 24px 24px;color:#656d76;font-size:13px}\
h1{font-size:22px;margin:8px 0 12px}h2{font-size:17px;margin:24px 0 8px}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}\
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eaeef2;vertical-align:top}\
th{background:#f0f3f6;font-weight:600;font-size:13px}\
table.details th{width:210px;background:#f6f8fa}\
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f4;padding:1px 4px;border-radius:4px;word-break:break-all}\
a{color:#0958d9}\
.amount{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap;background:#eaeef2}\
.s-AWAITING_SCAN{background:#e6f4ff;color:#0958d9}.s-WAIT_BUYER_PAY{background:#fff7e6;color:#ad4e00}\
.s-TRADE_SUCCESS,.s-TRADE_FINISHED{background:#e8f7ee;color:#116329}.s-TRADE_CLOSED,.s-LAPSED,.s-VOIDED{background:#f0f0f0;color:#57606a}\
.muted{color:#656d76}.ok{color:#116329}.bad{color:#cf222e}\
.flash{padding:8px 12px;border-radius:6px;margin:0 0 12px}\
.flash.ok{background:#e8f7ee;border:1px solid #aee0c0}.flash.bad{background:#ffebe9;border:1px solid #ffc1bc}\
.trade{display:grid;grid-template-columns:minmax(0,1fr) 280px;gap:24px;align-items:start}\
.side{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;text-align:center}\
.qr svg{width:240px;height:240px;display:block;margin:0 auto}\
.qr .note{font-size:13px;margin:6px 0 0}.qr.used svg{opacity:.3}\
td.t{white-space:nowrap}\
.buttons{display:flex;flex-direction:column;gap:8px;margin-top:16px}\
.buttons form{margin:0}\
.buttons button{width:100%;padding:9px 12px;font:inherit;font-weight:600;border-radius:6px;border:1px solid #1677ff;background:#1677ff;color:#fff;cursor:pointer}\
.buttons button.secondary{background:#fff;color:#1677ff}\
.buttons button:disabled{background:#eaeef2;border-color:#d0d7de;color:#8c959f;cursor:not-allowed}\
.hint{font-size:12px;color:#656d76;margin:2px 0 0}\
details{margin-top:4px}summary{cursor:pointer;color:#0958d9}\
.notification{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;margin-bottom:12px}\
.notification h3{font-size:15px;margin:0 0 6px}\
@media(max-width:820px){.trade{grid-template-columns:1fr}}\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters_and_nothing_else() {
        assert_eq!(
            esc(r#"<script>alert("x" + 'y')</script> & 支付宝"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; 支付宝"
        );
        assert_eq!(esc("plain 文本").to_string(), "plain 文本");
        assert_eq!(esc("").to_string(), "");
        assert_eq!(esc("&amp;").to_string(), "&amp;amp;");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("T_2024-01.x~"), "T_2024-01.x~");
        assert_eq!(seg("a/b?c#d e\"<"), "a%2Fb%3Fc%23d%20e%22%3C");
        assert_eq!(trade_href("单号"), "/trades/%E5%8D%95%E5%8F%B7");
    }
}
