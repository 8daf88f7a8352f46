// Type declarations for wechat-auth.js, the mini-program client of
// caddy-wechat-auth. Copy both files into the mini-program.

/** The wx-like object the client uses: wx, uni-app's uni, Taro, or a test double. */
export interface WxLike {
  login(options: {
    success?: (res: { code: string; anonymousCode?: string; errMsg?: string }) => void;
    fail?: (res: { errMsg?: string }) => void;
  }): unknown;
  request(options: WxRequestOptions & {
    success?: (res: WxResponse) => void;
    fail?: (res: { errMsg?: string }) => void;
  }): unknown;
  getStorageSync(key: string): any;
  setStorageSync(key: string, value: any): void;
  removeStorageSync(key: string): void;
  /** Needed by uploadAvatar() only. */
  uploadFile?(options: {
    url: string;
    filePath: string;
    name: string;
    header?: Record<string, string>;
    success?: (res: { statusCode: number; data: string; errMsg?: string }) => void;
    fail?: (res: { errMsg?: string }) => void;
  }): unknown;
}

/** Alipay's my object: it logs in with getAuthCode, requests with headers/status, stores with {key, data}. */
export interface AlipayLike {
  getAuthCode(options: {
    scopes: string | string[];
    success?: (res: { authCode: string }) => void;
    fail?: (res: { error?: number; errorMessage?: string }) => void;
  }): unknown;
  request(options: any): unknown;
  getStorageSync(options: { key: string }): { data: any };
  setStorageSync(options: { key: string; data: any }): void;
  removeStorageSync(options: { key: string }): void;
}

/** The wx.request options request() passes on (success/fail/complete are not used). */
export interface WxRequestOptions {
  /** Relative to baseURL, or absolute (another origin gets no token). */
  url: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD' | 'OPTIONS' | 'TRACE' | 'CONNECT';
  data?: string | object | ArrayBuffer;
  header?: Record<string, string>;
  timeout?: number;
  dataType?: string;
  responseType?: 'text' | 'arraybuffer';
  [option: string]: any;
}

/** wx.request's success object. */
export interface WxResponse<T = any> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
  errMsg?: string;
}

/** Options of createClient. */
export interface ClientOptions {
  /** Absolute URL of the site protected by wechat_auth; the token is only sent to its origin. Required. */
  baseURL: string;
  /**
   * The host object: wx, qq, tt, swan, Alipay's my, uni-app's uni or Taro.
   * Default: the global of the platform (tt, my, swan, qq or wx, the first found).
   */
  wx?: WxLike | AlipayLike;
  /** The platform the server block serves. Default: the host object's platform (wechat for uni and Taro). */
  platform?: 'wechat' | 'qq' | 'douyin' | 'alipay' | 'baidu';
  /** Prefix of the storage keys token, refresh_token, expires_at, user_id. Default: "wechat_auth_". */
  storagePrefix?: string;
  /** Endpoint paths. Default: /wx/login, /wx/refresh, /wx/logout, /wx/profile, /wx/phone, /wx/decrypt, /wx/web/ticket, /wx/avatar. */
  paths?: Partial<Record<'login' | 'refresh' | 'logout' | 'profile' | 'phone' | 'decrypt' | 'webTicket' | 'avatar', string>>;
  /** Seconds before expiry at which request() refreshes first. Default: 60. */
  refreshAhead?: number;
  /** Whether request() logs in silently (once) when there is no session or it ended. Default: true. */
  autoLogin?: boolean;
  /** Clock in milliseconds since the epoch, for tests. Default: Date.now. */
  now?: () => number;
}

/** Every rejection of the client. status is 0 when no HTTP answer was received. */
export interface WechatAuthError extends Error {
  name: 'WechatAuthError';
  status: number;
  /**
   * The server's error code (invalid_token, invalid_grant, invalid_code,
   * user_banned, rate_limited, …) or one of the client's own:
   * network_error, wx_login_failed, storage_error, unexpected_response,
   * invalid_request, logged_out.
   */
  error: string;
  message: string;
}

/** A user as the endpoints return it. */
export interface User {
  id: number;
  nickname: string;
  avatar_url: string;
  gender: 0 | 1 | 2;
  phone: string;
  created_at: string;
}

/** A login answer without its tokens (the client keeps those). */
export interface LoginResult {
  status: 'success';
  token_type: 'Bearer';
  expires_in: number;
  refresh_expires_in: number;
  user_id: number;
  new_user: boolean;
  user: User;
}

/** A refresh answer without its tokens. */
export interface RefreshResult {
  status: 'success';
  token_type: 'Bearer';
  expires_in: number;
  refresh_expires_in: number;
  user_id: number;
}

/** What onAuthChange listeners receive. It never holds a token. */
export interface AuthState {
  event: 'login' | 'relogin' | 'refresh' | 'logout';
  loggedIn: boolean;
  userId?: number;
  /** Milliseconds since the epoch, by the phone's clock. */
  expiresAt?: number;
}

export interface ProfilePatch {
  nickname?: string;
  avatar_url?: string;
  gender?: 0 | 1 | 2;
}

export interface OpenData {
  encrypted_data?: string;
  encryptedData?: string;
  iv: string;
  raw_data?: string;
  rawData?: string;
  signature?: string;
}

export interface Client {
  /** wx.login, then the login endpoint; concurrent calls share one. */
  login(fields?: ProfilePatch): Promise<LoginResult>;
  /** wx.request with the access token, one refresh or re-login and one replay on 401. */
  request<T = any>(options: WxRequestOptions): Promise<WxResponse<T>>;
  /** Refreshes now (shared with a refresh in flight). Resolves with the answer, or the state when another refresh already replaced the token. */
  refresh(): Promise<RefreshResult | AuthState>;
  /**
   * Ends the session ({all: true}: every session of the user); storage is
   * cleared at once, even when offline (then it rejects with network_error).
   * A refresh in flight is waited for, so the newest tokens are used. When
   * the server no longer knows the session, a plain logout resolves, but
   * {all: true} rejects with invalid_grant: no other session was ended.
   */
  logout(options?: { all?: boolean }): Promise<{ status: 'success' }>;
  profile(): Promise<{ status: 'success'; user: User }>;
  updateProfile(patch: ProfilePatch): Promise<{ status: 'success'; user: User }>;
  /**
   * Uploads the file a chooseAvatar button gave (e.detail.avatarUrl) with wx.uploadFile and the
   * access token (one refresh or re-login and one replay on 401). user.avatar_url is then the
   * image's path on the site.
   */
  uploadAvatar(tempFilePath: string): Promise<{ status: 'success'; user: User }>;
  /** The code from a getPhoneNumber button's event (e.detail.code). */
  bindPhone(code: string): Promise<{
    status: 'success';
    phone: { phone_number: string; pure_phone_number: string; country_code: string };
  }>;
  decrypt<T = Record<string, unknown>>(input: OpenData): Promise<{ status: 'success'; data: T }>;
  /**
   * The absolute URL to open in a <web-view>: a one-time ticket's enter link
   * (single-use, 60 s) that logs the page in with cookies and goes on to
   * next, a path on the site (default "/").
   */
  webViewURL(next?: string): Promise<string>;
  /** Returns a function that unsubscribes the listener. */
  onAuthChange(listener: (state: AuthState) => void): () => void;
  /** Whether a session is stored (it may still have ended on the server). */
  isLoggedIn(): boolean;
}

export function createClient(options: ClientOptions): Client;
