'use strict';
// Tests of webViewURL() against the scripted fake server (fakewx.js), with
// the web block's ticket endpoint added to it.
// Run: node --test client/

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('./wechat-auth.js');
const { BASE, fakeServer, fakeWx, fakeClock } = require('./fakewx.js');

const T = { timeout: 5000 };
const TICKET = '/wx/web/ticket';

/**
 * A fake server whose ticket endpoint (at ticketPath) answers like the web
 * block's: a token the site accepts gets a one-time ticket and the enter
 * link; any other answer of the site (401 for a refused token) is passed on.
 * answer, when set, replaces the ticket answer.
 */
function setup(opts) {
  const server = fakeServer();
  const wx = fakeWx(server);
  const clock = fakeClock();
  const ticketPath = (opts && opts.paths && opts.paths.webTicket) || TICKET;
  const env = { server, wx, clock, tickets: [], answer: null };
  const handle = server.handle;
  server.handle = function (req) {
    const path = req.url.slice(BASE.length).split('?')[0];
    if (path !== ticketPath) return handle(req);
    if (req.method !== 'POST') return { statusCode: 405, data: '', header: { Allow: 'POST' } };
    const site = handle(req); // the fake's protected route checks the token
    if (site.statusCode !== 200) return site;
    if (env.answer) return env.answer(req);
    const ticket = 'tk-' + (env.tickets.length + 1);
    env.tickets.push({ ticket, token: site.data.token, data: req.data });
    const next = req.data && req.data.next !== undefined ? req.data.next : '/';
    return {
      statusCode: 200,
      header: { 'Content-Type': 'application/json' },
      data: {
        status: 'success', ticket, expires_in: 60,
        url: '/wx/web/enter?ticket=' + ticket + '&next=' + encodeURIComponent(next),
      },
    };
  };
  env.client = createClient(Object.assign({ baseURL: BASE, wx, now: clock.now }, opts || {}));
  return env;
}

/** A set-up client that has logged in, with the call records reset. */
async function loggedIn(opts) {
  const env = setup(opts);
  await env.client.login();
  env.server.calls.length = 0;
  env.wx.logins = 0;
  return env;
}

test('webViewURL asks for one ticket with the access token and resolves with the enter URL', T, async () => {
  const { client, server, tickets } = await loggedIn();
  const url = await client.webViewURL('/orders?id=1');
  assert.equal(url, BASE + '/wx/web/enter?ticket=tk-1&next=%2Forders%3Fid%3D1');
  assert.equal(server.calls.length, 1);
  const call = server.calls[0];
  assert.equal(call.path, TICKET);
  assert.equal(call.method, 'POST');
  assert.equal(call.header.Authorization, 'Bearer at-1');
  assert.deepEqual(call.data, { next: '/orders?id=1' });
  assert.equal(tickets[0].token, 'at-1');
  assert.doesNotMatch(url, /at-1|rt-1/, 'the URL must never carry a token');
});

test('webViewURL without next sends no next (the server goes to "/")', T, async () => {
  const { client, server } = await loggedIn();
  const url = await client.webViewURL();
  assert.equal(url, BASE + '/wx/web/enter?ticket=tk-1&next=%2F');
  assert.deepEqual(server.calls[0].data, {});
});

test('each call asks for a new ticket (tickets are single-use)', T, async () => {
  const { client, server } = await loggedIn();
  const a = await client.webViewURL('/a');
  const b = await client.webViewURL('/a');
  assert.notEqual(a, b);
  assert.equal(server.count(TICKET), 2);
});

test('paths.webTicket moves the endpoint', T, async () => {
  const { client, server } = await loggedIn({ paths: { webTicket: '/auth/web/ticket' } });
  const url = await client.webViewURL('/x');
  assert.equal(server.calls[0].path, '/auth/web/ticket');
  assert.match(url, /^https:\/\/api\.example\.test\/wx\/web\/enter\?ticket=tk-1/);
});

test('a refused access token is refreshed once and the ticket asked again', T, async () => {
  const { client, server } = await loggedIn();
  server.accessTokens.delete('at-1'); // the site no longer accepts it
  const url = await client.webViewURL('/p');
  assert.equal(url, BASE + '/wx/web/enter?ticket=tk-1&next=%2Fp');
  assert.deepEqual(server.calls.map((c) => c.path), [TICKET, '/wx/refresh', TICKET]);
  assert.equal(server.calls[2].header.Authorization, 'Bearer at-2');
});

