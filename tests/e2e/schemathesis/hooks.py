"""Schemathesis hooks for the merchant API of a running local stack.

Used by tests/e2e/tests/schemathesis.rs and `make schemathesis` (SCHEMATHESIS_HOOKS names this
file; schemathesis.toml beside it holds the checks). The stack is the one described by the
stack file that SCHEMATHESIS_STACK_FILE names (default `.local/stack.json`, written by
`make run`).

- Every `/v1/*` request is signed with the stack's merchant key as infra/api/README.md
  ("Authentication") describes, over the bytes actually sent, so that the cases test the API
  behind the authentication rather than the authentication itself.
- A few orders are made first (one paid, with a refund; one waiting for the buyer), and the
  generated path parameters name them some of the time, so that reads and refunds also reach
  their 200 and 201 rather than only 404.
- Two checks: every JSON error (4xx, 5xx) has a string `code` and `message`; every operation
  answered 2xx at least once in the run.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import requests
import schemathesis
from hypothesis import strategies as st

STACK = json.loads(Path(os.environ.get("SCHEMATHESIS_STACK_FILE", ".local/stack.json")).read_text())
KEY_ID = STACK["merchant_key"]["key_id"]
SECRET = Path(STACK["merchant_key"]["secret_file"]).read_text().strip().encode()
NOTIFY_PATH = "/alipay/notify"
GATEWAY_NOT_FOUND = (404, b'{"message":"Not Found"}')
# The routes of template.yaml; API Gateway answers any other method and path itself.
ROUTES = [
    ("POST", re.compile(r"/v1/payments")),
    ("GET", re.compile(r"/v1/payments/[^/]+")),
    ("POST", re.compile(r"/v1/payments/[^/]+/refunds")),
    ("GET", re.compile(r"/v1/payments/[^/]+/refunds/[^/]+")),
    ("POST", re.compile(re.escape(NOTIFY_PATH))),
]


def canonical_query(raw_query):
    """The query's canonical form: decoded pairs sorted, each side percent-encoded (RFC 3986)."""
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True, errors="strict"))
    return "&".join(f"{quote(k, safe='-._~')}={quote(v, safe='-._~')}" for k, v in pairs)


class MerchantSignature(requests.auth.AuthBase):
    """The four X-* headers of a merchant request, signed over the prepared request."""

    def __call__(self, request):
        url = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        try:
            query = canonical_query(url.query)
        except UnicodeDecodeError:
            # No canonical form: the API refuses it (400 invalid_query) whatever the signature.
            query = ""
        body_hash = hashlib.sha256(body).hexdigest()
        to_sign = "\n".join([request.method.upper(), url.path, query, timestamp, nonce, body_hash])
        signature = base64.b64encode(hmac.new(SECRET, to_sign.encode(), hashlib.sha256).digest())
        request.headers.update(
            {
                "X-Key-Id": KEY_ID,
                "X-Timestamp": timestamp,
                "X-Nonce": nonce,
                "X-Signature": signature.decode(),
            }
        )
        return request


SIGNER = MerchantSignature()


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path != NOTIFY_PATH:
        kwargs["auth"] = SIGNER


def api(method, path, body=None):
    """A signed call to the stack's API; the answer's JSON, refused unless 2xx."""
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    response = requests.request(
        method, STACK["api_url"] + path, data=data, headers=headers, auth=SIGNER, timeout=60
    )
    if not response.ok:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def seed():
    """An order paid in full with a refund of 1 fen, and an order waiting for its buyer."""
    run = f"ST{int(time.time() * 1000)}"
    paid, pending, refund = f"{run}_P", f"{run}_W", f"{run}_R"
    # The largest amount: generated refunds can take from it for a long run.
    for number, fen in [(paid, 10_000_000_000), (pending, 1)]:
        order = {"out_trade_no": number, "amount_fen": fen, "subject": "seed", "scene": "qr"}
        api("POST", "/v1/payments", order)
    paying = requests.post(f"{STACK['sandbox_url']}/sandbox/trades/{paid}/pay", timeout=30)
    paying.raise_for_status()
    deadline = time.monotonic() + 30
    while api("GET", f"/v1/payments/{paid}")["status"] != "PAID":
        if time.monotonic() > deadline:
            raise RuntimeError(f"seed order {paid} was not paid")
        time.sleep(0.2)
    api("POST", f"/v1/payments/{paid}/refunds", {"out_request_no": refund, "amount_fen": 1})
    return {"paid": paid, "pending": pending, "refund": refund}


SEED = seed()


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    """The generated parameters, or ones naming the seeded orders and refund."""
    paid, pending = {"out_trade_no": SEED["paid"]}, {"out_trade_no": SEED["pending"]}
    operation_id = context.operation.definition.raw.get("operationId")
    if operation_id in ("getPayment", "createRefund"):
        known = [paid, pending]
    elif operation_id == "getRefund":
        # The seeded refund, or a generated refund number of the paid order (refund_not_found).
        # (Negative generation can leave the parameters out altogether: None.)
        generated = path_parameters or {}
        known = [{**paid, "out_request_no": SEED["refund"]}, {**generated, **paid}]
    else:
        known = []
    return st.sampled_from([path_parameters, *known])


@schemathesis.hook
def map_body(context, body):
    # JSON Schema counts 1500.0 as an integer; the API refuses any amount written with a
    # fraction or an exponent (documented), so such a value is sent as the integer it stands for.
    if not isinstance(body, dict):
        return body
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in body.items()}


def gateway_not_found(response):
    """API Gateway's own answer to a method and path that have no route."""
    sent = response.request
    routed = any(
        sent.method == method and pattern.fullmatch(urlsplit(sent.url).path)
        for method, pattern in ROUTES
    )
    return not routed and (response.status_code, response.content) == GATEWAY_NOT_FOUND


@schemathesis.check
def error_has_code_and_message(ctx, response, case):
    """Every error of the merchant API is JSON with a string `code` and `message`."""
    if response.status_code < 400 or case.operation.path == NOTIFY_PATH:
        return None
    if gateway_not_found(response):
        return None
    status, text = response.status_code, response.content[:200]
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{status} is not JSON ({error}): {text!r}")
    fields = body if isinstance(body, dict) else {}
    if not all(isinstance(fields.get(name), str) for name in ("code", "message")):
        raise AssertionError(f"{status} has no string code and message: {text!r}")
    return None


@schemathesis.check
class EveryOperationSucceeds:
    """Every operation answered 2xx at least once: positive cases get through, not only refusals.
    Prints how often each operation answered each status (replays while shrinking included)."""

    def __init__(self):
        self.statuses = {}

    def after_response(self, ctx, response, case):
        self.statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1

    def after_run(self, ctx):
        for label, counts in sorted(self.statuses.items()):
            print(f"statuses {label}: {dict(sorted(counts.items()))}", flush=True)
        never = sorted(
            label
            for label, counts in self.statuses.items()
            if not any(200 <= status < 300 for status in counts)
        )
        if never:
            raise AssertionError("never answered 2xx: " + ", ".join(never))
