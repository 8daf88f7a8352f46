'use strict';
// Tests of wechat-auth.js against a scripted fake server (fakewx.js).
// Run: node --test client/

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('./wechat-auth.js');
const { BASE, fakeServer, fakeWx, fakeClock } = require('./fakewx.js');

const T = { timeout: 5000 };

/** A client over a fresh fake server; opts are extra createClient options. */
function setup(opts) {
  const server = fakeServer();
  const wx = fakeWx(server);
  const clock = fakeClock();
  const client = createClient(Object.assign({ baseURL: BASE, wx, now: clock.now }, opts || {}));
  return { server, wx, clock, client };
}

/** Logs in and resets the call records, so a test counts only what follows. */
async function loggedIn(opts) {
  const env = setup(opts);
  await env.client.login();
  env.server.calls.length = 0;
  env.wx.logins = 0;
  return env;
}

function stored(wx, prefix) {
  return {
    token: wx.getStorageSync((prefix || 'wechat_auth_') + 'token'),
    refresh: wx.getStorageSync((prefix || 'wechat_auth_') + 'refresh_token'),
  };
}

test('login stores the tokens under the default prefix and never returns them', T, async () => {
  const { client, wx, clock } = setup();
  const res = await client.login();
  assert.equal(res.status, 'success');
  assert.equal(res.user_id, 42);
  assert.equal(res.new_user, true);
  assert.equal(res.token, undefined, 'login() must not hand out the access token');
  assert.equal(res.refresh_token, undefined, 'login() must not hand out the refresh token');
  assert.deepEqual([...wx.storage.keys()].sort(), [
    'wechat_auth_expires_at', 'wechat_auth_refresh_at', 'wechat_auth_refresh_token', 'wechat_auth_token', 'wechat_auth_user_id',
  ]);
  assert.equal(wx.storage.get('wechat_auth_token'), 'at-1');
  assert.equal(wx.storage.get('wechat_auth_refresh_token'), 'rt-1');
  assert.equal(wx.storage.get('wechat_auth_expires_at'), clock.t + 900 * 1000);
  assert.equal(wx.storage.get('wechat_auth_refresh_at'), clock.t + 840 * 1000);
  assert.equal(wx.storage.get('wechat_auth_user_id'), 42);
});

test('storagePrefix names every key; two prefixes keep two sessions apart', T, async () => {
  const server = fakeServer();
  const wx = fakeWx(server);
  const a = createClient({ baseURL: BASE, wx, storagePrefix: 'shopA:' });
  const b = createClient({ baseURL: BASE, wx, storagePrefix: 'shopB:' });
  await a.login();
  await b.login();
  assert.deepEqual([...wx.storage.keys()].sort(), [
    'shopA:expires_at', 'shopA:refresh_at', 'shopA:refresh_token', 'shopA:token', 'shopA:user_id',
    'shopB:expires_at', 'shopB:refresh_at', 'shopB:refresh_token', 'shopB:token', 'shopB:user_id',
  ]);
  assert.notEqual(wx.storage.get('shopA:token'), wx.storage.get('shopB:token'));
  await a.logout();
  assert.deepEqual([...wx.storage.keys()].sort(), [
    'shopB:expires_at', 'shopB:refresh_at', 'shopB:refresh_token', 'shopB:token', 'shopB:user_id',
  ]);
});

