"""PostgreSQL: every ended session is announced on the change feed.

A session ends when its row is deleted (`DELETE /api/v1/session`, or by hand). Server
processes keep a user's session check for up to a minute; the trigger tells each of them,
at commit, to forget it, so the token is refused at once everywhere. The payload is the
user id (see storage/change_feed.py). SQLite has no feed: its database is one process's file.

Revision ID: 0004_session_feed
Revises: 0003_change_feed
"""

from alembic import op

revision = "0004_session_feed"
down_revision = "0003_change_feed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION datamonkey_chat_announce_session_end() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('datamonkey_chat_sessions', OLD.user_id);
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER sessions_announce_end
        AFTER DELETE ON sessions
        FOR EACH ROW EXECUTE FUNCTION datamonkey_chat_announce_session_end()
        """
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS sessions_announce_end ON sessions")
    op.execute("DROP FUNCTION IF EXISTS datamonkey_chat_announce_session_end()")
