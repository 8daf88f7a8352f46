-- Schema version 1 of the wechat_auth PostgreSQL store.
-- Every table is scoped by app_id; names carry the wechat_auth_ prefix so
-- the schema can share a database with an application's own tables.

-- One row per app: the last user id handed out.
CREATE TABLE wechat_auth_apps (
    app_id       text   PRIMARY KEY,
    last_user_id bigint NOT NULL DEFAULT 0 CHECK (last_user_id >= 0)
);

-- The id reserved for an openid whose user a login is about to create.
-- Concurrent first logins of one openid share the reservation, so a race
-- spends no id; the login that creates the user deletes it.
CREATE TABLE wechat_auth_id_reservations (
    app_id  text   NOT NULL,
    openid  text   NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (app_id, openid)
);

CREATE TABLE wechat_auth_users (
    app_id     text        NOT NULL,
    id         bigint      NOT NULL CHECK (id > 0),
    openid     text        NOT NULL,
    unionid    text        NOT NULL DEFAULT '',
    nickname   text        NOT NULL DEFAULT '',
    avatar_url text        NOT NULL DEFAULT '',
    gender     integer     NOT NULL DEFAULT 0,
    phone      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    banned     boolean     NOT NULL DEFAULT false,
    ban_reason text        NOT NULL DEFAULT '',
    PRIMARY KEY (app_id, id)
);
CREATE INDEX wechat_auth_users_phone ON wechat_auth_users (app_id, phone, id) WHERE phone <> '';

-- openid -> user. A user has its own openid and, after linking by
-- unionid, the openids of the same person in other mini-programs.
CREATE TABLE wechat_auth_openids (
    app_id  text   NOT NULL,
    openid  text   NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (app_id, openid),
    FOREIGN KEY (app_id, user_id) REFERENCES wechat_auth_users (app_id, id)
);

-- unionid -> the first user that had it.
CREATE TABLE wechat_auth_unionids (
    app_id  text   NOT NULL,
    unionid text   NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (app_id, unionid),
    FOREIGN KEY (app_id, user_id) REFERENCES wechat_auth_users (app_id, id)
);

CREATE TABLE wechat_auth_sessions (
    app_id             text        NOT NULL,
    id                 text        NOT NULL,
    user_id            bigint      NOT NULL,
    openid             text        NOT NULL,
    unionid            text        NOT NULL DEFAULT '',
    sealed_session_key bytea,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    refreshed_at       timestamptz,
    revoked_at         timestamptz,
    revoke_reason      text        NOT NULL DEFAULT '',
    PRIMARY KEY (app_id, id),
    FOREIGN KEY (app_id, user_id) REFERENCES wechat_auth_users (app_id, id)
);
CREATE INDEX wechat_auth_sessions_user ON wechat_auth_sessions (app_id, user_id, created_at DESC);
CREATE INDEX wechat_auth_sessions_expires ON wechat_auth_sessions (expires_at);
CREATE INDEX wechat_auth_sessions_revoked ON wechat_auth_sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX wechat_auth_sessions_app_revoked ON wechat_auth_sessions (app_id, revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens, by the SHA-256 hash of their value (never the value).
CREATE TABLE wechat_auth_refresh_tokens (
    app_id           text        NOT NULL,
    hash             bytea       NOT NULL CHECK (length(hash) = 32),
    session_id       text        NOT NULL,
    issued_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    rotated_at       timestamptz,
    child            bytea       CHECK (length(child) = 32),
    access_id        text        NOT NULL DEFAULT '',
    access_issued_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, hash),
    FOREIGN KEY (app_id, session_id) REFERENCES wechat_auth_sessions (app_id, id)
);
CREATE INDEX wechat_auth_refresh_tokens_session ON wechat_auth_refresh_tokens (app_id, session_id);
CREATE INDEX wechat_auth_refresh_tokens_expires ON wechat_auth_refresh_tokens (expires_at);

CREATE TABLE wechat_auth_secrets (
    app_id text  NOT NULL,
    name   text  NOT NULL,
    value  bytea NOT NULL CHECK (length(value) > 0),
    PRIMARY KEY (app_id, name)
);

-- The revocation feed: one row per revocation, written in the transaction
-- that revokes, with a NOTIFY on channel wechat_auth_revocations. Other
-- processes read it by seq to keep their in-memory revocation lists
-- current.
CREATE TABLE wechat_auth_revocations (
    seq        bigserial   PRIMARY KEY,
    app_id     text        NOT NULL,
    session_id text        NOT NULL,
    user_id    bigint      NOT NULL,
    revoked_at timestamptz NOT NULL,
    reason     text        NOT NULL
);
CREATE INDEX wechat_auth_revocations_revoked_at ON wechat_auth_revocations (revoked_at);
