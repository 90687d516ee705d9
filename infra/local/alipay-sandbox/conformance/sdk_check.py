#!/usr/bin/env python3
"""Drives the official Alipay Python SDK (PyPI `alipay-sdk-python`) against an alipay-sandbox.

A merchant who points the official SDK at the sandbox must get answers the SDK accepts:
`DefaultAlipayClient.execute` signs the request with the app key and verifies the response
signature with Alipay's public key itself (it raises on a bad signature); notifications are
checked the way Alipay's documentation tells Python merchants to: drop `sign` and `sign_type`,
build the SDK's sign content (`get_sign_content`: sorted `k=v` joined by `&`) and call the SDK's
`verify_with_rsa`.

    sdk_check.py --gateway URL --app-id ID --app-private-key FILE --alipay-public-key FILE \
                 [--charset utf-8|GBK] COMMAND ...

    COMMAND: precreate --out-trade-no NO --amount 0.10 --subject TEXT [--notify-url URL]
             query --out-trade-no NO
             verify-notification --body-file FILE   (the raw form body the sandbox POSTed)

Prints one JSON object on stdout. Exits 0 only when the SDK call went through (request signed,
response signature verified) and the answer is a success (or the notification verified);
otherwise 1, with `"ok": false`, `"error_kind"` (`sdk`: the SDK raised, e.g. `response sign
verify failed`; `business`: a verified answer that is not a success; `notification`: the
notification did not verify) and `"error"`.
"""

import argparse
import http.client
import json
import sys
import urllib.parse


def emit(result, code):
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    sys.exit(code)


def fail(kind, message, **extra):
    emit(dict(ok=False, error_kind=kind, error=message, **extra), 1)


try:
    from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
    from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
    from alipay.aop.api.constant.CommonConstants import ALIPAY_SDK_PYTHON_VERSION
    from alipay.aop.api.domain.AlipayTradePrecreateModel import AlipayTradePrecreateModel
    from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
    from alipay.aop.api.request.AlipayTradePrecreateRequest import AlipayTradePrecreateRequest
    from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
    from alipay.aop.api.response.AlipayTradePrecreateResponse import AlipayTradePrecreateResponse
    from alipay.aop.api.response.AlipayTradeQueryResponse import AlipayTradeQueryResponse
    from alipay.aop.api.util import WebUtils
    from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa
    from Crypto.PublicKey import RSA
except ImportError as e:
    fail("setup", f"the official Alipay SDK is not installed ({e}): run `make test-deps`")


