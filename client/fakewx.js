'use strict';
// Test doubles for wechat-auth.test.js: a scripted stand-in for the
// wechat_auth endpoints and a protected site, and a wx object that talks to
// it in memory. Not part of the client a mini-program copies.

const BASE = 'https://api.example.test';

/**
 * A fake wechat_auth site. Access tokens are "at-N", refresh tokens "rt-N";
 * each refresh token is single-use. Behaviour is scripted through the
 * fields below; every call is recorded in calls.
 */
function fakeServer() {
  const s = {
    calls: [], // {path, method, header, data}
    accessTokens: new Map(), // token -> session id
    refreshTokens: new Map(), // refresh token -> session id (current ones)
    revoked: new Set(), // session ids
    seq: 0,
    sessions: 0,
    expiresIn: 900,
    userId: 42,
    // Scripted behaviour:
    rejectAll: false, // the protected site answers 401 invalid_token to everything
    refreshAnswer: null, // function(req) -> response, replacing the normal refresh
    loginAnswer: null, // function(req) -> response, replacing the normal login
    hold: null, // function(req) -> promise the answer waits for, or undefined
    holdAnswer: null, // like hold, but the server handles the request first (a refresh rotates), then the answer waits
    failPaths: new Set(), // paths whose requests fail at the network level
  };

  s.count = function (path) {
    return s.calls.filter((c) => c.path === path).length;
  };

  function issue(sid) {
    s.seq++;
    const token = 'at-' + s.seq;
    const refresh = 'rt-' + s.seq;
    s.accessTokens.set(token, sid);
    s.refreshTokens.set(refresh, sid);
    return { token, refresh };
  }

  function json(statusCode, data, header) {
    return { statusCode, data, header: Object.assign({ 'Content-Type': 'application/json' }, header || {}) };
  }

  function error(statusCode, code, message, header) {
    return json(statusCode, { status: 'error', error: code, message }, header);
  }

  function invalidToken() {
    return error(401, 'invalid_token', 'invalid access token', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
  }

  function bearer(req) {
    const h = req.header || {};
    for (const k of Object.keys(h)) {
      if (k.toLowerCase() === 'authorization') {
        const m = /^Bearer (.+)$/.exec(h[k]);
        return m ? m[1] : undefined;
      }
    }
    return undefined;
  }

  function validSession(req) {
    const t = bearer(req);
    if (!t || !s.accessTokens.has(t)) return undefined;
    const sid = s.accessTokens.get(t);
    return s.revoked.has(sid) ? undefined : sid;
  }

  function pair(sid, extra) {
    const p = issue(sid);
    return json(200, Object.assign({
      status: 'success', token: p.token, token_type: 'Bearer', expires_in: s.expiresIn,
      refresh_token: p.refresh, refresh_expires_in: 2592000, user_id: s.userId,
    }, extra || {}));
  }

  s.handle = function (req) {
    const path = req.url.slice(BASE.length).split('?')[0];
    switch (path) {
      case '/wx/login':
        if (s.loginAnswer) return s.loginAnswer(req);
        if (!req.data || !/^code-\d+$/.test(req.data.code)) return error(400, 'invalid_code', 'invalid code');
        s.sessions++;
        return pair('s' + s.sessions, { new_user: s.sessions === 1, user: { id: s.userId, nickname: '' } });
      case '/wx/refresh': {
        if (s.refreshAnswer) return s.refreshAnswer(req);
        const rt = req.data && req.data.refresh_token;
        const sid = s.refreshTokens.get(rt);
        if (!sid || s.revoked.has(sid)) return error(401, 'invalid_grant', 'invalid refresh token');
        s.refreshTokens.delete(rt);
        return pair(sid);
      }
      case '/wx/logout': {
        let sid = validSession(req);
        if (!sid && req.data && req.data.refresh_token) sid = s.refreshTokens.get(req.data.refresh_token);
        if (!sid) return bearer(req) ? invalidToken() : error(401, 'invalid_grant', 'invalid refresh token');
        if (req.data && req.data.all) {
          for (const v of s.accessTokens.values()) s.revoked.add(v);
        }
        s.revoked.add(sid);
        return json(200, { status: 'success' });
      }
      default: {
        if (s.rejectAll) return invalidToken();
        const sid = validSession(req);
        if (!sid) return invalidToken();
        if (path === '/wx/profile') {
          if (req.method === 'PUT') {
            if (req.data && req.data.gender === 9) return error(400, 'invalid_request', 'gender must be 0, 1 or 2');
            return json(200, { status: 'success', user: Object.assign({ id: s.userId }, req.data) });
          }
          return json(200, { status: 'success', user: { id: s.userId, nickname: 'n' } });
        }
        if (path === '/wx/phone') {
          return json(200, { status: 'success', phone: { phone_number: '+86 13800000000' } });
        }
        if (path === '/wx/decrypt') {
          return json(200, { status: 'success', data: { echo: req.data } });
        }
        if (path === '/teapot') return json(418, 'short and stout');
        if (path === '/upstream-401') return json(401, { detail: 'not yours' });
        return json(200, { ok: true, path, token: bearer(req), session: sid });
      }
    }
  };
  return s;
}

/**
 * A wx object over a fake server: login mints "code-N", request answers
 * asynchronously through server.handle, storage is a Map.
 */
function fakeWx(server) {
  const w = {
    storage: new Map(),
    logins: 0,
    loginFails: false,
    requests: [],
  };
  w.login = function (o) {
    w.logins++;
    const n = w.logins;
    setImmediate(() => {
      if (w.loginFails) o.fail({ errMsg: 'login:fail' });
      else o.success({ code: 'code-' + n, errMsg: 'login:ok' });
    });
  };
  w.request = function (o) {
    const req = {
      url: o.url,
      method: o.method || 'GET',
      header: Object.assign({}, o.header || {}),
      data: o.data,
    };
    w.requests.push(req);
    server.calls.push({ path: req.url.slice(BASE.length).split('?')[0], method: req.method, header: req.header, data: req.data });
    const path = req.url.slice(BASE.length).split('?')[0];
    setImmediate(() => {
      const held = server.hold ? server.hold(req) : undefined;
      Promise.resolve(held).then(() => {
        if (server.failPaths.has(path) || server.failPaths.has('*')) {
          o.fail({ errMsg: 'request:fail timeout' });
          return;
        }
        const res = server.handle(req);
        const answerHeld = server.holdAnswer ? server.holdAnswer(req) : undefined;
        Promise.resolve(answerHeld).then(() => {
          o.success({ statusCode: res.statusCode, data: res.data, header: res.header, errMsg: 'request:ok' });
        });
      });
    });
  };
  w.getStorageSync = function (k) {
    return w.storage.has(k) ? w.storage.get(k) : '';
  };
  w.setStorageSync = function (k, v) {
    w.storage.set(k, v);
  };
  w.removeStorageSync = function (k) {
    w.storage.delete(k);
  };
  return w;
}

/** A clock for the client's now option. */
function fakeClock(start) {
  const c = { t: start || 1700000000000 };
  c.now = () => c.t;
  c.advance = (ms) => {
    c.t += ms;
  };
  return c;
}

module.exports = { BASE, fakeServer, fakeWx, fakeClock };
