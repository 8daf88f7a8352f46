-- Web-view tickets: one-time tickets a mini-program session asks for and a
-- browser redeems for a cookie session of the same user. Only the SHA-256
-- of a ticket is stored; a redemption deletes the row.
CREATE TABLE wechat_auth_web_tickets (
    app_id     text        NOT NULL,
    hash       bytea       NOT NULL CHECK (length(hash) = 32),
    session_id text        NOT NULL,
    user_id    bigint      NOT NULL,
    next       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (app_id, hash),
    FOREIGN KEY (app_id, session_id) REFERENCES wechat_auth_sessions (app_id, id) ON DELETE CASCADE
);
CREATE INDEX wechat_auth_web_tickets_expires ON wechat_auth_web_tickets (app_id, expires_at);
