'use strict';
// Tests of wechat-auth.js on every platform: host detection (tt, my, swan,
// qq, wx), each platform's login call, and the client's rules (one shared login,
// one refresh then one replay) through each host object.
// Run: node --test client/

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('./wechat-auth.js');
const { BASE, fakeServer, fakeWx, fakeClock } = require('./fakewx.js');

const T = { timeout: 5000 };
const GLOBALS = ['wx', 'qq', 'tt', 'my', 'swan'];

/** Runs fn with the given globals defined, then removes them. */
async function withGlobals(globals, fn) {
  for (const g of GLOBALS) delete globalThis[g];
  Object.assign(globalThis, globals);
  try {
    return await fn();
  } finally {
    for (const g of GLOBALS) delete globalThis[g];
  }
}

/** A Douyin tt over the fake server: tt.login gives a code and an anonymousCode; loggedOut gives only the latter. */
function fakeTt(server) {
  const tt = fakeWx(server);
  tt.loggedOut = false;
  tt.login = function (o) {
    tt.logins++;
    const n = tt.logins;
    setImmediate(() => {
      if (tt.loggedOut) o.success({ anonymousCode: 'anon-' + n, isLogin: false, errMsg: 'login:ok' });
      else o.success({ code: 'code-' + n, anonymousCode: 'anon-' + n, isLogin: true, errMsg: 'login:ok' });
    });
  };
  return tt;
}

/**
 * Alipay's my over the fake server: getAuthCode instead of login, request
 * with headers and status, storage taking {key, data}.
 */
function fakeMy(server) {
  const inner = fakeWx(server);
  const my = { inner, authCalls: [], logins: 0 };
  my.getAuthCode = function (o) {
    my.authCalls.push(o.scopes);
    my.logins++;
    const n = my.logins;
    setImmediate(() => o.success({ authCode: 'code-' + n }));
  };
  my.request = function (o) {
    assert.equal(o.header, undefined, 'my.request takes headers, not header');
    inner.request({
      url: o.url, method: o.method, data: o.data, header: o.headers,
      success: (res) => o.success({ status: res.statusCode, data: res.data, headers: res.header }),
      fail: (res) => o.fail({ error: 12, errorMessage: res.errMsg }),
    });
  };
  my.getStorageSync = function (o) {
    assert.equal(typeof o, 'object', 'my.getStorageSync takes {key}');
    return { data: inner.storage.has(o.key) ? inner.storage.get(o.key) : null };
  };
  my.setStorageSync = function (o) {
    assert.equal(typeof o, 'object', 'my.setStorageSync takes {key, data}');
    inner.storage.set(o.key, o.data);
  };
  my.removeStorageSync = function (o) {
    inner.storage.delete(o.key);
  };
  return my;
}

const hosts = {
  wechat: { global: 'wx', make: fakeWx, call: 'wx.login' },
  qq: { global: 'qq', make: fakeWx, call: 'qq.login' },
  douyin: { global: 'tt', make: fakeTt, call: 'tt.login' },
  alipay: { global: 'my', make: fakeMy, call: 'my.getAuthCode' },
  baidu: { global: 'swan', make: fakeWx, call: 'swan.login' },
};

function loginCalls(server) {
  return server.calls.filter((c) => c.path === '/wx/login');
}

for (const [platform, h] of Object.entries(hosts)) {
  test(platform + ': the global ' + h.global + ' is found and logs in with ' + h.call, T, () =>
    withGlobals({}, async () => {
      const server = fakeServer();
      const host = h.make(server);
      globalThis[h.global] = host;
      if (platform !== 'wechat') globalThis.wx = fakeWx(server); // a wx alias beside it must not win
      const client = createClient({ baseURL: BASE, now: fakeClock().now });
      const res = await client.login();
      assert.equal(res.status, 'success');
      assert.equal(res.token, undefined);
      const logins = loginCalls(server);
      assert.equal(logins.length, 1);
      assert.equal(logins[0].data.code, 'code-1');
      if (platform === 'douyin') assert.equal(logins[0].data.anonymous_code, 'anon-1');
      else assert.equal(logins[0].data.anonymous_code, undefined);
      if (platform === 'alipay') assert.deepEqual(host.authCalls, ['auth_base']);
      if (platform !== 'wechat') assert.equal(globalThis.wx.logins, 0, 'the wx alias was used');
    }));

  test(platform + ': concurrent requests share one login, and one refresh then one replay', T, () =>
    withGlobals({}, async () => {
      const server = fakeServer();
      const host = h.make(server);
      const client = createClient({ baseURL: BASE, wx: host, platform, now: fakeClock().now });
      const answers = await Promise.all([1, 2, 3].map(() => client.request({ url: '/orders' })));
      for (const a of answers) assert.equal(a.statusCode, 200);
      assert.equal(loginCalls(server).length, 1, 'one login for three requests');
      assert.equal(host.logins, 1);

      // The session's access token is rejected: one refresh, one replay each.
      const old = answers[0].data.token;
      server.accessTokens.delete(old);
      server.calls.length = 0;
      const again = await Promise.all([1, 2].map(() => client.request({ url: '/orders' })));
      for (const a of again) {
        assert.equal(a.statusCode, 200);
        assert.notEqual(a.data.token, old);
      }
      assert.equal(server.count('/wx/refresh'), 1);
      assert.equal(server.count('/orders'), 4);

      // The token went to the site only, in a header the host sent.
      const sent = server.calls.filter((c) => c.path === '/orders').map((c) => c.header.Authorization);
      for (const a of sent) assert.match(a, /^Bearer at-\d+$/);
    }));
}

