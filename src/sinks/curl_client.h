/* curl_client.h - what the libcurl sinks (sink_http.c, sink_webhdfs.c) share: one
 * request at a time on one easy handle (connections are reused), the
 * timeout and TLS options, and the reading of a response. Internal to
 * src/sinks/.
 */
#ifndef IDBMOUNT_SINKS_CURL_CLIENT_H
#define IDBMOUNT_SINKS_CURL_CLIENT_H

#include "idbmount/sinks/config.h"
#include "idbmount/util/buf.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>

/* The options every libcurl sink has, for the option table of `type`, a
 * sink context holding its struct curl_client as `client`. */
#define CURL_CLIENT_OPTIONS(type)                                                                  \
	{.name = "timeout",                                                                        \
	 .kind = SINK_OPT_DURATION,                                                                \
	 .default_value = "30s",                                                                   \
	 .help = "longest time for one request",                                                   \
	 SINK_BIND(type, client.timeout_ms)},                                                      \
	        {.name = "connect_timeout",                                                        \
	         .kind = SINK_OPT_DURATION,                                                        \
	         .default_value = "5s",                                                            \
	         .help = "longest time to connect",                                                \
	         SINK_BIND(type, client.connect_timeout_ms)},                                      \
	        {.name = "tls_ca_file",                                                            \
	         .kind = SINK_OPT_STRING,                                                          \
	         .default_value = "",                                                              \
	         .help = "CA certificates (PEM) to check the server with, instead of the "         \
	                 "system's",                                                               \
	         SINK_BIND(type, client.ca_file)},                                                 \
	{                                                                                          \
		.name = "tls_verify", .kind = SINK_OPT_BOOL, .default_value = "true",              \
		.help = "check the server's certificate and name (https)",                         \
		SINK_BIND(type, client.verify)                                                     \
	}

struct curl_client {
	/* Bound from CURL_CLIENT_OPTIONS before curl_client_init. */
	int64_t timeout_ms;
	int64_t connect_timeout_ms;
	const char *ca_file;
	bool verify;

	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	atomic_bool cancelled; /* set by curl_client_cancel from any thread */
	size_t body_max;       /* answers are cut there (64 KiB unless set after init) */
};

struct curl_response {
	long status;     /* 0 when no answer came */
	CURLcode code;   /* CURLE_OK when an answer came */
	struct buf body; /* capped at the client's body_max */
	char location[2048];
	char error[CURL_ERROR_SIZE + 64]; /* for code != CURLE_OK */
};

/* Makes the handle of `c`, whose options are bound. 0 or -errno. */
int curl_client_init(struct curl_client *c, char *err, size_t err_len);
void curl_client_cleanup(struct curl_client *c);

/* Makes the request in progress, and every later one, fail at once
 * (the sink's cancel callback, at shutdown). Thread-safe. */
void curl_client_cancel(struct curl_client *c);

/* One request; redirects are never followed (WebHDFS wants them done by
 * hand). `headers` may be NULL; `body` NULL sends no body. The response's
 * body buffer must be freed with curl_response_free. */
void curl_client_request(struct curl_client *c, const char *method, const char *url,
                         struct curl_slist *headers, const char *body, size_t len,
                         struct curl_response *out);
void curl_response_free(struct curl_response *r);

/* The common answer to a response: 2xx OK; no answer (refused, reset,
 * timeout), 408, 429 and 5xx RETRY; anything else ERROR. `msg` says what
 * happened, with the start of the body. */
enum sink_result curl_client_classify(const struct curl_response *r, const char *what, char *msg,
                                      size_t msg_len);

/* Appends `text` to `out` percent-encoded, keeping '/' and the unreserved
 * characters (a path), or also encoding '/' when `component`. */
int curl_client_escape(struct buf *out, const char *text, bool component);

#endif
