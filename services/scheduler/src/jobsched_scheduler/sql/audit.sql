-- name: record_audit
-- One entry of the audit log, in the caller's transaction.
INSERT INTO audit (actor, action, target, before, after, remote)
VALUES (%(actor)s, %(action)s, %(target)s, %(before)s::jsonb, %(after)s::jsonb, %(remote)s);

-- name: list_audit
-- A page of the audit log, newest first, below a keyset cursor.
SELECT id, at, actor, action, target, before::text AS before, after::text AS after, remote
FROM audit WHERE id < %(before_id)s ORDER BY id DESC LIMIT %(limit)s;