test('douyin: a user not logged in to the host app gets a clear error and no server call', T, () =>
  withGlobals({}, async () => {
    const server = fakeServer();
    const tt = fakeTt(server);
    tt.loggedOut = true;
    const client = createClient({ baseURL: BASE, wx: tt, now: fakeClock().now, platform: 'douyin' });
    await assert.rejects(client.login(), (err) => {
      assert.equal(err.error, 'wx_login_failed');
      assert.match(err.message, /tt\.login failed: .*not logged in to the Douyin app/);
      return true;
    });
    assert.equal(loginCalls(server).length, 0);
  }));

test('alipay: the tokens are stored through my storage with {key, data}', T, () =>
  withGlobals({}, async () => {
    const server = fakeServer();
    const my = fakeMy(server);
    const client = createClient({ baseURL: BASE, wx: my, now: fakeClock().now });
    await client.login();
    assert.match(my.inner.storage.get('wechat_auth_token'), /^at-\d+$/);
    assert.equal(client.isLoggedIn(), true);
    await client.logout();
    assert.equal(my.inner.storage.has('wechat_auth_token'), false);
  }));

test('a failing host login names the platform call', T, () =>
  withGlobals({}, async () => {
    const server = fakeServer();
    const swan = fakeWx(server);
    swan.loginFails = true;
    globalThis.swan = swan;
    const client = createClient({ baseURL: BASE, now: fakeClock().now });
    await assert.rejects(client.login(), /swan\.login failed/);
  }));

test('uni-app style: a wx-shaped host object with platform alipay logs in with its login', T, () =>
  withGlobals({}, async () => {
    const server = fakeServer();
    const uni = fakeWx(server);
    uni.getAuthCode = () => assert.fail('getAuthCode used although the host has login');
    const client = createClient({ baseURL: BASE, wx: uni, platform: 'alipay', now: fakeClock().now });
    await client.login();
    assert.equal(uni.logins, 1);
  }));

test('detection order and bad options', T, () =>
  withGlobals({}, async () => {
    const server = fakeServer();
    assert.throws(() => createClient({ baseURL: BASE }), /no wx object/);
    assert.throws(() => createClient({ baseURL: BASE, wx: fakeWx(server), platform: 'line' }), /unknown platform "line"/);
    globalThis.qq = fakeWx(server);
    globalThis.swan = fakeWx(server);
    // swan comes before qq; a given platform picks its own global.
    await createClient({ baseURL: BASE, now: fakeClock().now }).login();
    assert.equal(globalThis.swan.logins, 1);
    await createClient({ baseURL: BASE, platform: 'qq', now: fakeClock().now, storagePrefix: 'q_' }).login();
    assert.equal(globalThis.qq.logins, 1);
    assert.throws(() => createClient({ baseURL: BASE, platform: 'douyin' }), /no wx object/);
  }));

// ---- the playground's host objects (emulator/playground/wx-shim.js) ------

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

/** Loads the playground shim with fetch going to server (codes minted as code-N) and an in-memory localStorage. */
function loadShim(server) {
  const store = new Map();
  let codes = 0;
  const fetchFake = async (url, init) => {
    const u = new URL(url);
    let status = 200;
    let data;
    if (u.pathname === '/emulator/code') {
      codes++;
      data = { code: 'code-' + codes, openid: JSON.parse(init.body).openid };
    } else {
      const res = server.handle({ url: url, method: init.method, header: init.headers || {}, data: init.body ? JSON.parse(init.body) : undefined });
      server.calls.push({ path: u.pathname, method: init.method, header: init.headers || {}, data: init.body ? JSON.parse(init.body) : undefined });
      status = res.statusCode;
      data = res.data;
    }
    return {
      ok: status < 400, status,
      headers: new Map([['content-type', 'application/json']]),
      text: async () => JSON.stringify(data),
    };
  };
  const ctx = {
    fetch: fetchFake, performance, URLSearchParams, setTimeout, Object, JSON, Promise, console,
    localStorage: {
      getItem: (k) => (store.has(k) ? store.get(k) : null),
      setItem: (k, v) => store.set(k, String(v)),
      removeItem: (k) => store.delete(k),
    },
  };
  vm.createContext(ctx);
  vm.runInContext(fs.readFileSync(path.join(__dirname, '..', 'emulator', 'playground', 'wx-shim.js'), 'utf8'), ctx);
  return { ctx, store };
}

for (const platform of Object.keys(hosts)) {
  test('playground: the ' + platform + ' host object logs in and calls the site', T, () =>
    withGlobals({}, async () => {
      const server = fakeServer();
      const { ctx, store } = loadShim(server);
      const exchanges = [];
      const host = ctx.createPlaygroundHost(platform, {
        codeURL: BASE + '/emulator/code', storageNamespace: 'pg:',
        openid: () => 'o_pg', onExchange: (e) => exchanges.push(e.kind),
      });
      const client = createClient({ baseURL: BASE, wx: host, platform, now: fakeClock().now });
      await client.login();
      const login = loginCalls(server)[0];
      assert.equal(login.data.code, 'code-1');
      assert.equal(login.data.anonymous_code !== undefined, platform === 'douyin');
      assert.equal(exchanges[0], hosts[platform].call);
      assert.match(JSON.parse(store.get('pg:wechat_auth_token')), /^at-\d+$/);
      const res = await client.request({ url: '/orders' });
      assert.equal(res.statusCode, 200);
      assert.match(res.data.token, /^at-\d+$/);
    }));
}
