// The playground page: drives wechat-auth.js (loaded before this file) with
// the wx stand-in of wx-shim.js, and shows what happens.
(function () {
  'use strict';

  var createClient = module.exports.createClient;
  var $ = function (id) { return document.getElementById(id); };

  // Where the wx stand-in keeps the client's storage, and the client's own
  // key prefix (its default).
  var NAMESPACE = 'wechat-auth-playground:';
  var PREFIX = 'wechat_auth_';
  var REFRESH_PATH = '/wx/refresh';
  var WEB_TICKET_PATH = '/wx/web/ticket';

  // Emulator URLs, relative to this page so a path prefix in front of the
  // emulator keeps working.
  var CODE_URL = new URL('code', location.href).href;
  var FAULT_URL = new URL('fault', location.href).href;

  var client = null;
  var spent = []; // refresh tokens rotated away in this browser: {token, at}
  var lastRefresh = '';
  var seq = 0;
  var answered = {}; // the HTTP status of the last answer, by URL (0: none)

  var wx = createPlaygroundWx({
    codeURL: CODE_URL,
    storageNamespace: NAMESPACE,
    openid: function () { return $('openid').value.trim(); },
    onExchange: logExchange,
  });

  function stored(key) {
    return wx.getStorageSync(PREFIX + key);
  }

  // ---- display helpers -------------------------------------------------

  /** A token or code shortened for display: its start and its length. */
  function shorten(s) {
    if (typeof s !== 'string' || s.length <= 12) return s;
    return s.slice(0, 8) + '…(' + s.length + ' chars)';
  }

  var SECRET_FIELDS = { token: 1, refresh_token: 1, code: 1, session_key: 1, encrypted_data: 1, signature: 1 };

  /** A copy of v with tokens, codes and Authorization values shortened. */
  function redact(v) {
    if (Array.isArray(v)) return v.map(redact);
    if (v && typeof v === 'object') {
      var out = {};
      Object.keys(v).forEach(function (k) {
        var lk = k.toLowerCase();
        if (lk === 'authorization' && typeof v[k] === 'string') {
          var parts = v[k].split(' ');
          out[k] = parts.length === 2 ? parts[0] + ' ' + shorten(parts[1]) : shorten(v[k]);
        } else if (SECRET_FIELDS[lk] && typeof v[k] === 'string') {
          out[k] = shorten(v[k]);
        } else {
          out[k] = redact(v[k]);
        }
      });
      return out;
    }
    return v;
  }

  function pretty(v) {
    if (v === undefined) return '';
    if (typeof v === 'string') return v;
    return JSON.stringify(v, null, 2);
  }

  function clock() {
    var d = new Date();
    return d.toTimeString().slice(0, 8);
  }

  function pathOf(url) {
    try {
      var u = new URL(url, location.href);
      return u.origin === location.origin ? u.pathname : u.origin + u.pathname;
    } catch (e) {
      return url;
    }
  }

  function addLog(cls, summary, details) {
    seq++;
    var li = document.createElement('li');
    li.className = 'entry ' + cls;
    li.value = seq;
    var d = document.createElement('details');
    var s = document.createElement('summary');
    s.textContent = clock() + '  ' + summary;
    d.appendChild(s);
    if (details) {
      var pre = document.createElement('pre');
      pre.textContent = details;
      d.appendChild(pre);
    }
    li.appendChild(d);
    var log = $('log');
    log.insertBefore(li, log.firstChild);
  }

  function logExchange(e) {
    answered[e.url] = e.error ? 0 : e.status;
    var summary = (/\.(login|getAuthCode)$/.test(e.kind) ? e.kind + '() → ' : '') + e.method + ' ' + pathOf(e.url) + ' → ' +
      (e.error ? 'network error' : e.status) + ' (' + e.ms + ' ms)';
    var details = 'request ' + e.method + ' ' + e.url + '\n' + pretty(redact(e.requestHeaders));
    if (e.requestBody !== undefined) details += '\n' + pretty(redact(e.requestBody));
    details += '\n\nanswer ' + (e.error ? e.error : e.status);
    if (e.responseHeaders) details += '\n' + pretty(e.responseHeaders);
    if (e.responseBody !== undefined) details += '\n' + pretty(redact(e.responseBody));
    var cls = e.error || e.status >= 400 ? 'bad' : 'ok';
    addLog(cls, summary, details);
  }

  function showResult(label, ok, value) {
    var el = $('result');
    el.className = ok ? 'ok' : 'bad';
    el.textContent = label + (ok ? ': ' : ' failed: ') + pretty(redact(value));
  }

  function errorValue(err) {
    if (err && typeof err === 'object' && 'error' in err) {
      return { status: err.status, error: err.error, message: err.message };
    }
    return { error: 'exception', message: String(err && err.message || err) };
  }

  // ---- token display ---------------------------------------------------

  function b64url(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    var bin = atob(s);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function decodeJWT(token) {
    var parts = String(token).split('.');
    if (parts.length !== 3) throw new Error('not a JWT');
    return { header: b64url(parts[0]), claims: b64url(parts[1]) };
  }

  function duration(s) {
    var sign = s < 0 ? '-' : '';
    s = Math.abs(Math.round(s));
    var m = Math.floor(s / 60);
    return sign + (m ? m + 'm ' : '') + (s % 60) + 's';
  }

  function renderClaims() {
    var token = stored('token');
    if (!token) {
      $('claims').textContent = 'no token';
      return;
    }
    try {
      var jwt = decodeJWT(token);
      var now = Date.now() / 1000;
      var c = jwt.claims;
      var lines = 'header ' + JSON.stringify(jwt.header) + '\n' + JSON.stringify(c, null, 2);
      if (typeof c.exp === 'number') {
        lines += '\n\nexp ' + new Date(c.exp * 1000).toLocaleTimeString() +
          (c.exp > now ? ' (in ' + duration(c.exp - now) + ')' : ' (expired ' + duration(now - c.exp) + ' ago)');
      }
      $('claims').textContent = lines;
    } catch (e) {
      $('claims').textContent = 'the stored token is not a readable JWT: ' + e.message;
    }
  }

  function renderStatus() {
    var el = $('status');
    if (!client || !client.isLoggedIn()) {
      el.className = 'status out';
      el.textContent = 'Logged out';
      return;
    }
    var left = (Number(stored('expires_at')) - Date.now()) / 1000;
    el.className = 'status in';
    el.textContent = 'Logged in as user ' + stored('user_id') + ' · access token ' +
      (left > 0 ? 'expires in ' + duration(left) : 'expired (the next call refreshes it)');
  }

  function renderSpent() {
    var sel = $('spent');
    var keep = sel.value;
    sel.textContent = '';
    if (spent.length === 0) {
      var none = document.createElement('option');
      none.value = '';
      none.textContent = 'none yet: log in and refresh';
      sel.appendChild(none);
      return;
    }
    spent.forEach(function (s, i) {
      var o = document.createElement('option');
      o.value = String(i);
      o.textContent = '#' + (i + 1) + ' ' + shorten(s.token) + ', rotated at ' + s.at;
      sel.appendChild(o);
    });
    sel.value = keep !== '' && spent[Number(keep)] ? keep : '0';
  }

  function render() {
    renderStatus();
    renderClaims();
    renderSpent();
  }

  /** Notes the refresh token in storage; the one it replaced becomes "spent". */
  function trackRefreshToken(event) {
    var cur = stored('refresh_token') || '';
    if (event === 'login' || event === 'relogin' || event === 'logout') {
      spent = [];
    } else if (cur !== lastRefresh && lastRefresh) {
      spent.push({ token: lastRefresh, at: clock() });
    }
    lastRefresh = cur;
  }

  // ---- the client ------------------------------------------------------

  function siteURL() {
    var raw = $('site').value.trim();
    var u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('the site URL must be http(s)');
    return u.origin + u.pathname.replace(/\/+$/, '');
  }

  function makeClient() {
    try {
      client = createClient({ baseURL: siteURL(), wx: platformHost(), platform: platformName(), storagePrefix: PREFIX });
    } catch (e) {
      client = null;
      showResult('Site URL', false, { error: 'invalid_site', message: e.message });
      return;
    }
    client.onAuthChange(function (state) {
      trackRefreshToken(state.event);
      addLog('auth', 'auth change: ' + state.event + (state.loggedIn ? ' (user ' + state.userId + ')' : ''), pretty(state));
      render();
    });
    render();
  }

  /** Runs one button's action, showing its outcome. */
  function action(id, label, fn) {
    $(id).addEventListener('click', function () {
      if (!client) makeClient();
      if (!client) return;
      var btn = $(id);
      btn.disabled = true;
      Promise.resolve().then(fn).then(function (v) {
        if (v !== undefined) showResult(label, true, v);
      }, function (err) {
        showResult(label, false, errorValue(err));
      }).then(function () {
        btn.disabled = false;
        render();
      });
    });
  }

  function showIdentity(res) {
    var data = res && res.data;
    var found = [];
    (function scan(v) {
      if (!v || typeof v !== 'object') return;
      Object.keys(v).forEach(function (k) {
        if (/^x-wechat-/i.test(k)) found.push(k + ': ' + (v[k] === '' ? '(empty)' : v[k]));
        else scan(v[k]);
      });
    })(data);
    if (found.length) {
      $('identity').textContent = found.join('\n') + '\n\n(the last protected call, at ' + clock() + ')';
    } else if (res.statusCode >= 400) {
      $('identity').textContent = 'the call was refused (' + res.statusCode + '): the upstream received nothing';
    } else {
      $('identity').textContent = 'the upstream answered without echoing X-WeChat-* headers; make it answer ' +
        'the headers it received to see them here (the demo site does)';
    }
  }

  action('login', 'Log in', function () {
    return client.login();
  });

  action('call', 'Call protected site', function () {
    var p = $('path').value.trim() || '/';
    return client.request({ url: p.charAt(0) === '/' ? p : '/' + p }).then(function (res) {
      showIdentity(res);
      return { statusCode: res.statusCode, data: res.data };
    });
  });

  action('profile', 'Get profile', function () {
    return client.profile().then(function (res) {
      showAvatar(res.user);
      return res;
    });
  });

  action('refresh', 'Refresh', function () {
    return client.refresh();
  });

  // Replays a spent refresh token the way a thief (or a confused client)
  // would: straight to the refresh endpoint, outside the client, keeping
  // nothing it answers.
  action('replay', 'Replay old refresh token', function () {
    var pick = spent[Number($('spent').value)];
    if (!pick) throw { error: 'no_old_token', message: 'no rotated refresh token yet: log in, then refresh' };
    addLog('auth', 'replaying old refresh token #' + (Number($('spent').value) + 1) + ' (rotated at ' + pick.at +
      '), as a thief holding a copy would');
    return new Promise(function (resolve) {
      wx.request({
        url: siteURL() + REFRESH_PATH,
        method: 'POST',
        header: { 'Content-Type': 'application/json' },
        data: { refresh_token: pick.token },
        success: resolve,
        fail: function (r) { resolve({ statusCode: 0, data: { error: 'network_error', message: r.errMsg } }); },
      });
    }).then(function (res) {
      var d = res.data || {};
      if (res.statusCode === 200) {
        return {
          statusCode: 200,
          explanation: 'accepted as a retry: presented within the retry window after its rotation, with its ' +
            'successor still unused, it gets the same new pair (not stored here)',
        };
      }
      throw {
        status: res.statusCode, error: d.error,
        message: (d.message || '') + ' — the server treats the replay as theft and has revoked the session; ' +
          'the next call finds out (401, refresh refused, one silent re-login)',
      };
    });
  });

  action('logout', 'Log out', function () {
    return client.logout();
  });

  action('logout-all', 'Log out everywhere', function () {
    return client.logout({ all: true });
  });

  function emulatorCall(method, body) {
    var started = performance.now();
    return fetch(FAULT_URL, {
      method: method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    }).then(function (res) {
      return res.json().then(function (data) {
        logExchange({
          kind: 'emulator', method: method, url: FAULT_URL, requestHeaders: {}, requestBody: body,
          status: res.status, responseBody: data, ms: Math.round(performance.now() - started),
        });
        if (!res.ok) throw { status: res.status, error: 'emulator_error', message: data.error };
        return data;
      });
    });
  }

  action('fault-inject', 'Inject fault', function () {
    var kind = $('fault-kind').value;
    var body = { path: $('fault-path').value, times: Number($('fault-times').value) || 1 };
    if (kind === 'garbage') {
      body.garbage = true;
      body.status = 502;
    } else if (kind === 'status503') {
      body.status = 503;
    } else {
      body.errcode = Number(kind);
    }
    return emulatorCall('POST', body);
  });

  action('fault-clear', 'Clear faults', function () {
    return emulatorCall('DELETE');
  });

  // ---- avatar and nickname ----------------------------------------------

  /** Shows the avatar of user as the site serves it (avatar_url is a path on the site). */
  function showAvatar(user) {
    var url = user && user.avatar_url;
    if (!url) return;
    var src = /^https?:\/\//i.test(url) ? url : siteURL() + url;
    $('avatar-img').src = src;
    $('avatar-caption').textContent = src;
    $('avatar-figure').hidden = false;
  }

  action('avatar-upload', 'Upload avatar', function () {
    var file = $('avatar-file').files[0];
    if (!file) throw { error: 'no_file', message: 'choose an image first (the chooseAvatar stand-in)' };
    return client.uploadAvatar(wx.chooseFile(file)).then(function (res) {
      showAvatar(res.user);
      return res;
    });
  });

  action('nickname-save', 'Save nickname', function () {
    return client.updateProfile({ nickname: $('nickname').value }).then(function (res) {
      showAvatar(res.user);
      return res;
    });
  });

  // ---- web-view ----------------------------------------------------------

  // Opens a page of the site the way a mini-program's <web-view> would: a
  // one-time ticket from webViewURL(), whose enter link sets the site's
  // cookies and goes on to the page. The tab is opened at the click (a tab
  // opened once the ticket has arrived would be a blocked pop-up) and sent
  // to the URL when it is known; the playground keeps no handle on it.
  action('webview-open', 'Open as web-view', function () {
    var note = $('webview-note');
    note.hidden = true;
    note.textContent = '';
    var next = $('webview-path').value.trim() || '/';
    if (next.charAt(0) !== '/') next = '/' + next;
    var tab = window.open('', '_blank');
    if (tab) tab.opener = null;
    return client.webViewURL(next).then(function (url) {
      if (tab) {
        tab.location.href = url;
        var shown = url.replace(/([?&]ticket=)([^&#]*)/, function (m, k, v) { return k + shorten(v); });
        return { opened: 'in a new tab', page: next, url: shown };
      }
      // The browser blocked the tab: offer the link instead (single-use, 60 s).
      var a = document.createElement('a');
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = 'open ' + next + ' (once, within 60 s)';
      note.textContent = 'The browser blocked the new tab: ';
      note.appendChild(a);
      note.hidden = false;
      return { opened: 'blocked by the browser: use the link below the button', page: next };
    }, function (err) {
      if (tab) tab.close();
      // Without a web block the ticket path is an ordinary page of the
      // site: a 404, or whatever the upstream answers there (no ticket).
      // The client reports an answer without a ticket as a 502 of its
      // own; the note tells what the site itself answered.
      if (err && (err.status === 404 || err.error === 'unexpected_response')) {
        var got = answered[siteURL() + WEB_TICKET_PATH];
        note.textContent = 'The site gave no ticket: its ticket path ' + WEB_TICKET_PATH + ' answered ' +
          (got ? 'HTTP ' + got : 'nothing') + (got && got < 300 ? ' without one' : '') + ', so it has no web ' +
          'block. Add web { … } to its wechat_auth block (see the browser pages guide) to open its pages as a web-view.';
        note.hidden = false;
        throw { status: got || err.status, error: 'no_web_block', message: 'the site has no web block: ' + err.message };
      }
      throw err;
    });
  });

  $('clear-log').addEventListener('click', function () {
    $('log').textContent = '';
  });
  $('site').addEventListener('change', makeClient);

  // ---- the platform switch --------------------------------------------
  // The client gets the host object of the chosen platform (wx, qq, tt, my
  // or swan), all backed by this page's emulator. ?platform=<name> in the
  // page's URL preselects one.

  var PLATFORMS = ['wechat', 'qq', 'douyin', 'alipay', 'baidu'];

  function platformName() {
    var v = $('platform').value;
    return PLATFORMS.indexOf(v) >= 0 ? v : 'wechat';
  }

  function platformHost() {
    var p = platformName();
    if (p === 'wechat') return wx;
    return createPlaygroundHost(p, {
      codeURL: CODE_URL,
      storageNamespace: NAMESPACE,
      openid: function () { return $('openid').value.trim(); },
      onExchange: logExchange,
    });
  }

  var wanted = new URLSearchParams(location.search).get('platform');
  if (PLATFORMS.indexOf(wanted) >= 0) $('platform').value = wanted;
  $('platform').addEventListener('change', function () {
    addLog('auth', 'platform: ' + platformName() + ' (the emulator and the site must serve the same platform)');
    makeClient();
  });

  lastRefresh = stored('refresh_token') || '';
  makeClient();
  setInterval(renderStatus, 1000);
  window.playground = { client: function () { return client; } };
})();
