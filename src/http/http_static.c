/* http_static.c - the browser library and the demo page, embedded in the
 * daemon at build time from src/web/ (CMakeLists.txt turns each file into a
 * C array), so a deployment is one binary and the library always matches
 * the protocol of the daemon that serves it.
 *
 *   /                 demo.html
 *   /idbmount.js      the library's entry module, which imports the others
 *   /idbmount/NAME.js  the library's modules (codec, capture, sync, ...)
 *   /idbmount.d.ts    its TypeScript declarations
 *
 * An ETag (the content's FNV-1a hash) and "Cache-Control: no-cache" let a
 * browser revalidate cheaply (304) and never run a stale library after the
 * daemon was upgraded.
 */
#include "http_handlers.h"

#include <stdio.h>
#include <string.h>

static const char *content_type(const char *path)
{
	const char *dot = strrchr(path, '.');
	if (!dot)
		return "application/octet-stream";
	if (strcmp(dot, ".js") == 0)
		return "text/javascript; charset=utf-8";
	if (strcmp(dot, ".ts") == 0)
		return "application/typescript; charset=utf-8";
	if (strcmp(dot, ".html") == 0)
		return "text/html; charset=utf-8";
	if (strcmp(dot, ".css") == 0)
		return "text/css; charset=utf-8";
	return "application/octet-stream";
}

static void etag_of(const struct http_asset *a, char out[24])
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < a->len; i++) {
		h ^= a->data[i];
		h *= 1099511628211ull;
	}
	snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

static const struct http_asset *asset_of(const char *url)
{
	const char *path = strcmp(url, "/") == 0 ? "/demo.html" : url;
	for (size_t i = 0; i < http_assets_count; i++)
		if (strcmp(http_assets[i].path, path) == 0)
			return &http_assets[i];
	return NULL;
}

bool http_static_exists(const char *url)
{
	return asset_of(url) != NULL;
}

enum MHD_Result http_static(struct http_request *r)
{
	const struct http_asset *a = asset_of(r->url);
	if (!a)
		return http_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such file");
	char etag[24];
	etag_of(a, etag);
	const char *match = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_IF_NONE_MATCH);
	bool fresh = match && strcmp(match, etag) == 0;
	struct MHD_Response *resp =
	        fresh ? MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT)
	              : MHD_create_response_from_buffer(a->len, (void *)a->data,
	                                                MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(a->path));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	return http_queue(r, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
}
