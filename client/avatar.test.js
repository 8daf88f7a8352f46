'use strict';
// Tests of uploadAvatar() against the fake server of fakewx.js, with a fake
// wx.uploadFile that answers as the real one does: the body as a string.
// Run: node --test client/

const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('./wechat-auth.js');
const { BASE, fakeServer, fakeWx, fakeClock } = require('./fakewx.js');

const T = { timeout: 5000 };
const AVATAR = '/wx/avatar/' + 'ab'.repeat(32) + '.jpg';

/**
 * Adds uploadFile to a fake wx: the upload endpoint accepts the access
 * tokens the fake server issued (unless server.rejectAll) and answers with
 * the user; server.uploadAnswer(req) replaces that answer when set.
 */
function withUpload(server, wx) {
  wx.uploads = [];
  wx.uploadFile = function (o) {
    const req = { url: o.url, filePath: o.filePath, name: o.name, header: Object.assign({}, o.header || {}) };
    wx.uploads.push(req);
    server.calls.push({ path: req.url.slice(BASE.length), method: 'POST', header: req.header, data: undefined });
    setImmediate(() => {
      if (server.failPaths.has('/wx/avatar')) {
        o.fail({ errMsg: 'uploadFile:fail timeout' });
        return;
      }
      let res;
      if (server.uploadAnswer) {
        res = server.uploadAnswer(req);
      } else {
        const m = /^Bearer (.+)$/.exec(req.header.Authorization || '');
        const sid = m && server.accessTokens.get(m[1]);
        if (server.rejectAll || !sid || server.revoked.has(sid)) {
          res = { statusCode: 401, data: { status: 'error', error: 'invalid_token', message: 'invalid access token' } };
        } else {
          res = { statusCode: 200, data: { status: 'success', user: { id: server.userId, avatar_url: AVATAR } } };
        }
      }
      // wx.uploadFile hands the body over unparsed.
      o.success({ statusCode: res.statusCode, data: JSON.stringify(res.data), errMsg: 'uploadFile:ok' });
    });
  };
  return wx;
}

function setup(opts) {
  const server = fakeServer();
  const wx = withUpload(server, fakeWx(server));
  const clock = fakeClock();
  const client = createClient(Object.assign({ baseURL: BASE, wx, now: clock.now }, opts || {}));
  return { server, wx, clock, client };
}

async function loggedIn(opts) {
  const env = setup(opts);
  await env.client.login();
  env.server.calls.length = 0;
  env.wx.logins = 0;
  return env;
}

test('uploadAvatar sends the file as part "file" with the access token and resolves with the user', T, async () => {
  const { client, wx } = await loggedIn();
  const res = await client.uploadAvatar('wxfile://tmp_avatar.jpg');
  assert.equal(res.status, 'success');
  assert.equal(res.user.avatar_url, AVATAR);
  assert.equal(wx.uploads.length, 1);
  assert.deepEqual(wx.uploads[0], {
    url: BASE + '/wx/avatar', filePath: 'wxfile://tmp_avatar.jpg', name: 'file', header: { Authorization: 'Bearer at-1' },
  });
});

test('uploadAvatar follows paths.avatar', T, async () => {
  const { client, wx } = await loggedIn({ paths: { avatar: '/me/avatar' } });
  await client.uploadAvatar('wxfile://a.png');
  assert.equal(wx.uploads[0].url, BASE + '/me/avatar');
});

test('uploadAvatar logs in first when there is no session', T, async () => {
  const { client, wx, server } = setup();
  await client.uploadAvatar('wxfile://a.png');
  assert.equal(wx.logins, 1);
  assert.equal(server.count('/wx/login'), 1);
  assert.equal(wx.uploads[0].header.Authorization, 'Bearer at-1');
});

test('uploadAvatar refreshes once on 401 invalid_token and replays the upload once', T, async () => {
  const { client, wx, server } = await loggedIn();
  server.accessTokens.delete('at-1'); // the server no longer takes it
  const res = await client.uploadAvatar('wxfile://a.png');
  assert.equal(res.user.avatar_url, AVATAR);
  assert.equal(server.count('/wx/refresh'), 1);
  assert.deepEqual(wx.uploads.map((u) => u.header.Authorization), ['Bearer at-1', 'Bearer at-2']);
});