test('concurrent calls with a refused token share one refresh', T, async () => {
  const { client, server } = await loggedIn();
  server.accessTokens.delete('at-1');
  const urls = await Promise.all([client.webViewURL('/a'), client.webViewURL('/b'), client.webViewURL('/c')]);
  assert.equal(new Set(urls).size, 3);
  assert.equal(server.count('/wx/refresh'), 1);
  assert.equal(server.count(TICKET), 6);
});

test('a token refused again after the refresh is not retried (no 401 loop)', T, async () => {
  const { client, server } = await loggedIn();
  server.rejectAll = true;
  await assert.rejects(client.webViewURL('/p'), (err) => err.status === 401 && err.error === 'invalid_token');
  assert.equal(server.count(TICKET), 2);
  assert.equal(server.count('/wx/refresh'), 1);
});

test('without a session it logs in once first; with autoLogin false it rejects', T, async () => {
  const env = setup();
  const url = await env.client.webViewURL('/p');
  assert.match(url, /ticket=tk-1/);
  assert.equal(env.wx.logins, 1);
  assert.deepEqual(env.server.calls.map((c) => c.path), ['/wx/login', TICKET]);

  const off = setup({ autoLogin: false });
  await assert.rejects(off.client.webViewURL('/p'), (err) => err.status === 401);
  assert.equal(off.wx.logins, 0);
});

test('a site without a web block answers 404: webViewURL rejects with status 404', T, async () => {
  const { client, server } = await loggedIn();
  server.handle = () => ({ statusCode: 404, data: '', header: {} });
  await assert.rejects(client.webViewURL('/p'), (err) => err.status === 404 && err.error === 'unexpected_response');
});

test('a server error is passed on with its code', T, async () => {
  const env = await loggedIn();
  env.answer = () => ({
    statusCode: 503, header: { 'Content-Type': 'application/json' },
    data: { status: 'error', error: 'store_unavailable', message: 'the database cannot be reached' },
  });
  await assert.rejects(env.client.webViewURL('/p'), (err) => err.status === 503 && err.error === 'store_unavailable');
});

test('next must be a path on the site; nothing is sent otherwise', T, async () => {
  const { client, server } = await loggedIn();
  const bad = ['https://evil.example/', '//evil.example/', '/\\evil.example', 'orders', '', '/a\nb', '/a\u0000', 42, null, {}];
  for (const next of bad) {
    await assert.rejects(client.webViewURL(next), (err) => err.error === 'invalid_request' && err.status === 0,
      'next ' + JSON.stringify(next) + ' must be refused');
  }
  assert.equal(server.calls.length, 0);
});

test('an answer without a usable url is refused, never opened', T, async () => {
  const env = await loggedIn();
  const answers = [
    { status: 'success', ticket: 't' },
    { status: 'success', url: 42 },
    { status: 'success', url: 'https://evil.example/wx/web/enter?ticket=t' },
    { status: 'success', url: '//evil.example/wx/web/enter?ticket=t' },
    { status: 'success', url: '/\\evil.example/enter' },
    { status: 'success', url: 'wx/web/enter?ticket=t' },
  ];
  for (const data of answers) {
    env.answer = () => ({ statusCode: 200, header: { 'Content-Type': 'application/json' }, data });
    await assert.rejects(env.client.webViewURL('/p'), (err) => err.error === 'unexpected_response',
      'answer ' + JSON.stringify(data) + ' must be refused');
  }
  // An absolute URL on the site itself is used as it is.
  env.answer = () => ({
    statusCode: 200, header: { 'Content-Type': 'application/json' },
    data: { status: 'success', url: BASE + '/wx/web/enter?ticket=t' },
  });
  assert.equal(await env.client.webViewURL('/p'), BASE + '/wx/web/enter?ticket=t');
});

