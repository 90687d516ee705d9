#!/usr/bin/env node
'use strict';
/*
 * Drives the official Alipay Node.js SDK (npm `alipay-sdk`) against an alipay-sandbox.
 *
 * `AlipaySdk.exec(method, {bizContent}, {validateSign: true})` signs the request with the app
 * key and verifies the response signature with Alipay's public key itself (it throws on a bad
 * one); notifications are checked with the SDK's `checkNotifySignV2`, the check its docs give
 * merchants (no second decoding of the received values).
 *
 *   sdk_check.cjs --gateway URL --app-id ID --app-private-key FILE --alipay-public-key FILE \
 *                 COMMAND ...
 *
 *   COMMAND: precreate --out-trade-no NO --amount 0.10 --subject TEXT [--notify-url URL]
 *            query --out-trade-no NO
 *            verify-notification --body-file FILE   (the raw form body the sandbox POSTed)
 *
 * The SDK is found through NODE_PATH (the project installs it into .local/node). Like the
 * SDK's own clock, the `timestamp` it signs is the process's local time: run it with
 * TZ=Asia/Shanghai, as Alipay expects Beijing time.
 *
 * Prints one JSON object on stdout. Exits 0 only when the SDK call went through (request
 * signed, response signature verified) and the answer is a success (or the notification
 * verified); otherwise 1, with "ok": false, "error_kind" (`sdk`: the SDK threw, e.g. a failed
 * response signature check; `business`: a verified answer that is not a success;
 * `notification`: the notification did not verify) and "error".
 */

const fs = require('node:fs');
const { parseArgs } = require('node:util');

function emit(result, code) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(code);
}

function fail(kind, message, extra = {}) {
  emit({ ok: false, error_kind: kind, error: message, ...extra }, 1);
}

let AlipaySdk;
let sdkVersion;
try {
  ({ AlipaySdk } = require('alipay-sdk'));
  sdkVersion = require('alipay-sdk/package.json').version;
} catch (e) {
  fail('setup', `the official Alipay Node.js SDK is not installed (${e.message}): run \`make test-deps\``);
}

/** The key string a merchant pastes into the SDK's config: PEM without markers. */
function bareBase64(path) {
  return fs.readFileSync(path, 'ascii')
    .split('\n')
    .map(line => line.trim())
    .filter(line => line && !line.startsWith('-----'))
    .join('');
}

function client(options) {
  return new AlipaySdk({
    appId: options['app-id'],
    gateway: options.gateway,
    // The sandbox writes the app key as PKCS#8; the SDK's default is PKCS#1.
    keyType: 'PKCS8',
    privateKey: bareBase64(options['app-private-key']),
    alipayPublicKey: bareBase64(options['alipay-public-key']),
    signType: 'RSA2',
    timeout: 15000,
  });
}

async function execute(options, method, params) {
  let answer;
  try {
    answer = await client(options).exec(method, params, { validateSign: true });
  } catch (e) {
    fail('sdk', e.message, { exception: e.name });
  }
  return {
    ok: answer.code === '10000',
    verified: true,
    sdk: sdkVersion,
    code: answer.code,
    msg: answer.msg,
    sub_code: answer.subCode,
    sub_msg: answer.subMsg,
    answer,
  };
}

function finish(result) {
  if (!result.ok) {
    emit({ ...result, error_kind: 'business', error: `${result.code} ${result.sub_code}` }, 1);
  }
  emit(result, 0);
}

async function precreate(options) {
  const params = {
    bizContent: {
      out_trade_no: options['out-trade-no'],
      total_amount: options.amount,
      subject: options.subject,
    },
  };
  if (options['notify-url']) {
    params.notifyUrl = options['notify-url'];
  }
  const result = await execute(options, 'alipay.trade.precreate', params);
  finish({ ...result, out_trade_no: result.answer.outTradeNo, qr_code: result.answer.qrCode });
}

async function query(options) {
  const result = await execute(options, 'alipay.trade.query', {
    bizContent: { out_trade_no: options['out-trade-no'] },
  });
  const answer = result.answer;
  finish({
    ...result,
    out_trade_no: answer.outTradeNo,
    trade_no: answer.tradeNo,
    trade_status: answer.tradeStatus,
    total_amount: answer.totalAmount,
    buyer_open_id: answer.buyerOpenId,
  });
}

function verifyNotification(options) {
  const raw = fs.readFileSync(options['body-file'], 'ascii');
  // The form body decoded once (UTF-8), as a web framework hands it to the merchant.
  const postData = Object.fromEntries(new URLSearchParams(raw));
  if (!client(options).checkNotifySignV2(postData)) {
    fail('notification', 'signature does not verify');
  }
  emit({
    ok: true,
    verified: true,
    sdk: sdkVersion,
    notify_id: postData.notify_id,
    out_trade_no: postData.out_trade_no,
    trade_status: postData.trade_status,
    total_amount: postData.total_amount,
    app_id: postData.app_id,
  }, 0);
}

async function main() {
  const { values: options, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      gateway: { type: 'string' },
      'app-id': { type: 'string' },
      'app-private-key': { type: 'string' },
      'alipay-public-key': { type: 'string' },
      'out-trade-no': { type: 'string' },
      amount: { type: 'string' },
      subject: { type: 'string' },
      'notify-url': { type: 'string' },
      'body-file': { type: 'string' },
    },
  });
  for (const required of ['gateway', 'app-id', 'app-private-key', 'alipay-public-key']) {
    if (!options[required]) {
      fail('setup', `--${required} is required`);
    }
  }
  const commands = {
    precreate,
    query,
    'verify-notification': verifyNotification,
  };
  const command = commands[positionals[0]];
  if (!command) {
    fail('setup', `unknown command ${JSON.stringify(positionals[0])} (precreate, query, verify-notification)`);
  }
  await command(options);
}

main().catch(e => fail('sdk', e.message, { exception: e.name }));
