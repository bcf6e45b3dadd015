/* store_sinks.c - the store's part for the flusher (see store_internal.h
 * for how the store is split). Empty until the flusher lands: it only
 * declares its schema. */
#include "store_internal.h"

const char store_sinks_schema_sql[] = "";