test('a baseURL with a path prefix prefixes the enter link too', T, async () => {
  const server = fakeServer();
  const wx = fakeWx(server);
  // The fake answers by path relative to BASE; route the prefixed calls to it.
  const request = wx.request;
  wx.request = (o) => request(Object.assign({}, o, { url: o.url.replace(BASE + '/api', BASE) }));
  const handle = server.handle;
  server.handle = (req) => {
    if (req.url === BASE + TICKET) {
      return { statusCode: 200, header: {}, data: { status: 'success', url: '/wx/web/enter?ticket=t' } };
    }
    return handle(req);
  };
  const client = createClient({ baseURL: BASE + '/api/', wx });
  assert.equal(await client.webViewURL('/p'), BASE + '/api/wx/web/enter?ticket=t');
});

// ---- the playground's web-view button -------------------------------------
//
// The playground page (emulator/playground) runs wx-shim.js, this client and
// app.js. Here they run in a VM context with a minimal DOM built from
// index.html's elements and a scripted fetch, so the button's paths (a new
// tab, a blocked pop-up, a site without a web block) are checked without a
// browser.

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const PLAYGROUND = path.join(__dirname, '..', 'emulator', 'playground');
const EMU = 'http://127.0.0.1:8081';
const SITE = 'http://127.0.0.1:8080';
const LONG_TICKET = 'tk0123456789abcdefghijklmnopqrstuvwxyzABCDEF';

/** A DOM element with the little app.js uses. */
class FakeElement {
  constructor(id, value) {
    this.id = id;
    this.value = value || '';
    this.className = '';
    this.hidden = false;
    this.disabled = false;
    this.children = [];
    this.listeners = {};
    this.text = '';
  }
  get textContent() {
    return this.text + this.children.map((c) => c.textContent).join('');
  }
  set textContent(v) {
    this.text = String(v);
    this.children = [];
  }
  get firstChild() {
    return this.children[0] || null;
  }
  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
  appendChild(c) {
    this.children.push(c);
    return c;
  }
  insertBefore(c) {
    this.children.unshift(c);
    return c;
  }
  click() {
    for (const fn of this.listeners.click || []) fn();
  }
}

/**
 * Loads the playground into a VM context. site(method, path, headers, body)
 * answers the protected site's requests as {status, body}; popups says
 * whether window.open gives a tab.
 */
function playground(site, popups) {
  const html = fs.readFileSync(path.join(PLAYGROUND, 'index.html'), 'utf8');
  const elements = new Map();
  for (const m of html.matchAll(/<(\w+)[^>]*\bid="([^"]+)"[^>]*>/g)) {
    const value = /\bvalue="([^"]*)"/.exec(m[0]);
    elements.set(m[2], new FakeElement(m[2], value ? value[1] : ''));
  }
  const env = { tabs: [], siteCalls: [], elements };
  const storage = new Map();
  function answer(status, body) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return Promise.resolve({
      ok: status >= 200 && status < 300, status,
      headers: new Headers({ 'Content-Type': 'application/json' }),
      text: () => Promise.resolve(text),
      json: () => Promise.resolve(JSON.parse(text)),
    });
  }
  const ctx = {
    document: {
      getElementById: (id) => elements.get(id) || null,
      createElement: (tag) => new FakeElement(tag),
    },
    location: { href: EMU + '/emulator/playground', origin: EMU },
    localStorage: {
      getItem: (k) => (storage.has(k) ? storage.get(k) : null),
      setItem: (k, v) => storage.set(k, String(v)),
      removeItem: (k) => storage.delete(k),
    },
    fetch(url, init) {
      const u = new URL(url);
      if (u.origin === EMU && u.pathname === '/emulator/code') {
        return answer(200, { code: 'code-1', openid: JSON.parse(init.body).openid });
      }
      if (u.origin === SITE) {
        const body = init.body === undefined ? undefined : JSON.parse(init.body);
        env.siteCalls.push({ method: init.method, path: u.pathname, headers: init.headers, body });
        if (u.pathname === '/wx/login') {
          return answer(200, { status: 'success', token: 'at-1', token_type: 'Bearer', expires_in: 900, refresh_token: 'rt-1', user_id: 7 });
        }
        const a = site(init.method, u.pathname, init.headers, body);
        return answer(a.status, a.body);
      }
      return Promise.reject(new TypeError('fetch failed: ' + url));
    },
    performance: { now: () => 0 },
    setInterval: () => 0,
    setTimeout, URL, URLSearchParams, TextDecoder, Headers, atob, console,
  };
  ctx.window = ctx;
  ctx.window.open = function (url, target) {
    if (!popups) return null;
    const tab = { url, target, opener: ctx.window, closed: false, location: { href: url }, close() { this.closed = true; } };
    env.tabs.push(tab);
    return tab;
  };
  vm.createContext(ctx);
  for (const f of [path.join(PLAYGROUND, 'wx-shim.js'), path.join(__dirname, 'wechat-auth.js'), path.join(PLAYGROUND, 'app.js')]) {
    vm.runInContext(fs.readFileSync(f, 'utf8'), ctx, { filename: f });
  }
  env.$ = (id) => elements.get(id);
  /** Clicks a button and waits until its action has finished. */
  env.click = async function (id) {
    const btn = elements.get(id);
    btn.click();
    for (let i = 0; i < 500 && btn.disabled; i++) await new Promise((r) => setImmediate(r));
    assert.equal(btn.disabled, false, 'the action of #' + id + ' did not finish');
  };
  return env;
}

