/*
 * wechat-auth.js: the mini-program side of caddy-wechat-auth.
 *
 * Copy this one file into a mini-program (no build step, no dependencies) and
 * create one client for the app:
 *
 *   var createClient = require('./wechat-auth').createClient;
 *   var auth = createClient({ baseURL: 'https://api.example.com' });
 *   auth.request({ url: '/orders' }).then(function (res) { ... });
 *
 * The client logs in with the platform's login call (wx.login, qq.login,
 * tt.login, my.getAuthCode or swan.login), keeps the tokens in the mini-program's
 * storage, sends the access token on every request to baseURL, refreshes it
 * before it expires, and recovers from a rejected token with one refresh
 * (shared by every request that was rejected with the same token) or, when
 * the session has ended, one silent re-login, then replays the request once.
 * It never retries more than that and never logs a token.
 *
 * Written in ES5 with Promise, so it runs on every mini-program base library
 * without "enhanced compile"; uni-app and Taro work by passing their
 * wx-like object as the `wx` option and the platform as `platform`.
 */
'use strict';

/** Endpoint paths of the wechat_auth Caddy module, as in its defaults. */
var DEFAULT_PATHS = {
  login: '/wx/login',
  refresh: '/wx/refresh',
  logout: '/wx/logout',
  profile: '/wx/profile',
  phone: '/wx/phone',
  decrypt: '/wx/decrypt',
  webTicket: '/wx/web/ticket',
  avatar: '/wx/avatar'
};

/** Default storage key prefix. */
var DEFAULT_STORAGE_PREFIX = 'wechat_auth_';

/** Default seconds before expiry at which the access token is refreshed. */
var DEFAULT_REFRESH_AHEAD = 60;

/** Suffixes of the storage keys, after storagePrefix. */
var KEYS = {
  token: 'token',
  refreshToken: 'refresh_token',
  expiresAt: 'expires_at',
  refreshAt: 'refresh_at',
  userId: 'user_id'
};

/**
 * Creates an error with the {status, error, message} shape every rejection
 * of the client has. status is the HTTP status, or 0 when no HTTP answer was
 * received.
 */
function authError(status, code, message) {
  var err = new Error(message);
  err.name = 'WechatAuthError';
  err.status = status;
  err.error = code;
  return err;
}

/** The platforms, and the call each one logs in with. */
var LOGIN_CALLS = {
  wechat: 'wx.login',
  qq: 'qq.login',
  douyin: 'tt.login',
  alipay: 'my.getAuthCode',
  baidu: 'swan.login'
};

/**
 * The global host objects of the mini-program platforms, in the order the
 * client looks for them: tt, my, swan and qq come before wx because some
 * hosts also provide a wx alias.
 */
function globalHosts() {
  /* global tt, my, swan, qq, wx */
  return [
    ['douyin', typeof tt !== 'undefined' ? tt : undefined],
    ['alipay', typeof my !== 'undefined' ? my : undefined],
    ['baidu', typeof swan !== 'undefined' ? swan : undefined],
    ['qq', typeof qq !== 'undefined' ? qq : undefined],
    ['wechat', typeof wx !== 'undefined' ? wx : undefined]
  ];
}

/**
 * Picks the host object and the platform: both as given; a given host
 * object whose platform is found by which global it is (else wechat, as
 * for uni-app and Taro, whose calls are wx-shaped); a given platform's
 * global; or the first global found.
 */
function resolveHost(host, platform) {
  if (platform !== undefined && !Object.prototype.hasOwnProperty.call(LOGIN_CALLS, platform)) {
    throw new TypeError('wechat-auth: unknown platform "' + platform + '"; known: ' + Object.keys(LOGIN_CALLS).join(', '));
  }
  var globals = globalHosts();
  for (var i = 0; i < globals.length; i++) {
    var g = globals[i];
    if (!g[1]) continue;
    if (host ? host === g[1] && platform === undefined : platform === undefined || platform === g[0]) {
      return { api: host || g[1], platform: platform || g[0] };
    }
  }
  return { api: host, platform: platform || 'wechat' };
}

/**
 * Alipay's my object in the wx shape the client speaks: login through
 * my.getAuthCode({scopes: 'auth_base'}) (a silent login), requests with
 * headers/status, storage with {key, data}. Every other function is my's.
 */
function alipayHost(my) {
  var a = Object.create(my);
  a.login = function (o) {
    return my.getAuthCode({
      scopes: 'auth_base',
      success: function (res) { o.success({ code: res && res.authCode }); },
      fail: o.fail
    });
  };
  a.request = function (o) {
    var opts = without(o, ['header', 'success', 'fail']);
    opts.headers = o.header;
    opts.success = function (res) {
      o.success({ statusCode: res.status !== undefined ? res.status : res.statusCode, data: res.data, header: res.headers || res.header || {} });
    };
    opts.fail = o.fail;
    return my.request(opts);
  };
  a.getStorageSync = function (k) {
    var r = my.getStorageSync({ key: k });
    return r && r.data !== undefined && r.data !== null ? r.data : '';
  };
  a.setStorageSync = function (k, v) { my.setStorageSync({ key: k, data: v }); };
  a.removeStorageSync = function (k) { my.removeStorageSync({ key: k }); };
  return a;
}

