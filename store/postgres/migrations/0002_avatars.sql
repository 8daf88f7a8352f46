-- Avatars uploaded by users, content-addressed: hash is the hex SHA-256 of
-- data, so two users with the same picture share one row.
CREATE TABLE wechat_auth_avatars (
    app_id       text        NOT NULL,
    hash         text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    content_type text        NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg')),
    data         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, hash)
);

-- user -> the stored avatar the user shows. An avatar is deleted by the
-- transaction that removes its last row here; the foreign key keeps a
-- referenced avatar from ever being deleted.
CREATE TABLE wechat_auth_user_avatars (
    app_id  text   NOT NULL,
    user_id bigint NOT NULL,
    hash    text   NOT NULL,
    PRIMARY KEY (app_id, user_id),
    FOREIGN KEY (app_id, user_id) REFERENCES wechat_auth_users (app_id, id),
    FOREIGN KEY (app_id, hash) REFERENCES wechat_auth_avatars (app_id, hash)
);
CREATE INDEX wechat_auth_user_avatars_hash ON wechat_auth_user_avatars (app_id, hash);