test('request sends the stored access token to baseURL only', T, async () => {
  const { client, server } = await loggedIn();
  const res = await client.request({ url: '/orders', header: { authorization: 'Bearer spoofed', 'X-Trace': '1' } });
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.token, 'at-1');
  assert.equal(server.calls[0].header['X-Trace'], '1');
  assert.equal(server.calls[0].header.authorization, undefined, 'a caller-set Authorization must not be sent beside the token');

  const abs = await client.request({ url: BASE + '/abs' });
  assert.equal(abs.data.token, 'at-1', 'an absolute URL on baseURL gets the token');

  // Another origin never sees the token.
  const foreign = fakeWx(server);
  const sent = [];
  foreign.request = (o) => {
    sent.push(o);
    setImmediate(() => o.success({ statusCode: 200, data: 'ok', header: {} }));
  };
  foreign.storage.set('wechat_auth_token', 'at-secret');
  foreign.storage.set('wechat_auth_refresh_token', 'rt-secret');
  foreign.storage.set('wechat_auth_expires_at', Date.now() + 600000);
  const c2 = createClient({ baseURL: BASE, wx: foreign });
  const r2 = await c2.request({ url: 'https://elsewhere.test/x', header: { A: 'b' } });
  assert.equal(r2.statusCode, 200);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].header, { A: 'b' }, 'no token may be sent to another origin');
});

test('10 concurrent requests with an expired token make exactly one refresh', T, async () => {
  const { client, server, clock } = await loggedIn();
  clock.advance(901 * 1000); // past expires_in by the client's clock
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.request({ url: '/item/' + i })));
  assert.equal(server.count('/wx/refresh'), 1);
  assert.equal(server.count('/wx/login'), 0);
  for (const r of results) {
    assert.equal(r.statusCode, 200);
    assert.equal(r.data.token, 'at-2', 'every request carries the refreshed token');
  }
  assert.equal(server.calls.filter((c) => c.path.startsWith('/item/')).length, 10, 'no request is sent twice');
});

test('10 concurrent requests whose token the server refuses share one refresh and replay once each', T, async () => {
  const { client, server } = await loggedIn();
  server.accessTokens.delete('at-1'); // the server no longer accepts it; the client cannot know
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.request({ url: '/item/' + i })));
  assert.equal(server.count('/wx/refresh'), 1);
  assert.equal(server.count('/wx/login'), 0);
  assert.deepEqual(results.map((r) => r.statusCode), Array(10).fill(200));
  assert.equal(server.calls.filter((c) => c.path.startsWith('/item/')).length, 20, 'each request: one refused send, one replay');
});

test('a 401 for a token already replaced is replayed without another refresh', T, async () => {
  const { client, server } = await loggedIn();
  server.accessTokens.delete('at-1');
  let release;
  const gate = new Promise((r) => (release = r));
  server.hold = (req) => (req.url.endsWith('/slow') ? gate : undefined);
  const slow = client.request({ url: '/slow' }); // sent with at-1, answered late
  const fast = await client.request({ url: '/fast' }); // 401, refresh, replay with at-2
  assert.equal(fast.data.token, 'at-2');
  release();
  const res = await slow;
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.token, 'at-2');
  assert.equal(server.count('/wx/refresh'), 1);
});

test('refresh answering invalid_grant leads to exactly one wx.login, then a replay', T, async () => {
  const { client, server, wx } = await loggedIn();
  server.revoked.add('s1'); // the session ended on the server (logout elsewhere, theft detection)
  const results = await Promise.all(Array.from({ length: 5 }, () => client.request({ url: '/me' })));
  assert.deepEqual(results.map((r) => r.statusCode), Array(5).fill(200));
  assert.equal(server.count('/wx/refresh'), 1);
  assert.equal(wx.logins, 1);
  assert.equal(server.count('/wx/login'), 1);
  assert.equal(stored(wx).token, 'at-2');
  for (const r of results) assert.equal(r.data.session, 's2');
});