test('uploadAvatar refreshes ahead of expiry before uploading', T, async () => {
  const { client, wx, server, clock } = await loggedIn();
  clock.advance(850 * 1000);
  await client.uploadAvatar('wxfile://a.png');
  assert.equal(server.count('/wx/refresh'), 1);
  assert.deepEqual(wx.uploads.map((u) => u.header.Authorization), ['Bearer at-2']);
});

test('concurrent uploads and requests rejected with one token share one refresh', T, async () => {
  const { client, server } = await loggedIn();
  server.accessTokens.delete('at-1');
  const [a, b, c] = await Promise.all([
    client.uploadAvatar('wxfile://a.png'),
    client.uploadAvatar('wxfile://b.png'),
    client.request({ url: '/orders' }),
  ]);
  assert.equal(a.status, 'success');
  assert.equal(b.status, 'success');
  assert.equal(c.statusCode, 200);
  assert.equal(server.count('/wx/refresh'), 1);
});

test('uploadAvatar re-logs in once when the session has ended, then gives up', T, async () => {
  const { client, wx, server } = await loggedIn();
  server.accessTokens.delete('at-1');
  server.refreshTokens.clear(); // refresh answers invalid_grant
  const res = await client.uploadAvatar('wxfile://a.png');
  assert.equal(res.status, 'success');
  assert.equal(wx.logins, 1);

  // A server that refuses every token: one refresh, then the rejection;
  // never a loop.
  server.rejectAll = true;
  const uploadsBefore = wx.uploads.length;
  await assert.rejects(client.uploadAvatar('wxfile://a.png'), (err) => err.status === 401 && err.error === 'invalid_token');
  assert.equal(wx.uploads.length - uploadsBefore, 2, 'one upload and one replay');
});

test('uploadAvatar rejects with the server error of a refused image', T, async () => {
  const { client, server } = await loggedIn();
  for (const [status, code] of [[400, 'invalid_request'], [413, 'payload_too_large'], [503, 'busy']]) {
    server.uploadAnswer = () => ({ statusCode: status, data: { status: 'error', error: code, message: 'no' } });
    await assert.rejects(client.uploadAvatar('wxfile://a.png'), (err) => err.status === status && err.error === code && err.message === 'no');
  }
  server.uploadAnswer = () => ({ statusCode: 502, data: '<html>bad gateway</html>' });
  await assert.rejects(client.uploadAvatar('wxfile://a.png'), (err) => err.status === 502 && err.error === 'unexpected_response');
});

test('uploadAvatar rejects a network failure and bad arguments without uploading', T, async () => {
  const { client, server, wx } = await loggedIn();
  server.failPaths.add('/wx/avatar');
  await assert.rejects(client.uploadAvatar('wxfile://a.png'), (err) => err.status === 0 && err.error === 'network_error');
  const n = wx.uploads.length;
  for (const bad of [undefined, '', 42, {}]) {
    await assert.rejects(client.uploadAvatar(bad), (err) => err.error === 'invalid_request');
  }
  assert.equal(wx.uploads.length, n);
  delete wx.uploadFile;
  await assert.rejects(client.uploadAvatar('wxfile://a.png'), (err) => err.error === 'invalid_request' && /uploadFile/.test(err.message));
});

test('uploadAvatar never puts a token in what it resolves or rejects with', T, async () => {
  const { client, server } = await loggedIn();
  const ok = await client.uploadAvatar('wxfile://a.png');
  assert.doesNotMatch(JSON.stringify(ok), /at-\d|rt-\d/);
  server.uploadAnswer = () => ({ statusCode: 400, data: { status: 'error', error: 'invalid_request', message: 'not an image' } });
  await assert.rejects(client.uploadAvatar('wxfile://a.png'), (err) => !/at-\d|rt-\d/.test(JSON.stringify(err) + err.message));
});