def get_http_connection(url, query_string, timeout):
    """Replaces the SDK's `WebUtils.get_http_connection`, which ignores the port of
    `server_url`: it always connects to 80 (443 for https) and then fails building the URL
    (`str + int`). Real Alipay never has a port, the sandbox always does. This keeps the port
    and otherwise does what the SDK does (same connection classes, same absolute request URL);
    signing, sending (`do_post`) and response verification stay the SDK's own."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "https":
        connection = http.client.HTTPSConnection(parsed.hostname, parsed.port or 443, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}?{query_string}", connection


WebUtils.get_http_connection = get_http_connection


def bare_base64(pem_text):
    """The key string a merchant pastes into AlipayClientConfig: PEM without markers."""
    return "".join(
        line.strip()
        for line in pem_text.strip().splitlines()
        if line.strip() and not line.startswith("-----")
    )


def app_private_key(path):
    """The SDK signs with python-rsa's `PrivateKey.load_pkcs1`: it needs PKCS#1 (`RSA PRIVATE
    KEY`). The sandbox writes PKCS#8; pycryptodome (an SDK dependency) converts it."""
    with open(path, encoding="ascii") as f:
        key = RSA.import_key(f.read())
    return bare_base64(key.export_key(format="PEM", pkcs=1).decode("ascii"))


def alipay_public_key(path):
    """SPKI (`PUBLIC KEY`), which the SDK loads with `load_pkcs1_openssl_pem`."""
    with open(path, encoding="ascii") as f:
        return bare_base64(f.read())


def client(args):
    config = AlipayClientConfig()
    config.server_url = args.gateway
    config.app_id = args.app_id
    config.app_private_key = app_private_key(args.app_private_key)
    config.alipay_public_key = alipay_public_key(args.alipay_public_key)
    config.sign_type = "RSA2"
    config.charset = args.charset
    config.timeout = 15
    # With skip_sign the SDK neither signs nor verifies; the default is False. Make sure.
    config.skip_sign = False
    return DefaultAlipayClient(config)


def execute(args, request, response):
    """`execute` signs, sends, and verifies the response signature (raising when it fails)."""
    try:
        content = client(args).execute(request)
    except Exception as e:  # the SDK raises RequestException/ResponseException and others
        fail("sdk", str(e), exception=type(e).__name__)
    response.parse_response_content(content)
    result = dict(
        ok=response.is_success() and response.code == "10000",
        verified=True,
        sdk=ALIPAY_SDK_PYTHON_VERSION,
        code=response.code,
        msg=response.msg,
        sub_code=response.sub_code,
        sub_msg=response.sub_msg,
    )
    return result


def finish(result):
    if not result["ok"]:
        result.update(error_kind="business", error=f"{result['code']} {result['sub_code']}")
        emit(result, 1)
    emit(result, 0)


def precreate(args):
    model = AlipayTradePrecreateModel()
    model.out_trade_no = args.out_trade_no
    model.total_amount = args.amount
    model.subject = args.subject
    request = AlipayTradePrecreateRequest(biz_model=model)
    if args.notify_url:
        request.notify_url = args.notify_url
    response = AlipayTradePrecreateResponse()
    result = execute(args, request, response)
    result.update(out_trade_no=response.out_trade_no, qr_code=response.qr_code)
    finish(result)


def query(args):
    model = AlipayTradeQueryModel()
    model.out_trade_no = args.out_trade_no
    request = AlipayTradeQueryRequest(biz_model=model)
    response = AlipayTradeQueryResponse()
    result = execute(args, request, response)
    result.update(
        out_trade_no=response.out_trade_no,
        trade_no=response.trade_no,
        trade_status=response.trade_status,
        total_amount=response.total_amount,
        buyer_user_id=response.buyer_user_id,
        buyer_open_id=response.buyer_open_id,
    )
    finish(result)


def verify_notification(args):
    with open(args.body_file, "rb") as f:
        raw = f.read().decode("ascii")
    # The body names its charset; percent-escapes are bytes in that charset.
    charset = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True, encoding="latin-1")).get(
        "charset", "utf-8"
    )
    params = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True, encoding=charset))
    # As Alipay's docs show Python merchants: pop sign and sign_type, sign content of the rest.
    sign = params.pop("sign", None)
    params.pop("sign_type", None)
    if not sign:
        fail("notification", "the notification has no sign")
    message = get_sign_content(params).encode(charset)
    try:
        verified = verify_with_rsa(alipay_public_key(args.alipay_public_key), message, sign)
    except Exception as e:  # python-rsa raises VerificationError on a mismatch
        fail("notification", f"signature does not verify: {type(e).__name__} {e}")
    if not verified:
        fail("notification", "signature does not verify")
    emit(
        dict(
            ok=True,
            verified=True,
            sdk=ALIPAY_SDK_PYTHON_VERSION,
            charset=charset,
            notify_id=params.get("notify_id"),
            out_trade_no=params.get("out_trade_no"),
            trade_status=params.get("trade_status"),
            total_amount=params.get("total_amount"),
            app_id=params.get("app_id"),
        ),
        0,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--app-private-key", required=True, help="PEM file (PKCS#8 or PKCS#1)")
    parser.add_argument("--alipay-public-key", required=True, help="PEM file (SPKI)")
    parser.add_argument("--charset", default="utf-8")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("precreate")
    p.add_argument("--out-trade-no", required=True)
    p.add_argument("--amount", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--notify-url")
    p.set_defaults(run=precreate)
    q = commands.add_parser("query")
    q.add_argument("--out-trade-no", required=True)
    q.set_defaults(run=query)
    n = commands.add_parser("verify-notification")
    n.add_argument("--body-file", required=True)
    n.set_defaults(run=verify_notification)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