test('a server that always answers 401 gets a bounded number of calls, then a rejection', T, async () => {
  const { client, server, wx } = await loggedIn();
  server.rejectAll = true;
  await assert.rejects(client.request({ url: '/loop' }), (err) => {
    assert.equal(err.status, 401);
    assert.equal(err.error, 'invalid_token');
    assert.equal(typeof err.message, 'string');
    return true;
  });
  // One send, one refresh, one replay; never more.
  assert.equal(server.count('/loop'), 2);
  assert.equal(server.count('/wx/refresh'), 1);
  assert.equal(server.calls.length, 3);
  assert.equal(wx.logins, 0);

  // With the refresh refused as well: one re-login, one replay, then stop.
  server.calls.length = 0;
  server.refreshAnswer = () => ({ statusCode: 401, data: { status: 'error', error: 'invalid_grant', message: 'no' }, header: {} });
  await assert.rejects(client.request({ url: '/loop' }), { status: 401, error: 'invalid_token' });
  assert.equal(server.count('/loop'), 2);
  assert.equal(server.count('/wx/refresh'), 1);
  assert.equal(server.count('/wx/login'), 1);
  assert.equal(wx.logins, 1);
  assert.equal(server.calls.length, 4);

  // Starting with no session: the login before the first send is the one
  // login this request gets.
  await client.logout().catch(() => {});
  server.calls.length = 0;
  wx.logins = 0;
  await assert.rejects(client.request({ url: '/loop' }), { status: 401 });
  assert.equal(wx.logins, 1);
  assert.equal(server.count('/wx/login'), 1);
  assert.equal(server.count('/loop'), 1, 'the refused refresh ends it: no second login, no replay');
  assert.equal(server.count('/wx/refresh'), 1);
});

test('a failed re-login rejects with the login error and sends nothing more', T, async () => {
  const { client, server, wx } = await loggedIn();
  server.revoked.add('s1');
  server.loginAnswer = () => ({ statusCode: 403, data: { status: 'error', error: 'user_banned', message: 'banned' }, header: {} });
  await assert.rejects(client.request({ url: '/me' }), { status: 403, error: 'user_banned', message: 'banned' });
  assert.equal(wx.logins, 1);
  assert.equal(server.count('/me'), 1);
  assert.equal(client.isLoggedIn(), false);
});

test('without autoLogin an ended session rejects with invalid_grant and wx.login is never called', T, async () => {
  const { client, server, wx } = await loggedIn({ autoLogin: false });
  server.revoked.add('s1');
  await assert.rejects(client.request({ url: '/me' }), { status: 401, error: 'invalid_grant' });
  assert.equal(wx.logins, 0);
  assert.equal(client.isLoggedIn(), false);
  // No session at all: the request goes out without a token and its 401 is final.
  await assert.rejects(client.request({ url: '/me' }), { status: 401, error: 'invalid_token' });
  assert.equal(wx.logins, 0);
  assert.equal(server.calls.at(-1).header.Authorization, undefined);
});

test('with no session, request logs in silently once first', T, async () => {
  const { client, server, wx } = setup();
  const res = await Promise.all([client.request({ url: '/a' }), client.request({ url: '/b' })]);
  assert.deepEqual(res.map((r) => r.data.token), ['at-1', 'at-1']);
  assert.equal(wx.logins, 1);
  assert.equal(server.count('/wx/login'), 1);
});

test('statuses the client does not handle pass through unchanged', T, async () => {
  const { client, server } = await loggedIn();
  const teapot = await client.request({ url: '/teapot' });
  assert.equal(teapot.statusCode, 418);
  assert.equal(teapot.data, 'short and stout');
  // An upstream's own 401 (no Bearer challenge, no invalid_token) is the app's business.
  const up = await client.request({ url: '/upstream-401' });
  assert.equal(up.statusCode, 401);
  assert.deepEqual(up.data, { detail: 'not yours' });
  assert.equal(server.count('/wx/refresh'), 0);
});

test('a network failure rejects with network_error and is not retried', T, async () => {
  const { client, server } = await loggedIn();
  server.failPaths.add('/down');
  await assert.rejects(client.request({ url: '/down' }), { status: 0, error: 'network_error' });
  assert.equal(server.count('/down'), 1);
  assert.equal(client.isLoggedIn(), true, 'a network failure must not end the session');
});

