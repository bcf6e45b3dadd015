/* store_sync.c - the store's part for the sync endpoint (see
 * store_internal.h for how the store is split). Empty until the endpoint
 * lands: it only declares its schema. */
#include "store_internal.h"

const char store_sync_schema_sql[] = "";
