'use strict';
// wechat-auth.js against the real thing: a Caddy built from ./cmd/caddy with
// wechat_auth and the WeChat emulator, started on free loopback ports, and a
// wx object over HTTP. Run: node --test client/
//
// The binary is built with `go build` into a temporary directory unless
// WECHAT_AUTH_CADDY_BIN names one. Without Go the test skips with one line,
// or fails when WECHAT_AUTH_REQUIRE_EXTERNAL is set (as in CI).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { createClient } = require('./wechat-auth.js');

const REPO = path.resolve(__dirname, '..');
const APP_ID = 'wxnodee2e000000001';
const APP_SECRET = 'node-e2e-app-secret';
const ACCESS_TTL_S = 2;

/** A free loopback TCP port: listen on port 0, note the port, close. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One HTTP exchange over loopback: {status, headers, body (parsed JSON or text)}. */
function httpCall(method, url, { headers, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: headers || {}, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try {
          parsed = JSON.parse(text);
        } catch (e) {
          // wx.request's dataType "json" leaves a body that is not JSON as text.
        }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * A wx object over HTTP: login mints a code for openid at the emulator's
 * POST /emulator/code, request uses node's http client, storage is a Map.
 * Every request is recorded in log as "METHOD path". loseAnswer(path), when
 * set and true, makes a request the server answered fail as if the answer
 * had been lost on the way.
 */
function httpWx(emulatorURL, openid) {
  const w = { storage: new Map(), logins: 0, log: [] };
  w.login = (o) => {
    w.logins++;
    httpCall('POST', emulatorURL + '/emulator/code', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ openid }),
    }).then((r) => {
      if (r.status === 200 && r.body.code) o.success({ code: r.body.code, errMsg: 'login:ok' });
      else o.fail({ errMsg: 'login:fail emulator answered ' + r.status });
    }, (err) => o.fail({ errMsg: 'login:fail ' + err.message }));
  };
  w.request = (o) => {
    const method = (o.method || 'GET').toUpperCase();
    const headers = Object.assign({}, o.header || {});
    let body;
    if (o.data !== undefined && method !== 'GET') {
      body = typeof o.data === 'string' ? o.data : JSON.stringify(o.data);
      if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
    }
    const pathname = new URL(o.url).pathname;
    w.log.push(method + ' ' + pathname);
    httpCall(method, o.url, { headers, body }).then(
      (r) => {
        if (w.loseAnswer && w.loseAnswer(pathname)) {
          o.fail({ errMsg: 'request:fail the answer was lost' });
          return;
        }
        o.success({ statusCode: r.status, data: r.body, header: r.headers, errMsg: 'request:ok' });
      },
      (err) => o.fail({ errMsg: 'request:fail ' + err.message }),
    );
  };
  w.getStorageSync = (k) => (w.storage.has(k) ? w.storage.get(k) : '');
  w.setStorageSync = (k, v) => w.storage.set(k, v);
  w.removeStorageSync = (k) => w.storage.delete(k);
  w.count = (entry) => w.log.filter((l) => l === entry).length;
  return w;
}

/** The Caddy binary to run, built into dir unless WECHAT_AUTH_CADDY_BIN names one; null when Go is missing. */
function caddyBinary(dir) {
  if (process.env.WECHAT_AUTH_CADDY_BIN) return process.env.WECHAT_AUTH_CADDY_BIN;
  const probe = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (probe.error) return null;
  const bin = path.join(dir, 'caddy');
  const build = spawnSync('go', ['build', '-o', bin, './cmd/caddy'], { cwd: REPO, encoding: 'utf8', timeout: 600000 });
  if (build.status !== 0) {
    throw new Error('go build ./cmd/caddy failed:\n' + build.stderr);
  }
  return bin;
}