test('concurrent login() calls share one wx.login and one login request', T, async () => {
  const { client, server, wx } = setup();
  const results = await Promise.all(Array.from({ length: 8 }, () => client.login()));
  assert.equal(wx.logins, 1);
  assert.equal(server.count('/wx/login'), 1);
  for (const r of results) assert.equal(r.user_id, 42);
  // A later login is a new one.
  await client.login();
  assert.equal(wx.logins, 2);
});

test('login sends profile fields, and rejects with {status, error, message}', T, async () => {
  const { client, server, wx } = setup();
  await client.login({ nickname: 'Li', gender: 1, openid: 'forged' });
  assert.deepEqual(server.calls[0].data, { nickname: 'Li', gender: 1, code: 'code-1' }, 'only profile fields and the code are sent');
  server.loginAnswer = () => ({ statusCode: 400, data: { status: 'error', error: 'invalid_code', message: 'invalid code' }, header: {} });
  await assert.rejects(client.login(), { status: 400, error: 'invalid_code', message: 'invalid code' });
  wx.loginFails = true;
  await assert.rejects(client.login(), { status: 0, error: 'wx_login_failed' });
  await assert.rejects(client.login('x'), { error: 'invalid_request' });
});

test('refresh ahead: refreshAhead seconds before expiry, not earlier', T, async () => {
  const { client, server, clock } = await loggedIn();
  clock.advance((900 - 61) * 1000);
  await client.request({ url: '/a' });
  assert.equal(server.count('/wx/refresh'), 0, '61 s before expiry is too early for refreshAhead 60');
  clock.advance(2000);
  const res = await client.request({ url: '/b' });
  assert.equal(server.count('/wx/refresh'), 1, '59 s before expiry refreshes first');
  assert.equal(res.data.token, 'at-2');
  assert.equal(server.calls.at(-1).path, '/b');
  assert.equal(server.calls.filter((c) => c.path === '/b').length, 1, 'the request is sent once, after the refresh');

  const zero = await loggedIn({ refreshAhead: 0 });
  zero.clock.advance(899 * 1000);
  await zero.client.request({ url: '/a' });
  assert.equal(zero.server.count('/wx/refresh'), 0);
  zero.clock.advance(1000);
  await zero.client.request({ url: '/a' });
  assert.equal(zero.server.count('/wx/refresh'), 1);
});

test('a token shorter-lived than refreshAhead is refreshed halfway through its life, not before every request', T, async () => {
  const env = setup();
  env.server.expiresIn = 30; // refreshAhead 60 > 30 s lifetime
  await env.client.login();
  env.server.calls.length = 0;
  for (let i = 0; i < 5; i++) await env.client.request({ url: '/a' });
  assert.equal(env.server.count('/wx/refresh'), 0);
  env.clock.advance(14 * 1000);
  await env.client.request({ url: '/a' });
  assert.equal(env.server.count('/wx/refresh'), 0);
  env.clock.advance(1000);
  await env.client.request({ url: '/a' });
  assert.equal(env.server.count('/wx/refresh'), 1);
  await env.client.request({ url: '/a' });
  assert.equal(env.server.count('/wx/refresh'), 1);
});

test('a refresh that finishes after a login does not overwrite the login', T, async () => {
  const { client, server, wx, clock } = await loggedIn();
  clock.advance(901 * 1000);
  let release;
  const gate = new Promise((r) => (release = r));
  server.hold = (req) => (req.url.endsWith('/wx/refresh') ? gate : undefined);
  const pending = client.refresh();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  await client.login();
  const afterLogin = stored(wx).token;
  release();
  await pending;
  assert.equal(stored(wx).token, afterLogin, 'the older refresh must not replace the newer login');
  const res = await client.request({ url: '/a' });
  assert.equal(res.data.token, afterLogin);
});

