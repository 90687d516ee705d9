//! The functions' log lines as Lambda receives them (JSON format): one object a line with the
//! level, the message and its fields, and the request's span (function, request id, order
//! number) once.

use f2f_runtime::Function;
use f2f_runtime::telemetry::{self, LogSettings};
use lambda_http::tracing::subscriber::filter::LevelFilter;
use lambda_http::tracing::subscriber::fmt::MakeWriter;
use lambda_http::{Body, Request};
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Everything logged, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn a_json_line_carries_the_request_span_once_and_debug_is_left_out() {
    let captured = Captured::default();
    let settings = LogSettings {
        json: true,
        level: LevelFilter::INFO,
    };
    telemetry::install_tracing(&settings, captured.clone());

    let request = Request::new(Body::Empty);
    let span = telemetry::request_span(Function::Pay, &request);
    span.in_scope(|| {
        telemetry::record_out_trade_no("T100");
        tracing::debug!(detail = "left out", "below the level");
        tracing::info!(amount_fen = 100, "order claimed");
    });

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line at INFO: {text}");
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["message"], "order claimed");
    assert_eq!(line["fields"]["amount_fen"], 100);
    assert_eq!(line["span"]["name"], "request");
    assert_eq!(line["span"]["function"], "pay");
    assert_eq!(line["span"]["out_trade_no"], "T100");
    assert_eq!(line["span"]["method"], "GET");
    assert!(line["span"].get("request_id").is_some(), "{line}");
    assert!(
        line.get("spans").is_none(),
        "the span list is left out: {line}"
    );
    assert!(
        line.get("timestamp").is_none(),
        "CloudWatch stamps the line: {line}"
    );
}