/** Starts Caddy with the test's Caddyfile; resolves with {siteURL, emulatorURL, stop}. */
async function startCaddy(t, dir, bin) {
  const [admin, emu, site] = [await freePort(), await freePort(), await freePort()];
  const caddyfile = `{
	admin 127.0.0.1:${admin}
	storage file_system ${path.join(dir, 'data')}
	auto_https off
	grace_period 1s
}

http://127.0.0.1:${emu} {
	bind 127.0.0.1
	wechat_emulator {
		app_id ${APP_ID}
		app_secret ${APP_SECRET}
	}
	respond "not an emulator path" 404
}

http://127.0.0.1:${site} {
	bind 127.0.0.1
	wechat_auth {
		app_id ${APP_ID}
		app_secret ${APP_SECRET}
		api_base http://127.0.0.1:${emu}
		db ${path.join(dir, 'wechat_auth.db')}
		access_ttl ${ACCESS_TTL_S}s
		leeway 0s
		timeout 2s
	}
	header Content-Type "application/json; charset=utf-8"
	respond \`{"user_id":"{http.request.header.X-WeChat-User-ID}","openid":"{http.request.header.X-WeChat-OpenID}","sid":"{http.auth.user.sid}"}\`
}
`;
  const file = path.join(dir, 'Caddyfile');
  fs.writeFileSync(file, caddyfile);
  const env = Object.assign({}, process.env, {
    HOME: dir,
    XDG_DATA_HOME: path.join(dir, 'xdg-data'),
    XDG_CONFIG_HOME: path.join(dir, 'xdg-config'),
  });
  const proc = spawn(bin, ['run', '--config', file, '--adapter', 'caddyfile'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  let exited = false;
  const exit = new Promise((resolve) => proc.on('exit', () => {
    exited = true;
    resolve();
  }));
  const stop = async () => {
    if (!exited) proc.kill('SIGKILL');
    await exit;
  };
  t.after(stop);
  // Also when the test process ends some other way.
  const killOnExit = () => {
    if (!exited) proc.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  t.after(() => process.removeListener('exit', killOnExit));

  const siteURL = `http://127.0.0.1:${site}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exited) throw new Error('caddy exited at start:\n' + output);
    try {
      const r = await httpCall('GET', siteURL + '/');
      if (r.status === 401) break;
    } catch (e) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('caddy did not answer within 30s:\n' + output);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { siteURL, emulatorURL: `http://127.0.0.1:${emu}`, stop, output: () => output };
}

test('the client against a real Caddy: login, call, expiry, refresh, reuse, re-login, logout', { timeout: 600000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wechat-auth-client-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = caddyBinary(dir);
  if (bin === null) {
    if (process.env.WECHAT_AUTH_REQUIRE_EXTERNAL) {
      assert.fail('go is not installed (required: WECHAT_AUTH_REQUIRE_EXTERNAL is set): install Go or set WECHAT_AUTH_CADDY_BIN');
    }
    t.skip('skipped: go is not installed: install Go or set WECHAT_AUTH_CADDY_BIN to a caddy built from ./cmd/caddy');
    return;
  }
  const caddy = await startCaddy(t, dir, bin);
  try {
    await scenario(caddy);
    await lostRefreshScenario(caddy);
  } catch (err) {
    err.message += '\n--- caddy output ---\n' + caddy.output();
    throw err;
  }
});

/** The scenario, against a running Caddy. */
async function scenario({ siteURL, emulatorURL }) {

  // The client's clock runs a minute behind, so it never refreshes ahead:
  // every refresh below is the answer to a 401 from the real server.
  const wx = httpWx(emulatorURL, 'node-e2e-openid');
  const client = createClient({ baseURL: siteURL, wx, refreshAhead: 0, now: () => Date.now() - 60000 });
  const events = [];
  client.onAuthChange((s) => events.push(s.event));
  const stored = () => ({
    token: wx.getStorageSync('wechat_auth_token'),
    refresh: wx.getStorageSync('wechat_auth_refresh_token'),
  });

  // Login.
  const login = await client.login({ nickname: 'Node' });
  assert.equal(login.status, 'success');
  assert.equal(login.new_user, true);
  assert.equal(login.user.nickname, 'Node');
  assert.equal(login.token, undefined);
  const userId = String(login.user_id);
  const rt0 = stored().refresh;
  assert.ok(stored().token && rt0);

  // A protected call: the upstream sees the identity.
  const hello = await client.request({ url: '/hello' });
  assert.equal(hello.statusCode, 200);
  assert.equal(hello.data.user_id, userId);
  assert.equal(hello.data.openid, 'node-e2e-openid');
  const sid1 = hello.data.sid;
  assert.ok(sid1);

  const prof = await client.updateProfile({ gender: 2 });
  assert.equal(prof.user.gender, 2);
  assert.equal((await client.profile()).user.nickname, 'Node');
  await assert.rejects(client.updateProfile({ gender: 7 }), { status: 400, error: 'invalid_request' });

  // On a slow machine the steps above may already have outlived the 2 s
  // token (and refreshed it); count the events from here on.
  assert.equal(events[0], 'login');
  events.length = 0;

  // Forced expiry: wait (bounded) until the server refuses the access
  // token, which the client still believes fresh.
  const expired = stored().token;
  const deadline = Date.now() + (ACCESS_TTL_S + 3) * 1000;
  for (;;) {
    const r = await httpCall('GET', siteURL + '/probe', { headers: { Authorization: 'Bearer ' + expired } });
    if (r.status === 401) break;
    assert.ok(Date.now() < deadline, 'the access token did not expire within its TTL');
    await new Promise((r) => setTimeout(r, 200));
  }
  wx.log.length = 0;
  const afterExpiry = await client.request({ url: '/hello' });
  assert.equal(afterExpiry.statusCode, 200);
  assert.equal(afterExpiry.data.sid, sid1, 'a refresh keeps the session');
  // The server refuses the token (whole-second exp) up to a second before
  // the client's own clock says it expires; the bounded wait above can
  // overrun that second on a busy machine, and then the client refreshes
  // ahead instead of after a 401. Either way: one refresh, one success.
  const viaRefusal = ['GET /hello', 'POST /wx/refresh', 'GET /hello'];
  const ahead = ['POST /wx/refresh', 'GET /hello'];
  assert.ok(
    JSON.stringify(wx.log) === JSON.stringify(viaRefusal) || JSON.stringify(wx.log) === JSON.stringify(ahead),
    'calls after the expiry: ' + JSON.stringify(wx.log),
  );
  assert.notEqual(stored().token, expired);
  assert.notEqual(stored().refresh, rt0);
  assert.deepEqual(events, ['refresh']);

  // Rotate once more, then present the login's refresh token again: its
  // child has been rotated too, so this is a replay (theft), whatever the
  // retry window, and the server ends the session.
  await client.refresh();
  const rt2 = stored().refresh;
  const replay = await httpCall('POST', siteURL + '/wx/refresh', {
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh_token: rt0 }),
  });
  assert.equal(replay.status, 401);
  assert.equal(replay.body.error, 'invalid_grant');

  // The client finds out at its next call: 401, its refresh is refused,
  // one silent wx.login, one replay.
  wx.log.length = 0;
  wx.logins = 0;
  const relogged = await client.request({ url: '/hello' });
  assert.equal(relogged.statusCode, 200);
  assert.equal(relogged.data.user_id, userId, 'the same WeChat user gets the same user id');
  assert.notEqual(relogged.data.sid, sid1, 're-login makes a new session');
  assert.equal(wx.logins, 1);
  assert.deepEqual(wx.log, ['GET /hello', 'POST /wx/refresh', 'POST /wx/login', 'GET /hello']);
  assert.notEqual(stored().refresh, rt2);

  // A second phone of the same user, then logout everywhere from the first.
  const wx2 = httpWx(emulatorURL, 'node-e2e-openid');
  const phone2 = createClient({ baseURL: siteURL, wx: wx2, refreshAhead: 0, now: () => Date.now() - 60000 });
  await phone2.login();
  const phone2Refresh = wx2.getStorageSync('wechat_auth_refresh_token');
  const before = stored();
  await client.logout({ all: true });
  assert.equal(wx.storage.size, 0, 'logout clears the storage');
  for (const rt of [before.refresh, phone2Refresh]) {
    const r = await httpCall('POST', siteURL + '/wx/refresh', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: rt }),
    });
    assert.equal(r.status, 401);
    assert.equal(r.body.error, 'invalid_grant');
  }
  const guard = await httpCall('GET', siteURL + '/hello', { headers: { Authorization: 'Bearer ' + before.token } });
  assert.equal(guard.status, 401);

  // Logging out of a session that has ended already is fine.
  await phone2.logout();
  assert.equal(wx2.storage.size, 0);

  assert.deepEqual(events, ['refresh', 'refresh', 'logout', 'relogin', 'logout']);
}