test('a failed refresh ahead still sends the request with the current token', T, async () => {
  const { client, server, clock } = await loggedIn();
  clock.advance(850 * 1000);
  server.failPaths.add('/wx/refresh');
  const res = await client.request({ url: '/a' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.data.token, 'at-1');
  assert.equal(server.count('/wx/refresh'), 1);
});

test('logout clears storage even when the network fails', T, async () => {
  const { client, server, wx } = await loggedIn();
  const events = [];
  client.onAuthChange((s) => events.push(s));
  server.failPaths.add('*');
  await assert.rejects(client.logout(), { status: 0, error: 'network_error' });
  assert.equal(wx.storage.size, 0);
  assert.equal(client.isLoggedIn(), false);
  assert.deepEqual(events.map((e) => [e.event, e.loggedIn]), [['logout', false]]);
});

test('logout sends the access token, or the refresh token once the access token has expired', T, async () => {
  const { client, server, wx } = await loggedIn();
  await client.logout();
  assert.equal(server.calls.length, 1);
  assert.equal(server.calls[0].header.Authorization, 'Bearer at-1');
  assert.deepEqual(server.calls[0].data, {});
  assert.equal(wx.storage.size, 0);
  assert.ok(server.revoked.has('s1'));

  const b = await loggedIn();
  b.clock.advance(901 * 1000);
  await b.client.logout({ all: true });
  assert.equal(b.server.calls[0].header.Authorization, undefined);
  assert.deepEqual(b.server.calls[0].data, { all: true, refresh_token: 'rt-1' });

  // An access token the server already refuses: one more try with the refresh token.
  const c = await loggedIn();
  c.server.accessTokens.delete('at-1');
  await c.client.logout({ all: true });
  assert.equal(c.server.calls.length, 2);
  assert.deepEqual(c.server.calls[1].data, { all: true, refresh_token: 'rt-1' });
  assert.ok(c.server.revoked.has('s1'));

  // Logged out already: nothing to send.
  await c.client.logout();
  assert.equal(c.server.calls.length, 2);
});

test('a logout during a refresh does not bring the session back', T, async () => {
  const { client, server, wx, clock } = await loggedIn();
  clock.advance(901 * 1000);
  let release;
  const gate = new Promise((r) => (release = r));
  server.hold = (req) => (req.url.endsWith('/wx/refresh') ? gate : undefined);
  const pending = client.refresh();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  const refreshed = assert.rejects(pending, { error: 'invalid_grant' });
  const out = client.logout();
  assert.equal(wx.storage.size, 0, 'logout clears the phone at once');
  assert.equal(client.isLoggedIn(), false);
  release();
  await out;
  await refreshed;
  assert.equal(wx.storage.size, 0);
  // The logout waited for the refresh and ended the session with its new token.
  assert.deepEqual(server.calls.map((c) => c.path), ['/wx/refresh', '/wx/logout']);
  assert.equal(server.calls[1].header.Authorization, 'Bearer at-2');
  assert.ok(server.revoked.has('s1'));
});

/** Lets the fake server and the client run until nothing is pending. */
async function ticks(n) {
  for (let i = 0; i < (n || 10); i++) await new Promise((r) => setImmediate(r));
}

test('logout({all: true}) rejects with invalid_grant when the server ended nothing; a plain logout resolves', T, async () => {
  for (const all of [true, false]) {
    // The server no longer knows the stored session (its refresh token was
    // rotated by a refresh whose answer never arrived, say); the access
    // token has expired, so the refresh token is sent.
    const { client, server, wx, clock } = await loggedIn();
    clock.advance(901 * 1000);
    server.refreshTokens.delete('rt-1');
    const out = client.logout(all ? { all: true } : undefined);
    if (all) {
      await assert.rejects(out, { status: 401, error: 'invalid_grant' });
    } else {
      assert.deepEqual(await out, { status: 'success' });
    }
    assert.equal(wx.storage.size, 0, 'the phone forgets the session either way');
    assert.deepEqual(server.calls[0].data, all ? { all: true, refresh_token: 'rt-1' } : { refresh_token: 'rt-1' });
  }

  // The access token refused, then the refresh token unknown: the same.
  const { client, server } = await loggedIn();
  server.accessTokens.delete('at-1');
  server.refreshTokens.delete('rt-1');
  await assert.rejects(client.logout({ all: true }), { error: 'invalid_grant' });
  assert.equal(server.count('/wx/logout'), 2);
});

test('logout({all: true}) racing a refresh the server already rotated waits and uses the new tokens', T, async () => {
  const { client, server, wx, clock } = await loggedIn();
  // Another device of the same user.
  const other = createClient({ baseURL: BASE, wx: fakeWx(server), now: clock.now });
  await other.login();
  clock.advance(901 * 1000); // the access token has expired: the refresh token would be sent
  let release;
  const gate = new Promise((r) => (release = r));
  server.holdAnswer = (req) => (req.url.endsWith('/wx/refresh') ? gate : undefined);
  const pending = client.refresh();
  await ticks();
  assert.ok(!server.refreshTokens.has('rt-1'), 'the server has rotated rt-1; its answer is on the way');
  const refreshed = assert.rejects(pending, { error: 'invalid_grant' });
  const out = client.logout({ all: true });
  assert.equal(wx.storage.size, 0);
  await ticks();
  assert.equal(server.count('/wx/logout'), 0, 'the logout waits for the refresh in flight');
  release();
  assert.deepEqual(await out, { status: 'success' });
  await refreshed;
  const logout = server.calls.filter((c) => c.path === '/wx/logout');
  assert.equal(logout.length, 1);
  assert.equal(logout[0].header.Authorization, 'Bearer at-3', 'sent with the refreshed access token');
  assert.ok(server.revoked.has('s1') && server.revoked.has('s2'), 'every session of the user ended');
});

test('logout does not wait for a refresh of a session a login already replaced', T, async () => {
  const { client, server, clock } = await loggedIn();
  clock.advance(901 * 1000);
  let release;
  const gate = new Promise((r) => (release = r));
  server.hold = (req) => (req.url.endsWith('/wx/refresh') ? gate : undefined);
  const pending = client.refresh().catch(() => {});
  await ticks();
  await client.login(); // session s2, stored
  const out = client.logout();
  await ticks();
  assert.equal(server.count('/wx/logout'), 1, 'sent at once, with the stored session');
  assert.equal(server.calls.find((c) => c.path === '/wx/logout').header.Authorization, 'Bearer at-2');
  await out;
  assert.ok(server.revoked.has('s2'));
  release();
  await pending;
});

test('a refresh stores the new refresh token before anything else', T, async () => {
  const { client, server, wx, clock } = await loggedIn();
  // Snapshots of the storage after every write of the refresh: a
  // mini-program killed between two writes restarts with one of them.
  const snapshots = [];
  const set = wx.setStorageSync;
  wx.setStorageSync = (k, v) => {
    set(k, v);
    snapshots.push(new Map(wx.storage));
  };
  clock.advance(901 * 1000);
  await client.refresh();
  assert.ok(snapshots.length >= 2);
  for (const snap of snapshots) {
    assert.equal(snap.get('wechat_auth_refresh_token'), 'rt-2', 'a spent refresh token is never stored after the refresh');
  }

  // Killed right after the first write: the restarted client refreshes
  // with the live token, without a new wx.login.
  const wx2 = fakeWx(server);
  wx2.storage = new Map(snapshots[0]);
  const restarted = createClient({ baseURL: BASE, wx: wx2, now: clock.now });
  clock.advance(901 * 1000);
  server.calls.length = 0;
  const res = await restarted.request({ url: '/a' });
  assert.equal(res.statusCode, 200);
  assert.equal(wx2.logins, 0);
  assert.deepEqual(server.calls.filter((c) => c.path === '/wx/refresh').map((c) => c.data), [{ refresh_token: 'rt-2' }]);
});

test('logout removes the refresh token before anything else', T, async () => {
  const { client, server, wx, clock } = await loggedIn({ autoLogin: false });
  // Snapshots of the storage after every removal: a mini-program killed
  // between two removals restarts with one of them.
  const snapshots = [];
  const remove = wx.removeStorageSync;
  wx.removeStorageSync = (k) => {
    remove(k);
    snapshots.push(new Map(wx.storage));
  };
  await client.logout();
  assert.ok(snapshots.length >= 2);
  for (const snap of snapshots) {
    assert.ok(!snap.has('wechat_auth_refresh_token'), 'a refresh token is never left behind by a logout');
  }

  // Killed right after the first removal: the restarted client cannot
  // bring the session back with a refresh.
  const wx2 = fakeWx(server);
  wx2.storage = new Map(snapshots[0]);
  const restarted = createClient({ baseURL: BASE, wx: wx2, now: clock.now, autoLogin: false });
  clock.advance(901 * 1000);
  server.calls.length = 0;
  await restarted.request({ url: '/a' }).catch(() => {});
  assert.equal(server.count('/wx/refresh'), 0, 'no refresh with a token the user logged out of');
  assert.equal(restarted.isLoggedIn(), false);
});

test('onAuthChange reports login, refresh, logout and relogin without tokens, and unsubscribes', T, async () => {
  const { client, server, clock } = setup();
  const events = [];
  const off = client.onAuthChange((s) => events.push(s));
  const broken = client.onAuthChange(() => {
    throw new Error('a broken listener');
  });
  // A listener's error does not break the client; it is rethrown from a
  // timer, where the mini-program's onError sees it.
  const timers = [];
  const savedSetTimeout = global.setTimeout;
  global.setTimeout = (fn) => timers.push(fn);
  try {
    await client.login();
  } finally {
    global.setTimeout = savedSetTimeout;
  }
  broken();
  assert.equal(timers.length, 1);
  assert.throws(timers[0], /a broken listener/);
  await client.refresh();
  server.revoked.add('s1');
  await client.request({ url: '/x' });
  await client.logout();
  assert.deepEqual(events.map((e) => [e.event, e.loggedIn]), [
    ['login', true], ['refresh', true], ['logout', false], ['relogin', true], ['logout', false],
  ]);
  assert.equal(events[0].userId, 42);
  assert.equal(events[0].expiresAt, clock.t + 900 * 1000);
  for (const e of events) {
    assert.deepEqual(Object.keys(e).sort(), ['event', 'expiresAt', 'loggedIn', 'userId']);
    assert.ok(!JSON.stringify(e).includes('at-') && !JSON.stringify(e).includes('rt-'), 'no token in an event');
  }
  off();
  await client.login();
  assert.equal(events.length, 5, 'an unsubscribed listener is not called');
  assert.throws(() => client.onAuthChange('x'), TypeError);
});

test('endpoint helpers resolve with the JSON and reject with {status, error, message}', T, async () => {
  const { client, server } = await loggedIn();
  assert.deepEqual(await client.profile(), { status: 'success', user: { id: 42, nickname: 'n' } });
  assert.deepEqual((await client.updateProfile({ nickname: 'Wu' })).user, { id: 42, nickname: 'Wu' });
  assert.equal(server.calls.at(-1).method, 'PUT');
  await assert.rejects(client.updateProfile({ gender: 9 }), { status: 400, error: 'invalid_request', message: 'gender must be 0, 1 or 2' });
  assert.equal((await client.bindPhone('pc-1')).phone.phone_number, '+86 13800000000');
  assert.deepEqual(server.calls.at(-1).data, { code: 'pc-1' });
  const d = await client.decrypt({ encryptedData: 'ZW5j', iv: 'aXY=', rawData: '{}', signature: 'ab' });
  assert.deepEqual(d.data.echo, { encrypted_data: 'ZW5j', iv: 'aXY=', raw_data: '{}', signature: 'ab' });
  const n = server.calls.length;
  await assert.rejects(client.bindPhone(''), { status: 0, error: 'invalid_request' });
  await assert.rejects(client.decrypt({ iv: 'x' }), { error: 'invalid_request' });
  await assert.rejects(client.decrypt(null), { error: 'invalid_request' });
  await assert.rejects(client.updateProfile(), { error: 'invalid_request' });
  await assert.rejects(client.request(), { error: 'invalid_request' });
  await assert.rejects(client.request({}), { error: 'invalid_request' });
  assert.equal(server.calls.length, n, 'bad input is refused before anything is sent');
  // A non-JSON error answer still rejects in the same shape.
  server.hold = null;
  const orig = server.handle;
  server.handle = () => ({ statusCode: 502, data: '<html>bad gateway</html>', header: {} });
  await assert.rejects(client.profile(), { status: 502, error: 'unexpected_response' });
  server.handle = orig;
});

test('custom paths are used for every endpoint', T, async () => {
  const server = fakeServer();
  const orig = server.handle;
  const map = { '/auth/in': '/wx/login', '/auth/out': '/wx/logout', '/auth/again': '/wx/refresh', '/me': '/wx/profile' };
  server.handle = (req) => {
    const p = req.url.slice(BASE.length);
    return orig(Object.assign({}, req, { url: BASE + (map[p] || p) }));
  };
  const wx = fakeWx(server);
  const client = createClient({ baseURL: BASE + '/', wx, paths: { login: '/auth/in', logout: '/auth/out', refresh: '/auth/again', profile: '/me' } });
  await client.login();
  await client.refresh();
  await client.profile();
  await client.logout();
  assert.deepEqual(server.calls.map((c) => c.path), ['/auth/in', '/auth/again', '/me', '/auth/out']);
});

test('createClient refuses bad options with a clear TypeError', () => {
  const wx = fakeWx(fakeServer());
  const cases = [
    [undefined, /options object/],
    [{}, /baseURL/],
    [{ baseURL: '/relative', wx }, /baseURL/],
    [{ baseURL: BASE }, /no wx object/],
    [{ baseURL: BASE, wx: { login() {} } }, /no request\(\)/],
    [{ baseURL: BASE, wx, storagePrefix: 3 }, /storagePrefix/],
    [{ baseURL: BASE, wx, paths: { login: 'wx/login' } }, /paths.login/],
    [{ baseURL: BASE, wx, paths: { signin: '/x' } }, /unknown path "signin"/],
    [{ baseURL: BASE, wx, refreshAhead: -1 }, /refreshAhead/],
    [{ baseURL: BASE, wx, refreshAhead: '60' }, /refreshAhead/],
    [{ baseURL: BASE, wx, autoLogin: 'yes' }, /autoLogin/],
    [{ baseURL: BASE, wx, now: 5 }, /now/],
  ];
  for (const [opts, re] of cases) {
    assert.throws(() => createClient(opts), (err) => err instanceof TypeError && re.test(err.message), JSON.stringify(opts));
  }
});

test('the global wx is the default', T, async () => {
  const server = fakeServer();
  global.wx = fakeWx(server);
  try {
    const client = createClient({ baseURL: BASE });
    await client.login();
    assert.equal(global.wx.storage.get('wechat_auth_token'), 'at-1');
  } finally {
    delete global.wx;
  }
});

test('nothing is ever logged', T, async () => {
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'];
  const saved = {};
  const lines = [];
  for (const m of methods) {
    saved[m] = console[m];
    console[m] = (...a) => lines.push(a.join(' '));
  }
  try {
    const { client, server, clock } = setup();
    await client.login();
    clock.advance(901 * 1000);
    await client.request({ url: '/a' });
    server.revoked.add('s1');
    await client.request({ url: '/a' });
    server.failPaths.add('*');
    await client.logout().catch(() => {});
  } finally {
    for (const m of methods) console[m] = saved[m];
  }
  assert.deepEqual(lines, []);
});
