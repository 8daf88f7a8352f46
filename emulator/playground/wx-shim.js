// The playground's stand-in for the mini-program's wx object, and the
// CommonJS `module` that lets wechat-auth.js (which ends with
// `module.exports = { createClient }`) load as a plain script.
'use strict';

var module = { exports: {} };

/**
 * Creates a wx-like object for wechat-auth.js in the browser:
 * - login() mints a code at the emulator's POST /emulator/code for the
 *   openid that options.openid() returns, as wx.login() would get one;
 * - request() is fetch() (cross-origin calls need the site's CORS headers);
 * - the storage functions keep JSON values in localStorage under
 *   options.storageNamespace;
 * - chooseFile(file) stands in for <button open-type="chooseAvatar">: it
 *   keeps a browser File and returns a temporary path for it, which
 *   uploadFile() (wx.uploadFile: multipart/form-data, the file in the part
 *   named options.name) sends.
 * options.platform (default wechat) is the platform whose host object this
 * stands in for: a code the emulator says is another platform's is refused
 * by login(), as that platform's site could not use it.
 * options.onExchange(entry) is called after each login and request with
 * {kind, method, url, requestHeaders, requestBody, status, responseHeaders,
 * responseBody, error, ms}.
 */
function createPlaygroundWx(options) {
  var ns = options.storageNamespace;
  var tempFiles = []; // chooseFile's files, by temporary path number

  function record(entry) {
    try {
      options.onExchange(entry);
    } catch (e) {
      setTimeout(function () { throw e; }, 0);
    }
  }

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return text;
    }
  }

  function headersObject(h) {
    var out = {};
    h.forEach(function (v, k) { out[k] = v; });
    return out;
  }

  return {
    login: function (o) {
      var started = performance.now();
      var body = { openid: options.openid() };
      var entry = {
        kind: options.loginCall || 'wx.login', method: 'POST', url: options.codeURL,
        requestHeaders: { 'Content-Type': 'application/json' }, requestBody: body,
      };
      fetch(options.codeURL, {
        method: 'POST', headers: entry.requestHeaders, body: JSON.stringify(body), cache: 'no-store',
      }).then(function (res) {
        return res.text().then(function (text) {
          var data = parse(text);
          entry.status = res.status;
          entry.responseHeaders = headersObject(res.headers);
          entry.responseBody = data;
          entry.ms = Math.round(performance.now() - started);
          record(entry);
          var want = options.platform || 'wechat';
          if (res.ok && data && data.code && data.platform && data.platform !== want) {
            o.fail({
              errMsg: 'login:fail this page\'s emulator mints ' + data.platform + ' codes, not ' + want + ' ones: ' +
                'open the playground of an emulator with `platform ' + want + '`, against a site whose wechat_auth ' +
                'has `platform ' + want + '` too',
            });
          } else if (res.ok && data && data.code) o.success({ code: data.code, errMsg: 'login:ok' });
          else o.fail({ errMsg: 'login:fail ' + (data && data.error || 'HTTP ' + res.status) });
        });
      }).catch(function (err) {
        entry.error = err.message;
        entry.ms = Math.round(performance.now() - started);
        record(entry);
        o.fail({ errMsg: 'login:fail ' + err.message });
      });
    },

    request: function (o) {
      var started = performance.now();
      var method = (o.method || 'GET').toUpperCase();
      var headers = Object.assign({}, o.header || {});
      var url = o.url;
      var body;
      if (o.data !== undefined && o.data !== null) {
        if (method === 'GET' || method === 'HEAD') {
          if (typeof o.data === 'object') {
            var q = new URLSearchParams(o.data).toString();
            if (q) url += (url.indexOf('?') >= 0 ? '&' : '?') + q;
          }
        } else {
          body = typeof o.data === 'string' ? o.data : JSON.stringify(o.data);
        }
      }
      var entry = {
        kind: 'wx.request', method: method, url: url,
        requestHeaders: headers, requestBody: body === undefined ? undefined : parse(body),
      };
      fetch(url, { method: method, headers: headers, body: body, mode: 'cors', credentials: 'omit', cache: 'no-store' })
        .then(function (res) {
          return res.text().then(function (text) {
            var data = parse(text);
            var header = headersObject(res.headers);
            entry.status = res.status;
            entry.responseHeaders = header;
            entry.responseBody = data;
            entry.ms = Math.round(performance.now() - started);
            record(entry);
            o.success({ statusCode: res.status, data: data, header: header, errMsg: 'request:ok' });
          });
        })
        .catch(function (err) {
          entry.error = err.message + ' (is the site up, and does it allow this origin with CORS?)';
          entry.ms = Math.round(performance.now() - started);
          record(entry);
          o.fail({ errMsg: 'request:fail ' + err.message });
        });
    },

    chooseFile: function (file) {
      tempFiles.push(file);
      return 'wxfile://tmp_' + (tempFiles.length - 1) + '_' + file.name;
    },

    uploadFile: function (o) {
      var started = performance.now();
      var m = /^wxfile:\/\/tmp_(\d+)_/.exec(o.filePath || '');
      var file = m && tempFiles[Number(m[1])];
      var entry = {
        kind: 'wx.uploadFile', method: 'POST', url: o.url,
        requestHeaders: Object.assign({}, o.header || {}),
        requestBody: { name: o.name, filePath: o.filePath, size: file ? file.size : undefined },
      };
      if (!file) {
        entry.error = 'no such temporary file';
        entry.ms = 0;
        record(entry);
        o.fail({ errMsg: 'uploadFile:fail file not found' });
        return;
      }
      var form = new FormData();
      form.append(o.name, file, file.name);
      fetch(o.url, { method: 'POST', headers: entry.requestHeaders, body: form, mode: 'cors', credentials: 'omit', cache: 'no-store' })
        .then(function (res) {
          return res.text().then(function (text) {
            entry.status = res.status;
            entry.responseHeaders = headersObject(res.headers);
            entry.responseBody = parse(text);
            entry.ms = Math.round(performance.now() - started);
            record(entry);
            // Like wx.uploadFile: the body as a string, unparsed.
            o.success({ statusCode: res.status, data: text, errMsg: 'uploadFile:ok' });
          });
        })
        .catch(function (err) {
          entry.error = err.message + ' (is the site up, and does it allow this origin with CORS?)';
          entry.ms = Math.round(performance.now() - started);
          record(entry);
          o.fail({ errMsg: 'uploadFile:fail ' + err.message });
        });
    },

    getStorageSync: function (key) {
      var v = localStorage.getItem(ns + key);
      if (v === null) return '';
      try {
        return JSON.parse(v);
      } catch (e) {
        return '';
      }
    },
    setStorageSync: function (key, value) {
      localStorage.setItem(ns + key, JSON.stringify(value));
    },
    removeStorageSync: function (key) {
      localStorage.removeItem(ns + key);
    },
  };
}

