// canary console: talks to the admin API it is served by (…/ui/ → …),
// with the admin token in the Authorization header, never a cookie.
'use strict';
(function () {
  const base = location.pathname.replace(/\/ui\/[^/]*$/, '');
  const $ = (id) => document.getElementById(id);
  const maxPoints = 60;
  const samples = [];
  let token = '';
  let current = null; // the store's current version, from the last plan load

  // --- the admin API -------------------------------------------------------
  async function api(method, path, body) {
    const headers = {};
    if (token) headers['Authorization'] = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(base + path, {
        method, headers, cache: 'no-store', credentials: 'omit',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { status: 0, json: { error: 'the admin API did not answer: ' + e.message } };
    }
    let json = null;
    try { json = await res.json(); } catch (e) { json = { error: 'not JSON (' + res.status + ')' }; }
    return { status: res.status, json };
  }

  // author is who the audit records: what the operator typed, else "console"
  // (the token proves the caller may act, not who they are).
  function author() { return $('author').value.trim() || 'console'; }

  function errText(r) {
    const j = r.json || {};
    let s = (r.status ? r.status + ' ' : '') + (j.code ? j.code + ': ' : '') + (j.error || 'error');
    if (r.status === 401) s = 'refused: ' + s + ' (give the admin token above)';
    if (r.status === 403) s = 'refused: ' + s;
    return s;
  }

  function say(el, text, kind) {
    el.textContent = text;
    el.className = 'msg' + (kind ? ' ' + kind : '');
  }

  // --- confirmation --------------------------------------------------------
  function confirmAction(text) {
    const d = $('confirm');
    $('confirm-text').textContent = text;
    return new Promise((resolve) => {
      const done = (ok) => {
        $('confirm-ok').onclick = null;
        $('confirm-cancel').onclick = null;
        d.onclose = null;
        if (d.open) d.close();
        resolve(ok);
      };
      $('confirm-ok').onclick = () => done(true);
      $('confirm-cancel').onclick = () => done(false);
      d.onclose = () => done(false);
      d.showModal();
    });
  }

  // --- overview ------------------------------------------------------------
  function pct(f) { return (f * 100).toFixed(2) + '%'; }
  function ms(f) { return f.toFixed(1) + ' ms'; }
  function fig(f) { return f.requests + ' req, ' + pct(f.failure_rate) + ' failed, p95 ' + ms(f.p95_ms); }

  function badge(text, cls) {
    const s = document.createElement('span');
    s.className = 'badge ' + cls;
    s.textContent = text;
    return s;
  }
  function muted(text) {
    const s = document.createElement('span');
    s.className = 'muted';
    s.textContent = text;
    return s;
  }

  function showStatus(s) {
    $('plan-version').textContent = s.plan_version;
    const ps = s.plan_store;
    $('store-version').replaceChildren(ps
      ? document.createTextNode(ps.version + ' ')
      : muted('no plan store'));
    if (ps) {
      $('store-version').append(muted('(' + ps.source + (ps.author ? ', by ' + ps.author : '') + (ps.note ? ': ' + ps.note : '') + ')'));
    }
    $('canary-share').textContent = s.plan.canary_percent + ' %';
    const ks = s.kill_switch;
    const k = $('kill-state');
    k.textContent = ks.on ? 'ON' : 'off';
    k.className = 'badge ' + (ks.on ? 'on' : 'off');
    const now = $('kill-now');
    now.textContent = ks.on ? 'ON, held by ' + ks.sources.join(', ') : 'off';
    now.className = k.className;
    $('kill-sources').textContent = ks.on ? 'held by ' + ks.sources.join(', ') + ' (reason ' + ks.reason + ')' : '';
    const f = s.fleet;
    $('fleet').textContent = f ? (f.on ? 'ON by ' + f.actor + ': ' + f.reason : 'off') + (f.pending ? ' (pending)' : '') + (f.error ? ' — ' + f.error : '') : 'none';
    const g = s.guard;
    $('window-label').textContent = g.enabled ? "over the guard's window (" + g.window + '), one point a second' : 'the guard is off: no figures';
    const gs = $('guard-state');
    if (g.enabled) {
      gs.replaceChildren(g.tripped ? badge('tripped', 'on') : badge('armed', 'ok'), document.createTextNode(' '),
        muted('window ' + g.window + ', from the ' + g.source));
    } else {
      gs.replaceChildren(muted('off'));
    }
    $('trip-summary').replaceChildren(g.trip ? document.createTextNode(g.trip.summary) : muted('none'));
    $('untrusted').textContent = s.untrusted_overrides;
    $('plan-error').textContent = s.plan_error || '';
    $('fig-canary').textContent = fig(g.canary);
    $('fig-stable').textContent = fig(g.stable);
    samples.push({ cf: g.canary.failure_rate, sf: g.stable.failure_rate, cp: g.canary.p95_ms, sp: g.stable.p95_ms });
    if (samples.length > maxPoints) samples.shift();
    draw($('chart-fail'), 'cf', 'sf', (v) => (v * 100).toFixed(v < 0.1 ? 1 : 0) + '%', 0.01);
    draw($('chart-p95'), 'cp', 'sp', (v) => v.toFixed(0) + ' ms', 10);
  }

  // --- the chart (SVG, one point a second) -----------------------------------
  const W = 400, H = 160, L = 44, R = 6, T = 8, B = 14;
  const svgNS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, text) {
    const e = document.createElementNS(svgNS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function draw(svg, ck, sk, label, floor) {
    let max = floor;
    for (const p of samples) max = Math.max(max, p[ck], p[sk]);
    max *= 1.1;
    const x = (i) => L + (W - L - R) * (i + maxPoints - samples.length) / (maxPoints - 1);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const kids = [];
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4;
      kids.push(el('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      kids.push(el('text', { class: 'axis-label', x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, label(v)));
    }
    kids.push(el('text', { class: 'axis-label', x: L, y: H - 2 }, '-' + (maxPoints - 1) + ' s'));
    kids.push(el('text', { class: 'axis-label', x: W - R, y: H - 2, 'text-anchor': 'end' }, 'now'));
    const pts = (k) => samples.map((p, i) => x(i).toFixed(1) + ',' + y(p[k]).toFixed(1)).join(' ');
    kids.push(el('polyline', { class: 'line-stable', points: pts(sk) }));
    kids.push(el('polyline', { class: 'line-canary', points: pts(ck) }));
    svg.replaceChildren(...kids);
    svg.dataset.points = String(samples.length);
  }

  function stream() {
    const es = new EventSource(base + '/events');
    es.addEventListener('status', (e) => {
      try { showStatus(JSON.parse(e.data)); } catch (err) { console.warn('console: bad event', err); }
    });
    es.onopen = () => { $('live').textContent = 'live'; $('live').className = 'live on'; };
    es.onerror = () => { $('live').textContent = 'disconnected'; $('live').className = 'live off'; };
  }

  // --- token ---------------------------------------------------------------
  async function useToken() {
    token = $('token').value.trim();
    const st = $('token-state');
    if (!token) { st.textContent = 'read-only'; return; }
    const r = await api('GET', '/plan');
    if (r.status === 200 || (r.status === 404 && r.json && r.json.code === 'no_plan_store')) {
      st.textContent = 'token accepted';
    } else {
      st.textContent = errText(r);
      token = '';
    }
  }

  // --- kill switch -----------------------------------------------------------
  async function kill(action, text) {
    const msg = $('action-msg');
    if (!(await confirmAction(text))) { say(msg, action + ': cancelled'); return; }
    const r = await api('POST', '', { action, note: $('kill-note').value, author: author() });
    if (r.status === 200 || r.status === 202) {
      showStatus(r.json);
      say(msg, (action === 'rearm' ? 'guard re-arm' : 'kill switch ' + action) + ': done' + (r.status === 202 ? ' here; the fleet is written when Redis answers' : ''), 'good');
    } else {
      say(msg, (action === 'rearm' ? 'guard re-arm' : 'kill switch ' + action) + ': ' + errText(r), 'bad');
    }
  }

  // --- explain -------------------------------------------------------------
  async function explain() {
    const q = new URLSearchParams();
    const t = $('explain-tenant').value.trim(), u = $('explain-user').value.trim();
    if (t) q.set('tenant', t);
    if (u) q.set('user', u);
    const r = await api('GET', '/explain?' + q.toString());
    const out = $('explain-out');
    out.replaceChildren();
    if (r.status !== 200) { say($('explain-msg'), errText(r), 'bad'); return; }
    say($('explain-msg'), '');
    const x = r.json;
    const rows = [
      ['Cohort', x.cohort, 'explain-cohort'],
      ['Rule (reason)', x.reason, 'explain-reason'],
      ['Bucket', x.bucket + (x.bucket >= 0 ? ' (canary below ' + x.canary_below + ', ' + x.canary_percent + ' %)' : ''), 'explain-bucket'],
      ['Plan alone', x.plan_cohort + ' (' + x.plan_reason + ')', 'explain-plan'],
      ['Kill switch', x.kill_switch ? 'ON' : 'off', 'explain-kill'],
      ['User hash', x.user_hash || '—', 'explain-hash'],
      ['Plan version', x.plan_version + (x.store_version ? ', store ' + x.store_version : ''), 'explain-version'],
    ];
    for (const [k, v, id] of rows) {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v; dd.id = id;
      out.append(dt, dd);
    }
  }

  // --- plan, history, diff, apply, rollback ------------------------------------
  async function loadPlan() {
    const msg = $('plan-msg');
    const r = await api('GET', '/plan');
    if (r.status !== 200) { say(msg, errText(r), 'bad'); return; }
    const p = r.json;
    current = p.version;
    $('plan-yaml').textContent = p.plan;
    $('plan-store-version').textContent = 'store version ' + p.version + (p.in_force ? ', this engine: ' + p.in_force.version : '');
    if (!$('apply-yaml').value) $('apply-yaml').value = p.plan;
    const h = await api('GET', '/plan/history?limit=20');
    if (h.status !== 200) { say(msg, errText(h), 'bad'); return; }
    const body = $('history').tBodies[0];
    body.replaceChildren();
    const from = $('diff-from'), to = $('diff-to');
    from.replaceChildren(); to.replaceChildren();
    for (const e of h.json) {
      const tr = document.createElement('tr');
      tr.dataset.version = e.version;
      const action = e.action + (e.rolled_back_to ? ' to ' + e.rolled_back_to : '');
      for (const v of [e.version, action, e.author, e.note || '', e.time ? new Date(e.time).toLocaleString() : '']) {
        const td = document.createElement('td'); td.textContent = v; tr.append(td);
      }
      const td = document.createElement('td');
      if (e.version !== current) {
        const b = document.createElement('button');
        b.type = 'button'; b.className = 'rollback danger'; b.textContent = 'Roll back to ' + e.version;
        b.dataset.version = e.version;
        b.id = 'rollback-' + e.version;
        b.onclick = () => rollback(e.version);
        td.append(b);
      } else {
        td.append(muted('current'));
      }
      tr.append(td);
      body.append(tr);
      for (const s of [from, to]) {
        const o = document.createElement('option'); o.value = e.version; o.textContent = e.version; s.append(o);
      }
    }
    if (h.json.length > 1) from.value = h.json[1].version;
    say(msg, 'plan version ' + p.version + ' loaded', 'good');
  }

  async function showDiff() {
    const r = await api('GET', '/plan/diff?from=' + encodeURIComponent($('diff-from').value) + '&to=' + encodeURIComponent($('diff-to').value));
    const out = $('diff-out');
    out.replaceChildren();
    if (r.status !== 200) { out.textContent = errText(r); return; }
    for (const line of r.json.diff.split('\n')) {
      const s = document.createElement('span');
      if (line.startsWith('+')) s.className = 'add';
      if (line.startsWith('-')) s.className = 'del';
      s.textContent = line + '\n';
      out.append(s);
    }
  }

  async function rollback(v) {
    const msg = $('plan-msg');
    if (!(await confirmAction('Roll the plan back to version ' + v + ' (the store is at ' + current + ')? Every engine follows it.'))) {
      say(msg, 'rollback: cancelled'); return;
    }
    const r = await api('POST', '/plan/rollback', { to: v, expect_version: current, note: 'console rollback to ' + v, author: author() });
    if (r.status !== 200) { say(msg, 'rollback: ' + errText(r), 'bad'); return; }
    await loadPlan();
    say(msg, 'rolled back to version ' + v + ': now version ' + r.json.version, 'good');
  }

  async function apply() {
    const msg = $('plan-msg');
    if (!(await confirmAction('Apply this plan on top of version ' + current + '? Every engine follows it.'))) {
      say(msg, 'apply: cancelled'); return;
    }
    const body = { plan: $('apply-yaml').value, note: $('apply-note').value, author: author() };
    if (current !== null) body.expect_version = current;
    const r = await api('POST', '/plan/apply', body);
    if (r.status !== 200) { say(msg, 'apply: ' + errText(r), 'bad'); return; }
    await loadPlan();
    say(msg, 'applied: version ' + r.json.version, 'good');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('token-set').onclick = useToken;
    $('token').addEventListener('keydown', (e) => { if (e.key === 'Enter') useToken(); });
    $('kill-on').onclick = () => kill('on', 'Turn the kill switch ON? Every new request goes to stable.');
    $('kill-off').onclick = () => kill('off', 'Turn the kill switch off and re-arm the guard? Canary traffic resumes as the plan says.');
    $('kill-rearm').onclick = () => kill('rearm', "Re-arm the guard? Only the guard's trip ends.");
    $('explain-btn').onclick = explain;
    $('plan-load').onclick = loadPlan;
    $('diff-show').onclick = showDiff;
    $('apply-btn').onclick = apply;
    stream();
  });
})();
