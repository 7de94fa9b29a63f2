"""PostgreSQL: every change to a conversation row is announced on the change feed.

Every write the read cache depends on touches the conversations row: a new conversation
inserts it, a turn moves `updated_ms`, a rename or title sets `title`, a delete removes it.
The trigger runs inside the writing transaction, so the notice goes out when, and only if,
the write commits, without a round trip of its own. The payload is "user_id conversation_id"
(see storage/change_feed.py). SQLite has no feed: its database is one process's file.

Revision ID: 0003_change_feed
Revises: 0002_analyses
"""

from alembic import op

revision = "0003_change_feed"
down_revision = "0002_analyses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION datamonkey_chat_announce_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            changed conversations%ROWTYPE;
        BEGIN
            IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
            PERFORM pg_notify('datamonkey_chat_changes', changed.user_id || ' ' || changed.id);
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER conversations_announce_change
        AFTER INSERT OR UPDATE OR DELETE ON conversations
        FOR EACH ROW EXECUTE FUNCTION datamonkey_chat_announce_change()
        """
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS conversations_announce_change ON conversations")
    op.execute("DROP FUNCTION IF EXISTS datamonkey_chat_announce_change()")
