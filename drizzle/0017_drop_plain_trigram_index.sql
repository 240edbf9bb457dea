-- The trigram index of `content` alone duplicated messages_search_conv_trgm_idx (0010), which a
-- substring search without a conversation uses as well (a multicolumn GIN index is searched by any
-- of its columns). Each trigram index roughly halved the rate of message inserts. Dropping an index
-- only takes a brief lock (no rewrite, no scan of the table).
DROP INDEX IF EXISTS "messages_search_trgm_idx";