// ---- other platforms ---------------------------------------------------

/**
 * The host object of a mini-program platform, for the playground's
 * platform switch: wechat, qq and baidu get the wx stand-in above (wx, qq
 * and swan share its shape); douyin's tt.login also gives an anonymousCode;
 * alipay's my logs in with getAuthCode({scopes}) giving an authCode,
 * requests with headers/status and stores with {key, data}, as the real my
 * does. Codes are minted at this page's emulator, which must emulate the
 * same platform.
 */
function createPlaygroundHost(platform, options) {
  var calls = { wechat: 'wx.login', qq: 'qq.login', douyin: 'tt.login', alipay: 'my.getAuthCode', baidu: 'swan.login' };
  var w = createPlaygroundWx(Object.assign({}, options, { loginCall: calls[platform] || 'wx.login', platform: platform }));
  var n = 0;
  if (platform === 'douyin') {
    var login = w.login;
    w.login = function (o) {
      n++;
      var anon = 'playground-anonymous-' + n;
      login({
        success: function (res) { o.success({ code: res.code, anonymousCode: anon, isLogin: true, errMsg: res.errMsg }); },
        fail: o.fail,
      });
    };
    return w;
  }
  if (platform !== 'alipay') return w;
  return {
    getAuthCode: function (o) {
      w.login({
        success: function (res) { o.success({ authCode: res.code }); },
        fail: function (res) { o.fail({ error: 11, errorMessage: res.errMsg }); },
      });
    },
    request: function (o) {
      w.request({
        url: o.url, method: o.method, data: o.data, header: o.headers,
        success: function (res) { o.success({ status: res.statusCode, data: res.data, headers: res.header }); },
        fail: function (res) { o.fail({ error: 12, errorMessage: res.errMsg }); },
      });
    },
    getStorageSync: function (o) {
      var v = w.getStorageSync(o.key);
      return { data: v === '' ? null : v };
    },
    setStorageSync: function (o) { w.setStorageSync(o.key, o.data); },
    removeStorageSync: function (o) { w.removeStorageSync(o.key); },
  };
}