/**
 * A refresh whose answer is lost after the server rotated the refresh
 * token, then logout({all: true}) with the access token expired by the
 * phone's clock: the client can only send the refresh token the server just
 * spent, which the server accepts within its retry window (refresh_grace,
 * 10s by default). Every session of the user ends, and the client says so.
 */
async function lostRefreshScenario({ siteURL, emulatorURL }) {
  const openid = 'node-e2e-lost-refresh';
  const wx = httpWx(emulatorURL, openid);
  let skew = 0;
  const client = createClient({ baseURL: siteURL, wx, refreshAhead: 0, now: () => Date.now() + skew });
  await client.login();
  const otherWx = httpWx(emulatorURL, openid);
  const other = createClient({ baseURL: siteURL, wx: otherWx });
  await other.login();
  const spent = wx.getStorageSync('wechat_auth_refresh_token');

  wx.loseAnswer = (p) => p === '/wx/refresh';
  await assert.rejects(client.refresh(), { error: 'network_error' });
  wx.loseAnswer = null;
  assert.equal(wx.getStorageSync('wechat_auth_refresh_token'), spent, 'the client still holds the spent token');

  skew = 60000; // the access token has expired by the phone's clock
  wx.log.length = 0;
  assert.deepEqual(await client.logout({ all: true }), { status: 'success' });
  assert.deepEqual(wx.log, ['POST /wx/logout']);
  assert.equal(wx.storage.size, 0);
  const r = await httpCall('POST', siteURL + '/wx/refresh', {
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh_token: otherWx.getStorageSync('wechat_auth_refresh_token') }),
  });
  assert.equal(r.status, 401, 'the other device\'s session ended');
  assert.equal(r.body.error, 'invalid_grant');
}
