// The operator console: signs in with Cognito (USER_PASSWORD_AUTH), keeps the ID token for
// this tab only (sessionStorage), and reads and acts through the admin API with it. Every
// text from the API reaches the page as text nodes (never as HTML). Amounts are integer fen,
// shown as yuan without floating point; times are shown in Beijing time.
'use strict';

(() => {
  const TOKEN_KEY = 'console.id_token';
  const PAGE_SIZE = 50;
  const ANOMALY_KINDS = [
    'refunded_by_cancel', 'paid_after_close', 'amount_mismatch', 'out_trade_no_mismatch',
    'trade_no_mismatch', 'unknown_order', 'untrusted_notification', 'foreign_notification',
    'unrequested_refund', 'missing_from_bill', 'refund_mismatch',
  ];
  // What resolving may do, per kind (the admin API refuses anything else).
  const ACTIONS = { paid_after_close: ['accept_as_paid', 'refund', 'dismiss'] };
  const ACTION_HELP = {
    accept_as_paid: 'accept_as_paid: keep the payment (the goods were handed over)',
    refund: 'refund: give the buyer their money back in full',
    dismiss: 'dismiss: explained, nothing to change',
  };

  const state = {
    config: null,
    token: null,
    role: null,
    ordersQuery: null,
    ordersCursor: null,
    ordersLoaded: false,
    anomaliesQuery: null,
    anomaliesCursor: null,
    anomaliesLoaded: false,
    reportLoaded: false,
    resolving: null,
    // Answers to an earlier request of a view are dropped once a newer one was sent.
    requests: { orders: 0, order: 0, anomalies: 0, report: 0 },
  };

  const byId = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- formatting

  /** Integer fen (a number or a string of digits) as `¥12.34`, `-¥0.05`. */
  function yuan(fen) {
    const text = typeof fen === 'number' && Number.isSafeInteger(fen) ? String(fen)
      : typeof fen === 'string' && /^-?\d+$/.test(fen) ? fen : null;
    if (text === null) return fen === null || fen === undefined || fen === '' ? '—' : String(fen);
    const negative = text.startsWith('-');
    const digits = (negative ? text.slice(1) : text).replace(/^0+(?=\d)/, '').padStart(3, '0');
    return `${negative && /[1-9]/.test(digits) ? '-' : ''}¥${digits.slice(0, -2)}.${digits.slice(-2)}`;
  }

  const BEIJING = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  });

  function beijingParts(date) {
    const parts = {};
    for (const { type, value } of BEIJING.formatToParts(date)) parts[type] = value;
    return parts;
  }

  /** `2026-12-07 14:05:09 (UTC+8)` for an RFC 3339 time (Beijing has no daylight saving). */
  function beijingTime(text) {
    const date = new Date(text);
    if (!text || Number.isNaN(date.getTime())) return text ? String(text) : '—';
    const p = beijingParts(date);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} (UTC+8)`;
  }

  /** The Beijing day of `date` as YYYY-MM-DD. */
  function beijingDay(date) {
    const p = beijingParts(date);
    return `${p.year}-${p.month}-${p.day}`;
  }

  // ---------------------------------------------------------------- DOM building

  /** An element; strings among `children` become text nodes. */
  function h(tag, props, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name === 'class') node.className = value;
      else if (name === 'onclick') node.addEventListener('click', value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of [].concat(children ?? [])) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const cell = (children, props) => h('td', props, children);
  const timeNode = (text) => (text ? h('time', { datetime: text, class: 'time', text: beijingTime(text) }) : '—');
  const statusBadge = (status) => h('span', { class: 'status', 'data-status': status, text: status ?? '—' });
  const orderLink = (no) => h('a', { href: `#order/${encodeURIComponent(no)}`, class: 'mono', text: no });

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function showNode(node, visible) {
    node.hidden = !visible;
  }

  /** A value as shown in a field list: fen as yuan, times in Beijing, arrays as JSON. */
  function fieldValue(name, value) {
    if (value === null || value === undefined) return '—';
    if (name.endsWith('_fen')) return yuan(value);
    if ((name.endsWith('_at') || name === 'at') && typeof value === 'string') return beijingTime(value);
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  }

  /** `{a: 1, b: {c: 2}}` as a list of `a: 1`, `b.c: 2`. */
  function fieldList(object, skip) {
    const items = [];
    const walk = (value, prefix) => {
      for (const [name, inner] of Object.entries(value)) {
        if (skip && skip.includes(name) && !prefix) continue;
        const path = prefix ? `${prefix}.${name}` : name;
        if (inner === null || inner === undefined) continue;
        if (typeof inner === 'object' && !Array.isArray(inner)) walk(inner, path);
        else items.push(h('li', { 'data-field': path }, `${path}: ${fieldValue(name, inner)}`));
      }
    };
    walk(object || {}, '');
    return items.length ? h('ul', { class: 'fields' }, items) : null;
  }

  function detailsList(dl, rows) {
    clear(dl);
    for (const [label, field, value] of rows) {
      if (value === null || value === undefined || value === '') continue;
      dl.append(h('dt', { text: label }), h('dd', { 'data-field': field }, value));
    }
  }

  // ---------------------------------------------------------------- messages

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  function describe(error) {
    if (error instanceof ApiError) {
      const field = error.field ? ` (field ${error.field})` : '';
      return `${error.code}: ${error.message}${field}`;
    }
    return `error: ${error && error.message ? error.message : String(error)}`;
  }

  function showError(error) {
    const banner = byId('error');
    banner.textContent = describe(error);
    banner.dataset.code = error instanceof ApiError ? error.code : 'error';
    banner.dataset.status = error instanceof ApiError ? String(error.status) : '';
    showNode(banner, true);
    banner.scrollIntoView({ block: 'nearest' });
  }

  function notice(text) {
    byId('notice').textContent = text;
    showNode(byId('notice'), true);
  }

  function clearMessages() {
    showNode(byId('error'), false);
    showNode(byId('notice'), false);
  }

  /** Runs a user action; its failure is shown (a 401 has already signed out). */
  async function attempt(action) {
    try {
      await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      showError(error);
    }
  }

  /** An HTTP answer's body: JSON when it is JSON, else its text. */
  async function readBody(response) {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  function errorOf(response, body) {
    const json = body && typeof body === 'object' ? body : {};
    // Cognito names the error in `__type` (sometimes as `namespace#Name`).
    const code = json.code || (json.__type ? String(json.__type).split('#').pop() : null)
      || (response.status === 401 ? 'unauthorized' : `http_${response.status}`);
    const message = json.message || json.Message
      || (typeof body === 'string' && body.trim() ? body.trim().slice(0, 300) : response.statusText || 'no details');
    return new ApiError(response.status, String(code), String(message), json.field);
  }

  // ---------------------------------------------------------------- session

  function decodeClaims(token) {
    const payload = String(token).split('.')[1] || '';
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), '='));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function groupsOf(claims) {
    const groups = claims['cognito:groups'];
    if (Array.isArray(groups)) return groups.map(String);
    return typeof groups === 'string' ? groups.replace(/[[\]"]/g, '').split(/[\s,]+/).filter(Boolean) : [];
  }

  function roleOf(groups) {
    if (groups.includes('operator')) return 'operator';
    if (groups.includes('viewer')) return 'viewer';
    return null;
  }

  /** Takes `token` as the session's, or refuses it (unreadable or expired). */
  function startSession(token) {
    let claims;
    try {
      claims = decodeClaims(token);
    } catch {
      signOut('The sign-in answer held no readable ID token: sign in again.');
      return false;
    }
    if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) {
      signOut('Your session has expired: sign in again.');
      return false;
    }
    state.token = token;
    state.role = roleOf(groupsOf(claims));
    sessionStorage.setItem(TOKEN_KEY, token);
    byId('whoami').textContent = claims['cognito:username'] || claims.username || claims.email || claims.sub || '?';
    byId('role').textContent = state.role || 'no console group';
    showNode(byId('session'), true);
    showNode(byId('nav'), true);
    return true;
  }

  /** Forgets the token and everything shown with it, and shows the sign-in form. */
  function signOut(message) {
    state.token = null;
    state.role = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const id of ['orders-body', 'anomalies-body', 'order-details', 'report-summary']) clear(byId(id));
    for (const table of ['order-refunds', 'timeline', 'order-anomalies', 'report-totals', 'report-classes', 'report-discrepancies']) {
      clear(byId(table).tBodies[0]);
    }
    Object.assign(state, { ordersLoaded: false, anomaliesLoaded: false, reportLoaded: false, resolving: null });
    resetFilters();
    showNode(byId('resolve-form'), false);
    showNode(byId('session'), false);
    showNode(byId('nav'), false);
    clearMessages();
    const shown = byId('login-message');
    shown.textContent = message || '';
    showNode(shown, Boolean(message));
    showView('login');
  }

  async function signIn(username, password) {
    const config = state.config;
    let response;
    try {
      response = await fetch(config.cognito_endpoint, {
        method: 'POST',
        headers: {
          'X-Amz-Target': 'AWSCognitoIdentityProviderService.InitiateAuth',
          'Content-Type': 'application/x-amz-json-1.1',
        },
        body: JSON.stringify({
          AuthFlow: 'USER_PASSWORD_AUTH',
          ClientId: config.client_id,
          AuthParameters: { USERNAME: username, PASSWORD: password },
        }),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (error) {
      throw new ApiError(0, 'network_error', `Cognito could not be reached: ${error.message}`);
    }
    const body = await readBody(response);
    if (!response.ok) throw errorOf(response, body);
    if (body && body.ChallengeName) {
      throw new ApiError(response.status, body.ChallengeName,
        'this account must first complete a sign-in step the console does not offer (such as setting a new password): ask an administrator');
    }
    const token = body && body.AuthenticationResult && body.AuthenticationResult.IdToken;
    if (!token) throw new ApiError(response.status, 'no_token', 'Cognito answered without an ID token');
    return token;
  }

  /** One admin API call; a 401 signs out (the token expired or was revoked). */
  async function api(method, path, payload) {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(`${state.config.api_base}${path}`, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        cache: 'no-store',
      });
    } catch (error) {
      throw new ApiError(0, 'network_error', `the admin API could not be reached: ${error.message}`);
    }
    const body = await readBody(response);
    if (response.ok) return body;
    const error = errorOf(response, body);
    if (response.status === 401) signOut(`Signed out: ${describe(error)}. Sign in again.`);
    throw error;
  }

  // ---------------------------------------------------------------- views and routing

  const VIEWS = ['login', 'orders', 'order', 'anomalies', 'report'];

  function showView(name) {
    for (const view of VIEWS) showNode(byId(`${view}-view`), view === name);
    const tab = name === 'order' ? 'orders' : name;
    for (const link of byId('nav').querySelectorAll('a')) {
      if (link.id === `tab-${tab}`) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.body.dataset.view = name;
  }

  function route() {
    if (!state.token) {
      showView('login');
      return;
    }
    clearMessages();
    let hash = location.hash.replace(/^#/, '');
    try {
      hash = decodeURIComponent(hash);
    } catch {
      // A mangled address: the orders list.
    }
    if (hash.startsWith('order/')) {
      showView('order');
      attempt(() => openOrder(hash.slice('order/'.length)));
    } else if (hash === 'anomalies') {
      showView('anomalies');
      if (!state.anomaliesLoaded) attempt(() => loadAnomalies(false));
    } else if (hash === 'report') {
      showView('report');
      if (!state.reportLoaded) attempt(loadReport);
    } else {
      showView('orders');
      if (!state.ordersLoaded) attempt(() => loadOrders(false));
    }
  }

  // ---------------------------------------------------------------- orders

  async function loadOrders(more) {
    if (!more) {
      const query = new URLSearchParams({ date: byId('orders-date').value, limit: String(PAGE_SIZE) });
      if (byId('orders-status').value) query.set('status', byId('orders-status').value);
      if (byId('orders-store').value.trim()) query.set('store_id', byId('orders-store').value.trim());
      state.ordersQuery = query;
    }
    const query = new URLSearchParams(state.ordersQuery);
    if (more) query.set('cursor', state.ordersCursor);
    const request = ++state.requests.orders;
    const button = byId('orders-more');
    button.disabled = true;
    try {
      const page = await api('GET', `/admin/orders?${query}`);
      if (request !== state.requests.orders) return;
      const body = byId('orders-body');
      if (!more) clear(body);
      for (const order of page.orders || []) body.append(orderRow(order));
      state.ordersCursor = page.next_cursor || null;
      state.ordersLoaded = true;
      showNode(button, Boolean(state.ordersCursor));
      showNode(byId('orders-empty'), body.rows.length === 0);
    } finally {
      button.disabled = false;
    }
  }

  function orderRow(order) {
    return h('tr', { 'data-testid': 'order-row', 'data-out-trade-no': order.out_trade_no, 'data-status': order.status }, [
      cell(orderLink(order.out_trade_no)),
      cell(statusBadge(order.status)),
      cell(yuan(order.amount_fen), { class: 'num', 'data-col': 'amount' }),
      cell(order.refunded_fen ? yuan(order.refunded_fen) : '—', { class: 'num' }),
      cell(order.scene ?? '—'),
      cell(order.subject ?? ''),
      cell(order.store_id ?? '—'),
      cell(timeNode(order.created_at)),
      cell(timeNode(order.paid_at)),
    ]);
  }

  // ---------------------------------------------------------------- one order

  async function openOrder(outTradeNo) {
    const request = ++state.requests.order;
    byId('order-title').textContent = `Order ${outTradeNo}`;
    clear(byId('order-details'));
    for (const table of ['order-refunds', 'timeline', 'order-anomalies']) clear(byId(table).tBodies[0]);
    const detail = await api('GET', `/admin/orders/${encodeURIComponent(outTradeNo)}`);
    if (request !== state.requests.order) return;
    const order = detail.order || {};
    const failure = order.failure ? `${order.failure.code}: ${order.failure.message}` : null;
    detailsList(byId('order-details'), [
      ['Order number', 'out_trade_no', h('span', { class: 'mono', text: order.out_trade_no })],
      ['Status', 'status', statusBadge(order.status)],
      ['Amount', 'amount_fen', yuan(order.amount_fen)],
      ['Refunded', 'refunded_fen', yuan(order.refunded_fen)],
      ['Refundable', 'refundable_fen', yuan(order.refundable_fen)],
      ['Subject', 'subject', order.subject],
      ['Scene', 'scene', order.scene],
      ['Alipay trade', 'alipay_trade_no', order.alipay_trade_no],
      ['Store', 'store_id', order.store_id],
      ['Operator', 'operator_id', order.operator_id],
      ['Terminal', 'terminal_id', order.terminal_id],
      ['Buyer', 'buyer', order.buyer_user_id || order.buyer_open_id],
      ['Created', 'created_at', order.created_at && timeNode(order.created_at)],
      ['Expires', 'expires_at', order.expires_at && timeNode(order.expires_at)],
      ['Scanned', 'scanned_at', order.scanned_at && timeNode(order.scanned_at)],
      ['Paid', 'paid_at', order.paid_at && timeNode(order.paid_at)],
      ['Closed', 'closed_at', order.closed_at && timeNode(order.closed_at)],
      ['Refunded at', 'refunded_at', order.refunded_at && timeNode(order.refunded_at)],
      ['Failure', 'failure', failure],
      ['Pending because', 'pending_reason', order.pending_reason],
    ]);
    const refunds = byId('order-refunds').tBodies[0];
    for (const refund of order.refunds || []) {
      refunds.append(h('tr', { 'data-testid': 'refund-row', 'data-out-request-no': refund.out_request_no }, [
        cell(refund.out_request_no, { class: 'mono' }),
        cell(statusBadge(refund.status)),
        cell(yuan(refund.amount_fen), { class: 'num' }),
        cell(refund.reason ?? '—'),
        cell(timeNode(refund.requested_at)),
        cell(timeNode(refund.refunded_at)),
        cell(refund.failure ? `${refund.failure.code}: ${refund.failure.message}` : '—'),
      ]));
    }
    if (!refunds.rows.length) refunds.append(h('tr', {}, cell('No refunds.', { colspan: 7, class: 'muted' })));
    const timeline = byId('timeline').tBodies[0];
    for (const event of detail.timeline || []) timeline.append(eventRow(event));
    const anomalies = byId('order-anomalies').tBodies[0];
    for (const record of detail.anomalies || []) {
      anomalies.append(h('tr', { 'data-testid': 'order-anomaly', 'data-anomaly-id': record.id }, [
        cell(h('code', { text: record.latest && record.latest.kind })),
        cell(statusBadge(record.status)),
        cell(record.latest ? record.latest.detail : ''),
        cell(timeNode(record.last_seen)),
        cell(resolutionNode(record.resolution)),
      ]));
    }
    if (!anomalies.rows.length) anomalies.append(h('tr', {}, cell('None.', { colspan: 5, class: 'muted' })));
  }

  function eventRow(event) {
    const kind = event.kind || {};
    return h('tr', { 'data-testid': 'event', 'data-type': kind.type, 'data-version': event.version }, [
      cell(timeNode(event.at), { 'data-col': 'at' }),
      cell(`${event.from ?? '—'} → ${event.to ?? '—'}`, { 'data-col': 'transition', class: 'mono' }),
      cell([h('code', { text: kind.type ?? '?' }), fieldList(kind, ['type'])], { 'data-col': 'what' }),
      cell(event.actor ?? '—', { 'data-col': 'actor' }),
    ]);
  }

  function resolutionNode(resolution) {
    if (!resolution) return '—';
    return h('div', { 'data-testid': 'resolution' }, [
      h('div', {}, [`${resolution.action ?? ''} by `, h('strong', { text: resolution.by ?? '?' })]),
      h('div', {}, timeNode(resolution.at)),
      resolution.note ? h('div', { class: 'muted', text: resolution.note }) : null,
    ]);
  }

  // ---------------------------------------------------------------- anomalies

  async function loadAnomalies(more) {
    if (!more) {
      const query = new URLSearchParams({ status: byId('anomalies-status').value, limit: String(PAGE_SIZE) });
      if (byId('anomalies-kind').value) query.set('kind', byId('anomalies-kind').value);
      state.anomaliesQuery = query;
    }
    const query = new URLSearchParams(state.anomaliesQuery);
    if (more) query.set('cursor', state.anomaliesCursor);
    const request = ++state.requests.anomalies;
    const button = byId('anomalies-more');
    button.disabled = true;
    try {
      const page = await api('GET', `/admin/anomalies?${query}`);
      if (request !== state.requests.anomalies) return;
      const body = byId('anomalies-body');
      if (!more) clear(body);
      for (const record of page.anomalies || []) body.append(anomalyRow(record));
      state.anomaliesCursor = page.next_cursor || null;
      state.anomaliesLoaded = true;
      showNode(button, Boolean(state.anomaliesCursor));
      showNode(byId('anomalies-empty'), body.rows.length === 0);
    } finally {
      button.disabled = false;
    }
  }

  function anomalyRow(record) {
    const latest = record.latest || {};
    const canResolve = state.role === 'operator' && record.status === 'OPEN';
    return h('tr', { 'data-testid': 'anomaly-row', 'data-anomaly-id': record.id, 'data-kind': latest.kind, 'data-status': record.status }, [
      cell(h('code', { text: latest.kind ?? '?' })),
      cell(latest.out_trade_no ? orderLink(latest.out_trade_no) : '—'),
      cell(latest.order_status ?? '—'),
      cell(yuan(latest.order_amount_fen), { class: 'num' }),
      cell([h('div', { text: latest.detail ?? '' }), fieldList(latest.facts)]),
      cell([
        timeNode(record.last_seen),
        h('div', { class: 'muted' }, [`seen ${record.occurrences ?? '?'}×, first `, timeNode(record.first_seen)]),
      ]),
      cell([statusBadge(record.status), record.resolution ? resolutionNode(record.resolution) : null]),
      cell(canResolve
        ? h('button', { type: 'button', 'data-testid': 'resolve-open', onclick: () => openResolve(record) }, 'Resolve…')
        : null),
    ]);
  }

  function openResolve(record) {
    clearMessages();
    state.resolving = record;
    const kind = record.latest && record.latest.kind;
    const actions = ACTIONS[kind] || ['dismiss'];
    byId('resolve-id').textContent = record.id;
    byId('resolve-advice').textContent = actions.map((action) => ACTION_HELP[action]).join('; ');
    const select = clear(byId('resolve-action'));
    // More than one action: the operator picks one on purpose.
    if (actions.length > 1) select.append(h('option', { value: '', text: 'choose an action' }));
    for (const action of actions) select.append(h('option', { value: action, text: action }));
    byId('resolve-note').value = '';
    showNode(byId('resolve-form'), true);
    byId('resolve-form').scrollIntoView({ block: 'nearest' });
    byId('resolve-note').focus();
  }

  async function submitResolve() {
    const record = state.resolving;
    if (!record) return;
    const submit = byId('resolve-submit');
    const action = byId('resolve-action').value;
    submit.disabled = true;
    try {
      const answer = await api('POST', `/admin/anomalies/${encodeURIComponent(record.id)}/resolve`, {
        note: byId('resolve-note').value.trim(),
        action,
      });
      const resolved = (answer && answer.anomaly) || {};
      state.resolving = null;
      showNode(byId('resolve-form'), false);
      await loadAnomalies(false);
      notice(`Resolved ${resolved.id || record.id} (${action}).`);
    } finally {
      submit.disabled = false;
    }
  }

  // ---------------------------------------------------------------- reconciliation report

  async function loadReport() {
    const day = byId('report-date').value;
    const request = ++state.requests.report;
    showNode(byId('report-missing'), false);
    showNode(byId('report-content'), false);
    let report;
    try {
      report = await api('GET', `/admin/reports/${encodeURIComponent(day)}`);
    } catch (error) {
      if (request === state.requests.report && error instanceof ApiError && error.code === 'report_not_found') {
        state.reportLoaded = true;
        showNode(byId('report-missing'), true);
        return;
      }
      throw error;
    }
    if (request !== state.requests.report) return;
    state.reportLoaded = true;
    renderReport(report);
    showNode(byId('report-content'), true);
  }

  function renderReport(report) {
    const summary = report.summary || null;
    const actions = (summary && summary.actions) || {};
    const bill = (summary && summary.bill) || null;
    detailsList(byId('report-summary'), [
      ['Day', 'date', report.date],
      ['Generated', 'generated_at', summary && summary.generated_at && timeNode(summary.generated_at)],
      ['Bill', 'bill', bill && (bill.has_file ? `${bill.key} (${bill.bytes} bytes)` : 'no bill file: Alipay had no trades that day')],
      ['Bill rows read', 'rows', summary && summary.rows],
      ['Orders compared', 'orders', summary && summary.orders],
      ['Discrepancies', 'discrepancies', summary && summary.discrepancies],
      ['Healed', 'healed', actions.healed],
      ['Anomalies recorded', 'anomalies', actions.anomalies],
    ]);
    const rejected = byId('report-rejected');
    clear(rejected);
    if (report.rejected) {
      rejected.append(h('strong', { text: 'The bill was rejected; nothing was applied.' }),
        typeof report.rejected === 'object' ? fieldList(report.rejected) : h('div', { text: String(report.rejected) }));
    }
    showNode(rejected, Boolean(report.rejected));

    const totals = clear(byId('report-totals').tBodies[0]);
    const billTotals = (summary && summary.bill_totals) || {};
    const ledgerTotals = (summary && summary.ledger_totals) || {};
    for (const kind of ['payments', 'refunds']) {
      const there = billTotals[kind] || {};
      const here = ledgerTotals[kind] || {};
      totals.append(h('tr', { 'data-kind': kind }, [
        h('th', { scope: 'row', text: kind }),
        cell(String(there.count ?? '—'), { class: 'num' }),
        cell(yuan(there.fen), { class: 'num' }),
        cell(String(here.count ?? '—'), { class: 'num' }),
        cell(yuan(here.fen), { class: 'num' }),
      ]));
    }
    const classes = clear(byId('report-classes').tBodies[0]);
    // Classes nothing fell into are left out, except `matched`.
    for (const [name, tally] of Object.entries((summary && summary.classes) || {})) {
      if (name !== 'matched' && !tally.count) continue;
      classes.append(h('tr', { 'data-class': name }, [
        h('th', { scope: 'row' }, h('code', { text: name })),
        cell(String(tally.count ?? ''), { class: 'num' }),
        cell(yuan(tally.fen), { class: 'num' }),
      ]));
    }
    renderDiscrepancies(report.discrepancies || []);
  }

  function renderDiscrepancies(rows) {
    const table = byId('report-discrepancies');
    // Reconcile's CSV columns in its order, then any other.
    const columns = ['class', 'out_trade_no', 'trade_no', 'out_request_no', 'bill_fen', 'ledger_fen', 'status_here', 'line', 'finished_at']
      .filter((name) => rows.some((row) => name in row));
    for (const row of rows) {
      for (const name of Object.keys(row)) if (!columns.includes(name)) columns.push(name);
    }
    clear(table.tHead.rows[0]).append(...columns.map((name) => h('th', { scope: 'col', text: name })));
    const body = clear(table.tBodies[0]);
    for (const row of rows) {
      body.append(h('tr', { 'data-testid': 'discrepancy' }, columns.map((name) => {
        const value = row[name];
        const shown = value === null || value === undefined || value === '' ? '—'
          : name === 'out_trade_no' ? orderLink(String(value))
            : fieldValue(name === 'finished_at' ? 'at' : name, value);
        return cell(shown, { class: name.endsWith('_fen') ? 'num' : null });
      })));
    }
    showNode(table, rows.length > 0);
    showNode(byId('report-no-discrepancies'), rows.length === 0);
  }

  // ---------------------------------------------------------------- start

  function wire() {
    byId('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const submit = byId('login-submit');
      const message = byId('login-message');
      submit.disabled = true;
      showNode(message, false);
      signIn(byId('username').value.trim(), byId('password').value)
        .then((token) => {
          byId('password').value = '';
          if (startSession(token)) route();
        })
        .catch((error) => {
          message.textContent = describe(error);
          message.dataset.code = error instanceof ApiError ? error.code : 'error';
          showNode(message, true);
        })
        .finally(() => {
          submit.disabled = false;
        });
    });
    byId('sign-out').addEventListener('click', () => signOut('Signed out.'));
    byId('orders-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      clearMessages();
      attempt(() => loadOrders(false));
    });
    byId('orders-more').addEventListener('click', () => attempt(() => loadOrders(true)));
    byId('anomalies-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      clearMessages();
      showNode(byId('resolve-form'), false);
      attempt(() => loadAnomalies(false));
    });
    byId('anomalies-more').addEventListener('click', () => attempt(() => loadAnomalies(true)));
    byId('resolve-form').addEventListener('submit', (event) => {
      event.preventDefault();
      clearMessages();
      attempt(submitResolve);
    });
    byId('resolve-cancel').addEventListener('click', () => {
      state.resolving = null;
      showNode(byId('resolve-form'), false);
    });
    byId('report-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      clearMessages();
      attempt(loadReport);
    });
    window.addEventListener('hashchange', route);

    const kinds = byId('anomalies-kind');
    for (const kind of ANOMALY_KINDS) kinds.append(h('option', { value: kind, text: kind }));
    resetFilters();
  }

  /** Every filter as a fresh session starts: today's orders, open anomalies, yesterday's report. */
  function resetFilters() {
    const now = new Date();
    byId('orders-date').value = beijingDay(now);
    byId('orders-status').value = '';
    byId('orders-store').value = '';
    byId('anomalies-status').value = 'open';
    byId('anomalies-kind').value = '';
    // A day's report is written the next day, once Alipay's bill is out.
    byId('report-date').value = beijingDay(new Date(now.getTime() - 24 * 3600 * 1000));
  }

  async function start() {
    wire();
    try {
      const response = await fetch('config.json', { cache: 'no-store' });
      const body = await readBody(response);
      if (!response.ok) throw errorOf(response, body);
      if (!body || typeof body !== 'object' || !body.cognito_endpoint || !body.client_id) {
        throw new ApiError(response.status, 'invalid_config', 'config.json lacks cognito_endpoint or client_id');
      }
      state.config = { ...body, api_base: String(body.api_base || '').replace(/\/+$/, '') };
    } catch (error) {
      showError(error instanceof ApiError ? error : new ApiError(0, 'config_unavailable', error.message));
      return;
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved && startSession(saved)) route();
    else if (!saved) signOut('');
    document.body.dataset.ready = 'true';
  }

  // The browser test checks the formatting rules on edge cases through these.
  window.consoleFormat = { yuan, beijingTime, beijingDay };
  start();
})();