/** Reports whether s is an absolute http(s) URL. */
function isAbsolute(s) {
  return /^https?:\/\//i.test(s);
}

/** The scheme://host[:port] part of an absolute URL, lower-cased. */
function originOf(url) {
  var m = /^(https?:\/\/[^\/?#]*)/i.exec(url);
  return m ? m[1].toLowerCase() : '';
}

/**
 * Reports whether s is a path on the site: it starts with one "/" (not
 * "//" or "/\", which browsers read as another host) and holds no control
 * characters.
 */
function isSitePath(s) {
  return typeof s === 'string' && s.charAt(0) === '/' && s.charAt(1) !== '/' && s.charAt(1) !== '\\' &&
    !/[\u0000-\u001f\u007f]/.test(s);
}

/** The value of header name in a header object, matched case-insensitively. */
function headerValue(headers, name) {
  if (!headers) return undefined;
  var want = name.toLowerCase();
  for (var k in headers) {
    if (Object.prototype.hasOwnProperty.call(headers, k) && k.toLowerCase() === want) {
      return headers[k];
    }
  }
  return undefined;
}

/** A shallow copy of obj without the named keys (case-insensitively). */
function without(obj, names) {
  var out = {};
  var drop = {};
  for (var i = 0; i < names.length; i++) drop[names[i].toLowerCase()] = true;
  for (var k in obj) {
    if (Object.prototype.hasOwnProperty.call(obj, k) && !drop[k.toLowerCase()]) out[k] = obj[k];
  }
  return out;
}

/** Parses a body that should be JSON; wx.request already parses JSON bodies. */
function jsonBody(data) {
  if (typeof data === 'string') {
    try {
      return JSON.parse(data);
    } catch (e) {
      return undefined;
    }
  }
  return data;
}

/**
 * The {status, error, message} error for an HTTP answer that is not a
 * success, taken from the wechat_auth error body when there is one.
 */
function answerError(res) {
  var body = jsonBody(res.data);
  if (body && typeof body.error === 'string') {
    return authError(res.statusCode, body.error, typeof body.message === 'string' ? body.message : body.error);
  }
  return authError(res.statusCode, 'unexpected_response', 'the server answered HTTP ' + res.statusCode);
}

/**
 * Reports whether a 401 answer is the wechat_auth guard refusing the access
 * token (as opposed to an upstream's own 401): its JSON error is
 * invalid_token, or its WWW-Authenticate challenge is a Bearer one.
 */
function isTokenRejection(res) {
  if (res.statusCode !== 401) return false;
  var body = jsonBody(res.data);
  if (body && body.error === 'invalid_token') return true;
  var challenge = headerValue(res.header, 'WWW-Authenticate');
  return typeof challenge === 'string' && /^\s*bearer\b/i.test(challenge);
}

/** Calls then(onSettled) whether p is fulfilled or rejected; never rejects. */
function settle(p) {
  return p.then(function () {}, function () {});
}

/**
 * Creates a client for one site protected by wechat_auth. Create it once
 * (for example in a module that the pages require) and share it: the sharing
 * of one refresh and one login between concurrent calls works within one
 * client.
 *
 * @param {object} options
 * @param {string} options.baseURL Absolute URL of the site, such as
 *   "https://api.example.com". Relative request URLs are resolved against
 *   it, and the access token is only ever sent to its origin. Required.
 * @param {object} [options.wx] The host object providing login, request,
 *   getStorageSync, setStorageSync and removeStorageSync: wx, qq, tt, swan,
 *   Alipay's my (adapted: it logs in with my.getAuthCode), uni-app's `uni`,
 *   Taro's `Taro`, or a test double. Default: the global of the platform:
 *   tt, my, swan, qq or wx, the first one found.
 * @param {string} [options.platform] The platform whose login the server
 *   block serves: "wechat", "qq", "douyin", "alipay" or "baidu". Pass it
 *   with uni-app or Taro (from their compile-time platform). Default: the
 *   platform of the host object.
 * @param {string} [options.storagePrefix] Prefix of the storage keys:
 *   `<prefix>token`, `<prefix>refresh_token`, `<prefix>expires_at` and
 *   `<prefix>refresh_at` (milliseconds since the epoch, by the phone's
 *   clock: when the access token expires, and when request() refreshes it
 *   first) and `<prefix>user_id`. Default: "wechat_auth_".
 * @param {object} [options.paths] Endpoint paths, for a server configured
 *   with other login_path, refresh_path, logout_path, profile_path,
 *   phone_path, decrypt_path or avatar_path, or another web path: any of
 *   {login, refresh, logout, profile, phone, decrypt, webTicket, avatar}.
 *   Default: /wx/login, /wx/refresh, /wx/logout, /wx/profile, /wx/phone,
 *   /wx/decrypt, /wx/web/ticket (webTicket is the web block's path plus
 *   /ticket), /wx/avatar.
 * @param {number} [options.refreshAhead] Seconds before the access token
 *   expires (by its expires_in, counted from when it was requested) at which
 *   request() refreshes it before sending; at most half the token's
 *   lifetime, so a short-lived token is not refreshed on every request. 0
 *   refreshes only once it has expired. Default: 60.
 * @param {boolean} [options.autoLogin] Whether request() logs in silently
 *   with wx.login() (once, then replays the request once) when there is no
 *   session or the session has ended. With false it rejects instead, and
 *   only login() logs in. Default: true.
 * @param {function(): number} [options.now] The clock, in milliseconds since
 *   the epoch; for tests. Default: Date.now.
 * @returns {object} the client: login, request, refresh, logout, profile,
 *   updateProfile, uploadAvatar, bindPhone, decrypt, webViewURL,
 *   onAuthChange, isLoggedIn.
 */
function createClient(options) {
  if (!options || typeof options !== 'object') {
    throw new TypeError('wechat-auth: createClient needs an options object with baseURL');
  }
  var baseURL = options.baseURL;
  if (typeof baseURL !== 'string' || !isAbsolute(baseURL)) {
    throw new TypeError('wechat-auth: baseURL must be an absolute http(s) URL');
  }
  baseURL = baseURL.replace(/\/+$/, '');
  var origin = originOf(baseURL);

  var host = resolveHost(options.wx, options.platform);
  var api = host.api;
  var platform = host.platform;
  if (!api || typeof api !== 'object' && typeof api !== 'function') {
    throw new TypeError('wechat-auth: no wx object; pass options.wx (uni, Taro or wx)');
  }
  if (typeof api.login !== 'function' && typeof api.getAuthCode === 'function') {
    api = alipayHost(api);
  }
  var needed = ['login', 'request', 'getStorageSync', 'setStorageSync', 'removeStorageSync'];
  for (var i = 0; i < needed.length; i++) {
    if (typeof api[needed[i]] !== 'function') {
      throw new TypeError('wechat-auth: options.wx has no ' + needed[i] + '() function');
    }
  }

  var prefix = options.storagePrefix === undefined ? DEFAULT_STORAGE_PREFIX : options.storagePrefix;
  if (typeof prefix !== 'string') {
    throw new TypeError('wechat-auth: storagePrefix must be a string');
  }

  var paths = {};
  for (var name in DEFAULT_PATHS) paths[name] = DEFAULT_PATHS[name];
  if (options.paths !== undefined) {
    if (!options.paths || typeof options.paths !== 'object') {
      throw new TypeError('wechat-auth: paths must be an object');
    }
    for (var p in options.paths) {
      if (!Object.prototype.hasOwnProperty.call(options.paths, p)) continue;
      if (!Object.prototype.hasOwnProperty.call(DEFAULT_PATHS, p)) {
        throw new TypeError('wechat-auth: unknown path "' + p + '"; known: ' + Object.keys(DEFAULT_PATHS).join(', '));
      }
      var v = options.paths[p];
      if (typeof v !== 'string' || v.charAt(0) !== '/') {
        throw new TypeError('wechat-auth: paths.' + p + ' must be a string starting with "/"');
      }
      paths[p] = v;
    }
  }

  var refreshAhead = options.refreshAhead === undefined ? DEFAULT_REFRESH_AHEAD : options.refreshAhead;
  if (typeof refreshAhead !== 'number' || !(refreshAhead >= 0) || refreshAhead === Infinity) {
    throw new TypeError('wechat-auth: refreshAhead must be a number of seconds, 0 or more');
  }
  var autoLogin = options.autoLogin === undefined ? true : options.autoLogin;
  if (typeof autoLogin !== 'boolean') {
    throw new TypeError('wechat-auth: autoLogin must be true or false');
  }
  var now = options.now === undefined ? Date.now : options.now;
  if (typeof now !== 'function') {
    throw new TypeError('wechat-auth: now must be a function returning milliseconds');
  }

  // The one refresh and the one login in flight, if any. refreshFlight.key
  // is the access token the refresh replaces.
  var refreshFlight = null;
  var loginFlight = null;
  // epoch counts logins and logouts: a login or refresh that started before
  // the latest logout must not store its tokens after it, nor a refresh
  // overwrite the session of a login that finished first.
  var epoch = 0;
  var listeners = [];

  // ---- storage ---------------------------------------------------------

  function key(k) {
    return prefix + KEYS[k];
  }

  function readKey(k) {
    try {
      var v = api.getStorageSync(key(k));
      return v === '' || v === null || v === undefined ? undefined : v;
    } catch (e) {
      return undefined;
    }
  }

  function readTime(k) {
    var v = Number(readKey(k));
    return isFinite(v) && v > 0 ? v : 0;
  }

  /** The stored tokens: {token, refreshToken, expiresAt, refreshAt, userId}. */
  function readAuth() {
    var userId = readKey('userId');
    return {
      token: readKey('token'),
      refreshToken: readKey('refreshToken'),
      expiresAt: readTime('expiresAt'),
      refreshAt: readTime('refreshAt'),
      userId: userId === undefined ? undefined : Number(userId)
    };
  }

  /**
   * Stores a login or refresh answer; issuedAt is when it was requested.
   * The token is due for refresh refreshAhead seconds before it expires, or
   * halfway through its life when that is shorter, so a short-lived token
   * is not refreshed before every request.
   */
  function saveAuth(body, issuedAt, userId) {
    if (!body || typeof body.token !== 'string' || body.token === '' ||
        typeof body.refresh_token !== 'string' || body.refresh_token === '') {
      throw authError(502, 'unexpected_response', 'the server answered without the expected tokens');
    }
    var expiresIn = Number(body.expires_in);
    var life = isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : 0;
    var expiresAt = issuedAt + life;
    var refreshAt = issuedAt + Math.max(life - refreshAhead * 1000, life / 2);
    try {
      // The refresh token first: the server has already spent the old one,
      // so if the mini-program is killed between two writes, the stored
      // refresh token must be the new one (an old access token next to it
      // still works until a refresh replaces it).
      api.setStorageSync(key('refreshToken'), body.refresh_token);
      api.setStorageSync(key('token'), body.token);
      api.setStorageSync(key('expiresAt'), expiresAt);
      api.setStorageSync(key('refreshAt'), refreshAt);
      if (userId !== undefined) api.setStorageSync(key('userId'), userId);
    } catch (e) {
      clearAuth();
      throw authError(0, 'storage_error', 'could not store the session: ' + (e && e.errMsg || e && e.message || 'storage failed'));
    }
  }

  function clearAuth() {
    // The refresh token first: if the mini-program is killed between two
    // removals, what is left must not bring the session back.
    var order = ['refreshToken'];
    for (var k in KEYS) {
      if (k !== 'refreshToken') order.push(k);
    }
    for (var i = 0; i < order.length; i++) {
      try {
        api.removeStorageSync(key(order[i]));
      } catch (e) {
        // Best effort: a key that cannot be removed is overwritten next time.
      }
    }
  }

  // ---- events ----------------------------------------------------------

  /** The state handed to onAuthChange listeners; it never holds a token. */
  function state(event) {
    var a = readAuth();
    var loggedIn = !!(a.token && a.refreshToken);
    return {
      event: event,
      loggedIn: loggedIn,
      userId: loggedIn ? a.userId : undefined,
      expiresAt: loggedIn ? a.expiresAt : undefined
    };
  }

  function emit(event) {
    var s = state(event);
    var ls = listeners.slice();
    for (var i = 0; i < ls.length; i++) {
      try {
        ls[i](s);
      } catch (e) {
        // A listener's bug must not break authentication; surface it
        // asynchronously so it still reaches the console.
        setTimeout(function (err) {
          return function () { throw err; };
        }(e), 0);
      }
    }
  }

  // ---- transport -------------------------------------------------------

  function resolveURL(url) {
    if (typeof url !== 'string' || url === '') {
      throw authError(0, 'invalid_request', 'request needs a url');
    }
    if (isAbsolute(url)) return url;
    return baseURL + (url.charAt(0) === '/' ? url : '/' + url);
  }

  /**
   * One wx.request, as a promise of its success object. It rejects with a
   * network_error when wx.request fails (no HTTP answer).
   */
  function send(opts) {
    return new Promise(function (resolve, reject) {
      var o = {};
      for (var k in opts) {
        if (Object.prototype.hasOwnProperty.call(opts, k) && k !== 'success' && k !== 'fail' && k !== 'complete') {
          o[k] = opts[k];
        }
      }
      o.success = function (res) {
        resolve(res);
      };
      o.fail = function (res) {
        reject(authError(0, 'network_error', 'request failed: ' + (res && res.errMsg || 'network error')));
      };
      try {
        api.request(o);
      } catch (e) {
        reject(authError(0, 'network_error', 'request failed: ' + (e && e.message || 'network error')));
      }
    });
  }

  /** POSTs (or another method) JSON to an endpoint, without a token. */
  function callEndpoint(path, method, data, token) {
    var header = { 'Content-Type': 'application/json' };
    if (token) header.Authorization = 'Bearer ' + token;
    return send({ url: baseURL + path, method: method, data: data, header: header });
  }

  /** Resolves with the JSON body of a success answer, rejects otherwise. */
  function expectSuccess(res) {
    if (res.statusCode >= 200 && res.statusCode < 300) {
      var body = jsonBody(res.data);
      if (body && typeof body === 'object') return body;
      throw authError(res.statusCode, 'unexpected_response', 'the server answered without a JSON body');
    }
    throw answerError(res);
  }

  /**
   * The {token, refreshToken, expiresAt} of a login or refresh answer
   * requested at issuedAt, or null when it carries no tokens.
   */
  function credentials(body, issuedAt) {
    if (!body || typeof body.token !== 'string' || body.token === '' ||
        typeof body.refresh_token !== 'string' || body.refresh_token === '') {
      return null;
    }
    var expiresIn = Number(body.expires_in);
    var life = isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : 0;
    return { token: body.token, refreshToken: body.refresh_token, expiresAt: issuedAt + life };
  }

  /** A copy of a login or refresh answer without its tokens. */
  function publicAnswer(body) {
    return without(body, ['token', 'refresh_token']);
  }

  // ---- login -----------------------------------------------------------

  /**
   * The platform's login call (wx.login, qq.login, tt.login, swan.login,
   * my.getAuthCode): resolves with the code and, on Douyin, the
   * anonymousCode.
   */
  function wxLogin() {
    return new Promise(function (resolve, reject) {
      var settled = false;
      function fail(res) {
        if (settled) return;
        settled = true;
        var why = res && res.errMsg || res && res.errorMessage || 'no code';
        if (platform === 'douyin' && res && res.anonymousCode && !res.code) {
          why = 'no code: the user is not logged in to the Douyin app';
        }
        reject(authError(0, 'wx_login_failed', LOGIN_CALLS[platform] + ' failed: ' + why));
      }
      try {
        api.login({
          success: function (res) {
            if (settled) return;
            if (!res || typeof res.code !== 'string' || res.code === '') {
              fail(res);
              return;
            }
            settled = true;
            resolve({ code: res.code, anonymousCode: typeof res.anonymousCode === 'string' ? res.anonymousCode : '' });
          },
          fail: fail
        });
      } catch (e) {
        fail({ errMsg: e && e.message });
      }
    });
  }

  /**
   * Logs in (wx.login, then the login endpoint), sharing one flight between
   * concurrent callers. event names the onAuthChange event on success.
   */
  function loginShared(event, fields) {
    if (loginFlight) return loginFlight;
    var startEpoch = epoch;
    var flight = wxLogin().then(function (got) {
      var data = {};
      if (fields) {
        var allowed = ['nickname', 'avatar_url', 'gender'];
        for (var i = 0; i < allowed.length; i++) {
          if (fields[allowed[i]] !== undefined) data[allowed[i]] = fields[allowed[i]];
        }
      }
      data.code = got.code;
      if (got.anonymousCode) data.anonymous_code = got.anonymousCode;
      var issuedAt = now();
      return callEndpoint(paths.login, 'POST', data).then(expectSuccess).then(function (body) {
        if (epoch !== startEpoch) {
          throw authError(0, 'logged_out', 'logged out while logging in');
        }
        saveAuth(body, issuedAt, body.user_id);
        epoch++;
        emit(event);
        return publicAnswer(body);
      });
    });
    loginFlight = flight;
    flight.then(function () {
      if (loginFlight === flight) loginFlight = null;
    }, function () {
      if (loginFlight === flight) loginFlight = null;
    });
    return flight;
  }

  // ---- refresh ---------------------------------------------------------

  /**
   * Refreshes the session whose access token rejected was refused (or is
   * about to expire). Concurrent callers with the same token share one
   * refresh. When the stored token is no longer rejected, another refresh
   * or login already replaced it and nothing is sent. It rejects with
   * invalid_grant when the session cannot be refreshed.
   */
  function refreshShared(rejected) {
    if (refreshFlight && refreshFlight.key === rejected) return refreshFlight.promise;
    var a = readAuth();
    if (a.token !== rejected && a.token) return Promise.resolve(null);
    if (!a.refreshToken) {
      return Promise.reject(authError(401, 'invalid_grant', 'no session to refresh; log in'));
    }
    var startEpoch = epoch;
    var issuedAt = now();
    var answered = callEndpoint(paths.refresh, 'POST', { refresh_token: a.refreshToken }).then(expectSuccess);
    var promise = answered
      .then(function (body) {
        if (epoch !== startEpoch) {
          // A logout or a login happened meanwhile: keep what it left.
          if (readAuth().refreshToken) return null;
          throw authError(401, 'invalid_grant', 'logged out while refreshing');
        }
        saveAuth(body, issuedAt, body.user_id === undefined ? a.userId : body.user_id);
        emit('refresh');
        return publicAnswer(body);
      }, function (err) {
        if (err && err.error === 'invalid_grant' && epoch === startEpoch) {
          // The refresh token is dead: forget the session, but only if no
          // login stored another one meanwhile.
          if (readAuth().refreshToken === a.refreshToken) {
            clearAuth();
            emit('logout');
          }
        }
        throw err;
      });
    // spent and fresh are for a logout that starts while this refresh is
    // in flight: the server may already have spent a.refreshToken, so the
    // logout waits for fresh, the new tokens (or null when the refresh
    // failed), even when this refresh no longer stores them.
    var flight = {
      key: rejected,
      promise: promise,
      spent: a.refreshToken,
      fresh: answered.then(function (body) {
        return credentials(body, issuedAt);
      }, function () {
        return null;
      })
    };
    refreshFlight = flight;
    promise.then(function () {
      if (refreshFlight === flight) refreshFlight = null;
    }, function () {
      if (refreshFlight === flight) refreshFlight = null;
    });
    return promise;
  }

  /** Waits until no login or refresh is in flight. */
  function idle() {
    var waits = [];
    if (loginFlight) waits.push(settle(loginFlight));
    if (refreshFlight) waits.push(settle(refreshFlight.promise));
    if (waits.length === 0) return Promise.resolve();
    return Promise.all(waits).then(idle);
  }

  /**
   * Makes sure a request about to be sent has a usable session: refreshes a
   * token that expires within refreshAhead, and logs in when there is no
   * session (with autoLogin). budget records what this request already did.
   */
  function prepare(budget) {
    return idle().then(function () {
      var a = readAuth();
      if (!a.token || !a.refreshToken) {
        if (!autoLogin || budget.login) return null;
        budget.login = true;
        return loginShared('relogin');
      }
      if (budget.ahead) return null;
      var due = a.refreshAt || (a.expiresAt ? a.expiresAt - refreshAhead * 1000 : 0);
      if (due && now() < due) return null;
      budget.ahead = true;
      return refreshShared(a.token).then(null, function (err) {
        if (err && err.error === 'invalid_grant') return relogin(budget, err);
        // Anything else (network, 5xx): send with the current token and
        // let the server decide.
        return null;
      });
    });
  }

  /** The one silent re-login of a request after invalid_grant. */
  function relogin(budget, grantErr) {
    if (!autoLogin || budget.login) throw grantErr;
    budget.login = true;
    return loginShared('relogin');
  }

  /**
   * Recovers from a 401 invalid_token answer to a request sent with token:
   * refresh (shared), or when the session is gone, one silent re-login.
   */
  function recover(token, budget) {
    return idle().then(function () {
      var a = readAuth();
      if (a.token && a.token !== token) return null; // replaced meanwhile: replay
      if (!a.refreshToken) {
        return relogin(budget, authError(401, 'invalid_token', 'not logged in'));
      }
      return refreshShared(a.token).then(null, function (err) {
        if (err && err.error === 'invalid_grant') return relogin(budget, err);
        throw err;
      });
    });
  }

  // ---- the public API ----------------------------------------------------

  /**
   * Sends a request with the access token, wx.request style (url relative
   * to baseURL or absolute, method, data, header, timeout, dataType,
   * responseType). Resolves with wx.request's success object ({statusCode,
   * data, header}) for every answer except a recovered 401; rejects with
   * {status, error, message} only when the network fails or authentication
   * cannot be recovered. An absolute URL on another origin than baseURL is
   * sent as is, without the token.
   */
  function request(opts) {
    if (!opts || typeof opts !== 'object') {
      return Promise.reject(authError(0, 'invalid_request', 'request needs an options object with a url'));
    }
    var url;
    try {
      url = resolveURL(opts.url);
    } catch (e) {
      return Promise.reject(e);
    }
    var base = without(opts, ['url', 'success', 'fail', 'complete']);
    if (originOf(url) !== origin) {
      base.url = url;
      return send(base);
    }
    var budget = { ahead: false, login: false };

    function attempt(replay) {
      var sentWith;
      return prepare(budget).then(function () {
        var a = readAuth();
        sentWith = a.token;
        var o = without(base, []);
        o.url = url;
        o.header = without(opts.header || {}, ['Authorization']);
        if (sentWith) o.header.Authorization = 'Bearer ' + sentWith;
        return send(o);
      }).then(function (res) {
        if (!isTokenRejection(res)) return res;
        if (replay) throw answerError(res);
        return recover(sentWith, budget).then(function () {
          return attempt(true);
        });
      });
    }
    return attempt(false);
  }

  /**
   * Logs in with wx.login() and the login endpoint. Concurrent calls share
   * one wx.login. fields ({nickname, avatar_url, gender}) are stored only
   * when the user is created, and only the first of concurrent calls' are
   * sent. Resolves with the login answer without its tokens: {status,
   * token_type, expires_in, refresh_expires_in, user_id, new_user, user}.
   */
  function login(fields) {
    if (fields !== undefined && (fields === null || typeof fields !== 'object')) {
      return Promise.reject(authError(0, 'invalid_request', 'login fields must be an object'));
    }
    return loginShared('login', fields);
  }

  /**
   * Refreshes the session now (shared with any refresh in flight for the
   * same token). Resolves with the refresh answer without its tokens;
   * rejects with invalid_grant when the session has ended, after which the
   * stored session is forgotten.
   */
  function refresh() {
    return idle().then(function () {
      var a = readAuth();
      if (!a.refreshToken) {
        throw authError(401, 'invalid_grant', 'no session to refresh; log in');
      }
      return refreshShared(a.token).then(function (answer) {
        return answer || state('refresh');
      });
    });
  }

  /**
   * Ends the session on the server ({all: true}: every session of the user)
   * and forgets it on the phone. The stored tokens are cleared at once, even
   * when the server cannot be reached; the promise then rejects with
   * network_error, since the session may still be live on the server. A
   * refresh in flight is waited for first, so the logout is sent with the
   * session's newest tokens. A plain logout the server answers with
   * invalid_grant (it no longer knows the session) resolves: the session is
   * over. With all: true it rejects with invalid_grant instead, since the
   * user's other sessions were not ended.
   */
  function logout(opts) {
    if (opts !== undefined && (opts === null || typeof opts !== 'object')) {
      return Promise.reject(authError(0, 'invalid_request', 'logout options must be an object'));
    }
    var all = !!(opts && opts.all);
    var a = readAuth();
    // Only a refresh of the stored session counts; one of an older session
    // that a login replaced meanwhile does not.
    var flight = refreshFlight && a.refreshToken && refreshFlight.spent === a.refreshToken ? refreshFlight : null;
    epoch++;
    clearAuth();
    emit('logout');
    if (!a.token && !a.refreshToken) {
      return Promise.resolve({ status: 'success' });
    }
    return (flight ? flight.fresh : Promise.resolve(null)).then(function (fresh) {
      return sendLogout(fresh || a, all);
    });
  }

  /**
   * Sends the logout with cred ({token, refreshToken, expiresAt}): the
   * access token while it has not expired by the phone's clock, else (or
   * when the server refuses it) the refresh token.
   */
  function sendLogout(cred, all) {
    var data = all ? { all: true } : {};
    var useToken = cred.token && cred.expiresAt > now();
    var first;
    if (useToken) {
      first = callEndpoint(paths.logout, 'POST', data, cred.token);
    } else {
      data.refresh_token = cred.refreshToken;
      first = callEndpoint(paths.logout, 'POST', data);
    }
    return first.then(function (res) {
      // An access token the server already refuses (expired by its clock):
      // log out with the refresh token instead, once.
      if (useToken && isTokenRejection(res) && cred.refreshToken) {
        var d = all ? { all: true } : {};
        d.refresh_token = cred.refreshToken;
        return callEndpoint(paths.logout, 'POST', d);
      }
      return res;
    }).then(function (res) {
      // A session the server no longer knows is as logged out as it gets,
      // but then the server ended no other session of the user.
      if (!all && res.statusCode === 401 && (jsonBody(res.data) || {}).error === 'invalid_grant') {
        return { status: 'success' };
      }
      return expectSuccess(res);
    });
  }

  /** Sends an authenticated call to an endpoint and expects success. */
  function endpoint(path, method, data) {
    return request({ url: path, method: method, data: data, header: { 'Content-Type': 'application/json' } })
      .then(expectSuccess);
  }

  /** Reads the user's profile: resolves with {status, user}. */
  function profile() {
    return endpoint(paths.profile, 'GET');
  }

  /**
   * Updates the profile with a partial {nickname, avatar_url, gender}
   * (sent as PUT, which wx.request supports, unlike PATCH). Resolves with
   * {status, user}.
   */
  function updateProfile(patch) {
    if (!patch || typeof patch !== 'object') {
      return Promise.reject(authError(0, 'invalid_request', 'updateProfile needs an object'));
    }
    return endpoint(paths.profile, 'PUT', patch);
  }

  /**
   * Uploads the avatar the user chose: the temporary file path that
   * <button open-type="chooseAvatar"> hands to its bindchooseavatar
   * handler (e.detail.avatarUrl). It is sent with wx.uploadFile (the file
   * in the part named "file") and the access token, with the same rules
   * as request(): a refresh ahead of expiry, and on 401 invalid_token one
   * shared refresh (or one silent re-login), then one replay. The server
   * checks, scales and re-encodes the image and stores it. Resolves with
   * {status, user}; user.avatar_url is the image's path on the site
   * (prefix it with baseURL to show it). Rejects with {status, error,
   * message}: invalid_request (not an image, or larger than 4096×4096
   * pixels), payload_too_large, busy (try again after a moment).
   */
  function uploadAvatar(tempFilePath) {
    if (typeof tempFilePath !== 'string' || tempFilePath === '') {
      return Promise.reject(authError(0, 'invalid_request', 'uploadAvatar needs the temporary file path from chooseAvatar'));
    }
    if (typeof api.uploadFile !== 'function') {
      return Promise.reject(authError(0, 'invalid_request', 'options.wx has no uploadFile() function'));
    }
    var url = baseURL + paths.avatar;
    var budget = { ahead: false, login: false };

    function upload(token) {
      return new Promise(function (resolve, reject) {
        var header = {};
        if (token) header.Authorization = 'Bearer ' + token;
        try {
          api.uploadFile({
            url: url,
            filePath: tempFilePath,
            name: 'file',
            header: header,
            success: resolve,
            fail: function (res) {
              reject(authError(0, 'network_error', 'upload failed: ' + (res && res.errMsg || 'network error')));
            }
          });
        } catch (e) {
          reject(authError(0, 'network_error', 'upload failed: ' + (e && e.message || 'network error')));
        }
      });
    }

    function attempt(replay) {
      var sentWith;
      return prepare(budget).then(function () {
        sentWith = readAuth().token;
        return upload(sentWith);
      }).then(function (res) {
        if (!isTokenRejection(res)) return res;
        if (replay) throw answerError(res);
        return recover(sentWith, budget).then(function () {
          return attempt(true);
        });
      });
    }
    return attempt(false).then(expectSuccess);
  }

  /**
   * Stores the user's phone number from the code of a getPhoneNumber
   * button's event (e.detail.code). Resolves with {status, phone}.
   */
  function bindPhone(code) {
    if (typeof code !== 'string' || code === '') {
      return Promise.reject(authError(0, 'invalid_request', 'bindPhone needs the code from the getPhoneNumber button'));
    }
    return endpoint(paths.phone, 'POST', { code: code });
  }

  /**
   * Decrypts open data ({encrypted_data, iv, raw_data?, signature?}; the
   * camelCase names the WeChat APIs give, encryptedData and rawData, are
   * accepted too) with the session's session_key on the server. Resolves
   * with {status, data}.
   */
  function decrypt(input) {
    if (!input || typeof input !== 'object') {
      return Promise.reject(authError(0, 'invalid_request', 'decrypt needs {encrypted_data, iv}'));
    }
    var encrypted = input.encrypted_data !== undefined ? input.encrypted_data : input.encryptedData;
    var raw = input.raw_data !== undefined ? input.raw_data : input.rawData;
    if (typeof encrypted !== 'string' || encrypted === '' || typeof input.iv !== 'string' || input.iv === '') {
      return Promise.reject(authError(0, 'invalid_request', 'decrypt needs encrypted_data and iv'));
    }
    var data = { encrypted_data: encrypted, iv: input.iv };
    if (raw !== undefined) data.raw_data = raw;
    if (input.signature !== undefined) data.signature = input.signature;
    return endpoint(paths.decrypt, 'POST', data);
  }

  /**
   * The URL to open in a <web-view> so that the site's pages there are
   * logged in as this user. It asks the site for a one-time ticket (POST
   * paths.webTicket with the access token, under the same refresh-and-replay
   * rules as request()) and resolves with the absolute URL of the ticket's
   * enter link (baseURL + the answer's url). That URL logs the web-view in
   * once, within 60 seconds, by setting the site's cookies, then goes on to
   * next: a path on the site such as "/orders?id=1" (default: the site's
   * "/"). Open it at once, and ask for a new one each time. Rejects with
   * invalid_request for a next that is not a path on the site, and with
   * {status: 404} when the site has no web block.
   */
  function webViewURL(next) {
    if (next !== undefined && !isSitePath(next)) {
      return Promise.reject(authError(0, 'invalid_request', 'webViewURL: next must be a path on the site, starting with one "/"'));
    }
    var data = next === undefined ? {} : { next: next };
    return endpoint(paths.webTicket, 'POST', data).then(function (body) {
      var url = body.url;
      if (isSitePath(url)) return baseURL + url;
      if (typeof url === 'string' && isAbsolute(url) && originOf(url) === origin) return url;
      throw authError(502, 'unexpected_response', 'the ticket answer has no url on the site');
    });
  }

  /**
   * Calls cb with the new auth state ({event, loggedIn, userId, expiresAt};
   * event is "login", "relogin", "refresh" or "logout") after each change.
   * Returns a function that unsubscribes cb.
   */
  function onAuthChange(cb) {
    if (typeof cb !== 'function') {
      throw new TypeError('wechat-auth: onAuthChange needs a function');
    }
    listeners.push(cb);
    return function unsubscribe() {
      var i = listeners.indexOf(cb);
      if (i >= 0) listeners.splice(i, 1);
    };
  }

  /** Reports whether a session is stored (it may still have ended). */
  function isLoggedIn() {
    var a = readAuth();
    return !!(a.token && a.refreshToken);
  }

  return {
    login: login,
    request: request,
    refresh: refresh,
    logout: logout,
    profile: profile,
    updateProfile: updateProfile,
    uploadAvatar: uploadAvatar,
    bindPhone: bindPhone,
    decrypt: decrypt,
    webViewURL: webViewURL,
    onAuthChange: onAuthChange,
    isLoggedIn: isLoggedIn
  };
}

module.exports = { createClient: createClient };
