-- Nothing to restore: the index is not part of the schema at version 3.
SELECT 1;
