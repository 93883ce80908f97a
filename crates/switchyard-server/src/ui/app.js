// The Switchyard status page. It polls the admin API of the gateway that served it, with
// the admin token kept in this tab's sessionStorage (never in a URL), and draws everything
// with DOM calls: no inline script, no markup from data, no other origin.
'use strict';
(() => {
  const STORE = 'switchyard.admin-token';
  const POLL_MS = 1500;
  // Charts are redrawn when a new request shows (at most every 2 s), else every 30 s.
  const CHARTS_MS = 30000;
  const CHARTS_MIN_MS = 2000;
  const N_RECENT_SHOWN = 12;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  let timer = null;
  let busy = false;
  let chartsAt = 0;
  let chartsStale = false;
  let lastStatus = '';
  let lastRecent = '';

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.setAttribute('class', value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
  }

  function badge(text, cls) {
    return el('span', { class: 'badge ' + cls }, text);
  }

  function token() {
    return sessionStorage.getItem(STORE);
  }

  async function api(path, options) {
    const init = Object.assign({ cache: 'no-store', credentials: 'same-origin' }, options || {});
    init.headers = Object.assign({ authorization: 'Bearer ' + token() }, init.headers || {});
    const response = await fetch(path, init);
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      logout('The admin token was refused.');
      throw new Error('unauthorized');
    }
    if (!response.ok) {
      const error = new Error((body && body.error && (body.error.message || body.error.code)) || response.statusText);
      error.code = body && body.error && body.error.code;
      throw error;
    }
    return body;
  }

  // ---- logging in and out ----

  function showLogin(message) {
    stop();
    $('app').hidden = true;
    $('logout').hidden = true;
    $('health').hidden = true;
    $('updated').textContent = '';
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  function logout(message) {
    sessionStorage.removeItem(STORE);
    lastStatus = '';
    lastRecent = '';
    showLogin(message);
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  async function enter() {
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = false;
    chartsAt = 0;
    await refresh();
  }

  async function redeem(code) {
    try {
      const response = await fetch('/ui/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code }),
        credentials: 'same-origin',
      });
      if (!response.ok) return false;
      const body = await response.json();
      sessionStorage.setItem(STORE, body.token);
      return true;
    } catch (_) {
      return false;
    }
  }

  async function start() {
    $('login-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const given = $('token').value;
      $('token').value = '';
      sessionStorage.setItem(STORE, given);
      try {
        await api('/admin/status');
        await enter();
      } catch (error) {
        if (error.message !== 'unauthorized') logout('Cannot log in: ' + error.message);
      }
    });
    $('logout').addEventListener('click', () => logout(''));
    $('zone').textContent = 'Times are shown in each provider\'s zone and in yours (' + viewerZone + ').';
    // A one-time login link (`/ui#code=...`): the code never reached the server in the URL;
    // it is traded for the token and removed from the address bar at once.
    const code = new URLSearchParams(location.hash.slice(1)).get('code');
    if (code) {
      history.replaceState(null, '', location.pathname);
      if (!(await redeem(code))) {
        showLogin('That login link was used already or has expired: log in with the admin token.');
        return;
      }
    }
    if (token()) await enter();
    else showLogin('');
  }

  // ---- polling ----

  async function refresh() {
    stop();
    if (busy || !token()) return;
    busy = true;
    try {
      const [status, recent] = await Promise.all([api('/admin/status'), api('/admin/recent')]);
      renderStatus(status);
      if (renderRecent(recent.requests || [])) chartsStale = true;
      $('error').textContent = '';
      const since = Date.now() - chartsAt;
      if (since > CHARTS_MS || (chartsStale && since > CHARTS_MIN_MS)) {
        chartsAt = Date.now();
        chartsStale = false;
        await charts();
      }
    } catch (error) {
      if (error.message === 'unauthorized') return;
      $('error').textContent = 'Cannot read the gateway: ' + error.message;
    } finally {
      busy = false;
    }
    if (token()) timer = setTimeout(refresh, POLL_MS);
  }

  // ---- times ----

  function inViewerZone(utc) {
    const at = new Date(utc);
    if (Number.isNaN(at.getTime())) return utc;
    return at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  }

  function inProviderZone(text) {
    // `2026-11-24T00:00:00-08:00`: the provider's wall clock with its offset.
    return text ? text.replace('T', ' ').replace(/\.\d+/, '') : '';
  }

  function untilText(prefix, until, untilUtc, zone) {
    if (!untilUtc) return null;
    return el('span', { class: 'until' }, prefix + ' ', el('strong', {}, inProviderZone(until)),
      ' (' + zone + ') · ' + inViewerZone(untilUtc) + ' (' + viewerZone + ')');
  }

  const STATE_WORDS = {
    available: 'available', cooling: 'cooling', exhausted: 'exhausted',
    invalid: 'invalid', billing_stopped: 'billing stopped', disabled: 'disabled',
  };

  // ---- status ----

  function renderStatus(view) {
    $('health').hidden = false;
    $('health').textContent = view.health;
    $('health').className = 'badge health-' + view.health;
    $('updated').textContent = 'updated ' + inViewerZone(view.generated_at);
    const stable = JSON.stringify(Object.assign({}, view, { generated_at: null }));
    if (stable === lastStatus) return;
    lastStatus = stable;

    const alerts = view.alerts.map((alert) => el('li', { class: 'alert' }, badge(alert.kind, 'state-invalid'), ' ', alert.message));
    $('alerts').replaceChildren(...(alerts.length ? alerts : [el('li', { class: 'muted' }, 'No alerts.')]));

    const routeRows = view.routes.map((route) => el('tr', {},
      el('td', {}, el('code', {}, route.name)),
      el('td', {}, route.can_serve ? badge('can serve', 'state-available') : badge('cannot serve', 'state-invalid')),
      el('td', {}, route.available + ' of ' + route.candidates + ' candidates available')));
    $('routes').replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'route'), el('th', {}, 'health'), el('th', {}, 'candidates'))),
      el('tbody', {}, routeRows)));

    $('providers').replaceChildren(...view.providers.map(renderProvider));
  }

  function renderProvider(provider) {
    return el('div', { class: 'provider', 'data-provider': provider.name },
      el('h3', {}, provider.name, badge(provider.status, 'status-' + provider.status),
        el('span', { class: 'muted' }, 'resets in ' + provider.time_zone)),
      provider.keys.map((key) => renderKey(provider, key)));
  }

  function renderKey(provider, key) {
    const name = provider.name + '/' + key.id;
    const action = (verb, label) => el('button', {
      type: 'button', 'data-key': name, 'data-action': verb,
      onclick: () => keyAction(provider.name, key.id, verb),
    }, label);
    const stateWord = STATE_WORDS[key.state] || key.state;
    return el('div', { class: 'key', 'data-key': name, 'data-state': key.state },
      el('div', { class: 'key-head' },
        el('span', { class: 'key-id' }, key.id),
        el('code', { title: 'fingerprint' }, key.fingerprint || ''),
        badge(stateWord, 'key-state state-' + key.state),
        key.state === 'cooling' ? untilText('cooling until', key.until, key.until_utc, provider.time_zone) : null,
        key.state === 'exhausted' ? untilText('exhausted until', key.until, key.until_utc, provider.time_zone) : null,
        key.state === 'billing_stopped' ? untilText('until', key.until, key.until_utc, provider.time_zone) : null,
        key.reason ? el('span', { class: 'muted' }, key.reason) : null,
        el('span', { class: 'actions' },
          key.state === 'disabled' ? action('enable', 'Enable') : action('disable', 'Disable'),
          action('reset', 'Reset'))),
      el('div', { class: 'scroll' }, el('table', { class: 'models' },
        el('thead', {}, el('tr', {}, ['model', 'state', 'circuit', 'score', 'windows'].map((h) => el('th', {}, h)))),
        el('tbody', {}, key.models.map((model) => el('tr', {},
          el('td', {}, el('code', {}, model.model)),
          el('td', {}, badge(STATE_WORDS[model.state] || model.state, 'state-' + model.state)),
          el('td', {}, badge(model.circuit.replace('_', ' '), 'circuit-' + model.circuit)),
          el('td', {}, model.score === null || model.score === undefined ? '—' : model.score.toFixed(3)),
          el('td', {}, model.limits.length ? model.limits.map(limitBar) : el('span', { class: 'muted' }, 'no declared window'))))))));
  }

  function limitBar(limit) {
    const width = 120;
    const share = limit.limit > 0 ? Math.min(1, limit.used / limit.limit) : 0;
    const cls = share >= 1 ? 'bar-full' : share >= 0.75 ? 'bar-mid' : 'bar-low';
    const resets = limit.resets_at_utc ? ', resets ' + inViewerZone(limit.resets_at_utc) : '';
    return el('div', { class: 'limit' },
      svg('svg', { class: 'bar', width, height: 10, viewBox: '0 0 ' + width + ' 10', role: 'img' },
        svg('title', {}, limit.name + ': ' + limit.used + ' of ' + limit.limit + ' ' + limit.unit + resets),
        svg('rect', { class: 'bar-bg', x: 0, y: 0, width, height: 10, rx: 2 }),
        svg('rect', { class: cls, x: 0, y: 0, width: Math.round(share * width), height: 10, rx: 2 })),
      limit.used + '/' + limit.limit + ' ' + limit.name);
  }

  async function keyAction(provider, key, verb) {
    try {
      await api('/admin/keys/' + encodeURIComponent(provider) + '/' + encodeURIComponent(key) + '/' + verb, { method: 'POST' });
      $('error').textContent = '';
    } catch (error) {
      if (error.message === 'unauthorized') return;
      $('error').textContent = verb + ' ' + provider + '/' + key + ' failed: ' + error.message;
    }
    await refresh();
  }

  // ---- recent requests and their decision traces ----

  function who(candidate) {
    return candidate ? candidate.provider + '/' + candidate.key + '/' + candidate.model : '—';
  }

  function dollars(cost) {
    return cost === null || cost === undefined ? '' : ' $' + cost.toFixed(6);
  }

  function skipText(why) {
    if (!why || typeof why !== 'object') return 'skipped';
    switch (why.reason) {
      case 'quota': return 'quota: ' + (why.kind || why.detail) + (why.detail && why.kind ? ' (' + why.detail + ')' : '') + (why.until ? ' until ' + inViewerZone(why.until) : '');
      case 'circuit_open': return 'circuit open (' + why.remaining + ' ms left)';
      case 'ramping': return 'circuit ramping up (' + Math.round(why.share * 100) + '% let through)';
      case 'ruled_out': return 'ruled out by an earlier failure (' + (typeof why.by === 'string' ? why.by : JSON.stringify(why.by)) + ')';
      case 'disabled': return 'disabled by an operator';
      case 'unsuitable': return 'unsuitable: ' + why.detail;
      default: return why.reason || 'skipped';
    }
  }

  function renderRecent(requests) {
    const stable = JSON.stringify(requests.slice(0, N_RECENT_SHOWN));
    if (stable === lastRecent) return false;
    lastRecent = stable;
    if (!requests.length) {
      $('recent').replaceChildren(el('p', { class: 'muted' }, 'No request since the gateway started.'));
      return true;
    }
    const rows = requests.slice(0, N_RECENT_SHOWN).map((request) => {
      const fellBack = request.attempts.length > 1;
      const trace = el('ul', { class: 'trace' },
        request.skipped.map((skip) => el('li', { class: 'skip' }, 'skipped ' + who(skip.candidate) + ': ' + skipText(skip.why))),
        request.attempts.map((attempt) => el('li', { class: attempt.result === 'ok' ? 'ok' : 'fail' },
          'tried ' + who(attempt.candidate) + ' (key ' + attempt.fingerprint + '): ' + attempt.result.replace(/_/g, ' ') +
          (attempt.status ? ' (HTTP ' + attempt.status + ')' : '') + ', ' + attempt.latency_ms + ' ms' +
          (attempt.result === 'ok' ? (attempt.cost === null || attempt.cost === undefined ? (request.stream ? ', cost settled when the stream ends' : ', cost unknown (no price)') : ', cost' + dollars(attempt.cost)) : ', not billed'))),
        request.waited_ms > 0 ? el('li', { class: 'skip' }, 'waited ' + request.waited_ms + ' ms for a key to free') : null);
      return el('tr', { class: 'request', 'data-request': request.request_id },
        el('td', {}, inViewerZone(request.at).split(', ').pop()),
        el('td', {}, el('code', {}, request.route), el('br'), el('span', { class: 'muted' }, request.request_id)),
        el('td', {}, request.outcome === 'ok' ? badge('ok', 'outcome-ok') : badge(request.outcome, 'outcome-failed'),
          fellBack ? [' ', badge('fell back', 'fallback')] : null),
        el('td', {}, who(request.served_by), request.cost !== null && request.cost !== undefined ? el('div', { class: 'muted' }, dollars(request.cost)) : null),
        el('td', {}, trace));
    });
    $('recent').replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ['time', 'route / id', 'outcome', 'served by', 'decision trace'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
    return true;
  }

  // ---- charts (inline SVG) ----

  async function charts() {
    const today = new Date().toISOString().slice(0, 10);
    await Promise.all([
      chart('usage-chart', '/admin/analytics/usage', usageChart),
      chart('hourly-chart', '/admin/analytics/hourly?date=' + today, hourlyChart),
      chart('errors-chart', '/admin/analytics/errors', errorsChart),
    ]);
  }

  async function chart(id, path, draw) {
    try {
      $(id).replaceChildren(draw(await api(path)));
    } catch (error) {
      if (error.message === 'unauthorized') throw error;
      const text = error.code === 'ANALYTICS_DISABLED'
        ? 'Analytics are off on this gateway (set [analytics] in switchyard.toml).'
        : 'Cannot read the report: ' + error.message;
      $(id).replaceChildren(el('p', { class: 'muted' }, text));
    }
  }

  function hbars(rows, legend) {
    // rows: [{label, parts: [{value, cls}], note}]
    if (!rows.length) return el('p', { class: 'muted' }, 'Nothing recorded yet.');
    const width = 600, labelW = 170, barW = 300, rowH = 20;
    const max = Math.max(1, ...rows.map((row) => row.parts.reduce((sum, part) => sum + part.value, 0)));
    const height = rows.length * rowH + 20;
    const g = rows.map((row, idx) => {
      let x = labelW;
      const y = idx * rowH;
      const rects = row.parts.map((part) => {
        const w = Math.round(part.value / max * barW);
        const rect = svg('rect', { class: part.cls, x, y: y + 3, width: w, height: rowH - 6 });
        x += w;
        return rect;
      });
      return [svg('text', { x: 0, y: y + rowH - 6 }, row.label), rects, svg('text', { x: x + 6, y: y + rowH - 6 }, row.note)];
    });
    return svg('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img' }, svg('title', {}, legend), g,
      svg('text', { x: 0, y: height - 4, class: 'legend' }, legend));
  }

  function usageChart(report) {
    return hbars(report.keys.map((key) => ({
      label: key.provider + '/' + key.key,
      parts: [{ value: key.successes, cls: 'c-ok' }, { value: key.failures, cls: 'c-fail' }],
      note: key.requests + (key.requests === 1 ? ' attempt, ' : ' attempts, ') + key.failures + ' failed' + (key.cost ? ', $' + key.cost.toFixed(4) : ''),
    })), 'green: succeeded, red: failed');
  }

  function errorsChart(report) {
    return hbars(report.errors.map((row) => ({
      label: row.class,
      parts: [{ value: row.count, cls: 'c-err' }],
      note: row.count + ' (' + row.keys.join(', ') + ')',
    })), 'failed attempts per class');
  }

  function hourlyChart(report) {
    const ok = new Array(24).fill(0), failed = new Array(24).fill(0);
    for (const row of report.hours) {
      const hour = new Date(row.hour).getUTCHours();
      ok[hour] += row.successes;
      failed[hour] += row.failures;
    }
    const width = 600, height = 140, plotH = 110, colW = 600 / 24;
    const max = Math.max(1, ...ok.map((n, h) => n + failed[h]));
    const cols = ok.map((n, hour) => {
      const hOk = Math.round(n / max * plotH), hFail = Math.round(failed[hour] / max * plotH);
      const x = hour * colW + 2;
      return [
        svg('rect', { class: 'c-ok', x, y: plotH - hOk, width: colW - 4, height: hOk }, svg('title', {}, hour + ':00 UTC: ' + n + ' ok, ' + failed[hour] + ' failed')),
        svg('rect', { class: 'c-fail', x, y: plotH - hOk - hFail, width: colW - 4, height: hFail }),
        hour % 3 === 0 ? svg('text', { x, y: plotH + 14 }, String(hour).padStart(2, '0')) : null,
      ];
    });
    return svg('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img' },
      svg('title', {}, 'attempts per UTC hour, ' + report.date), cols,
      svg('text', { x: 0, y: height - 2 }, report.date + ' (UTC) · most in an hour: ' + max));
  }

  document.addEventListener('DOMContentLoaded', start);
})();
