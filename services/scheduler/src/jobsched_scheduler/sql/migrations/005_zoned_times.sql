-- An adopted database of the original keeps its times without a zone (TIMESTAMP), which
-- the API cannot place in time: they become TIMESTAMPTZ, read in the server's time zone,
-- the one the original's CURRENT_TIMESTAMP defaults wrote them in.
DO $$
DECLARE
    col RECORD;
BEGIN
    FOR col IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema()
          AND table_name IN ('jobs', 'scheduler_config')
          AND data_type = 'timestamp without time zone'
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE TIMESTAMPTZ',
                       col.table_name, col.column_name);
    END LOOP;
END $$;