/** A site with a web block: its ticket endpoint answers like the module's. */
function webSite(method, p, headers, body) {
  if (p === '/wx/web/ticket' && method === 'POST' && headers.Authorization === 'Bearer at-1') {
    return { status: 200, body: { status: 'success', ticket: LONG_TICKET, expires_in: 60, url: '/wx/web/enter?ticket=' + LONG_TICKET + '&next=' + encodeURIComponent(body.next) } };
  }
  return { status: 401, body: { status: 'error', error: 'invalid_token', message: 'no' } };
}

test('playground: the web-view button opens the enter URL in a new tab, logging in first', T, async () => {
  const pg = playground(webSite, true);
  pg.$('webview-path').value = '/orders?id=1';
  await pg.click('webview-open');
  assert.deepEqual(pg.siteCalls.map((c) => c.path), ['/wx/login', '/wx/web/ticket']);
  assert.deepEqual(pg.siteCalls[1].body, { next: '/orders?id=1' });
  assert.equal(pg.tabs.length, 1);
  const tab = pg.tabs[0];
  assert.equal(tab.target, '_blank');
  assert.equal(tab.opener, null, 'the opened page must not reach back into the playground');
  assert.equal(tab.location.href, SITE + '/wx/web/enter?ticket=' + LONG_TICKET + '&next=%2Forders%3Fid%3D1');
  const result = pg.$('result');
  assert.equal(result.className, 'ok');
  assert.match(result.textContent, /in a new tab/);
  assert.ok(!result.textContent.includes(LONG_TICKET), 'the page must not show the whole ticket');
  assert.equal(pg.$('webview-note').hidden, true);
});

test('playground: a blocked pop-up gets a single-use link instead', T, async () => {
  const pg = playground(webSite, false);
  await pg.click('webview-open');
  const note = pg.$('webview-note');
  assert.equal(note.hidden, false);
  assert.match(note.textContent, /blocked the new tab/);
  const link = note.children[0];
  assert.equal(link.href, SITE + '/wx/web/enter?ticket=' + LONG_TICKET + '&next=%2F');
  assert.equal(link.target, '_blank');
  assert.equal(link.rel, 'noopener');
});

test('playground: a site without a web block gets a clear message and no tab', T, async () => {
  const answers = {
    'a 404 at the ticket path': () => ({ status: 404, body: '' }),
    'an upstream page at the ticket path (the demo without web)': () => ({ status: 200, body: { hello: 'user 7' } }),
  };
  for (const [name, site] of Object.entries(answers)) {
    const pg = playground(site, true);
    await pg.click('webview-open');
    assert.equal(pg.tabs.length, 1, name);
    assert.equal(pg.tabs[0].closed, true, name + ': the blank tab must be closed');
    const note = pg.$('webview-note');
    assert.equal(note.hidden, false, name);
    assert.match(note.textContent, /it has no web block/, name);
    assert.equal(pg.$('result').className, 'bad', name);
    assert.match(pg.$('result').textContent, /no_web_block/, name);
  }
});
