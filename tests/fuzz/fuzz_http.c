/* fuzz_http.c - the sync endpoint as a client meets it: the daemon's own
 * HTTP server (src/http/, http_prepare and http_start, libmicrohttpd's
 * threads) on 127.0.0.1 with a store in a temporary data directory, sent
 * the input as the bytes of a connection.
 *
 * What runs: everything from the socket on, in this process: libmicrohttpd
 * parses the request; http_host.c checks the Host (the address literal with
 * the port, localhost, and the --server-name "fuzz.example"), the Origin
 * (--allow-origin "https://app.example"), the query (repeated or %00
 * parameters), routes, refuses bodies, reads them within --max-body and
 * the budget, checks tokens; the handlers answer with a real store (a
 * client "fuzz" with a store fuzz/shop/orders, a pipeline "pipe"). Not
 * covered: TLS, and event streams past their first bytes (the harness
 * closes a stream once its headers are in).
 *
 * In the input, "@TOKEN@" stands for the client's token, "@PIPE@" for the
 * pipeline's and "@PORT@" for the port (picked at start). The harness sends
 * the input, half-closes, and reads until the first response is whole, the
 * daemon ends the connection, or nothing comes for 50 ms (a request not
 * whole yet); responses to pipelined requests are checked when they came
 * with the first. Properties of every response:
 *   - it is HTTP/1.x with a status, and one that keeps coming is whole
 *     within 10 s;
 *   - an error the daemon answers itself (its responses carry
 *     X-Content-Type-Options: nosniff; libmicrohttpd's own do not) is
 *     application/json {"error": string, "detail": string} and nothing
 *     else; 401 says WWW-Authenticate, 503 Retry-After, 405 Allow;
 *   - a request naming none of the daemon's names (no "fuzz.example",
 *     "localhost" or "127.0.0.1" anywhere in it) gets nothing from the
 *     daemon but 400 or 421;
 *   - a request without a token gets no answer of a token route: no pull,
 *     push or schema answer, no event or change stream.
 */
#include "fuzz.h"

#include "idbmount/http/http.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sync.h"
#include "idbmount/util/buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_WITHIN_MS 10000
#define IDLE_MS          50

static const char *datadir;
static char client_token[STORE_TOKEN_MAX], pipeline_token[STORE_TOKEN_MAX], port_text[8];
static struct http *server;
static unsigned port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	datadir = fuzz_temp_datadir("http");
	char err[512];
	struct store *st = NULL;
	FUZZ_CHECK(store_open(datadir, &st, err, sizeof(err)) == 0, "%s", err);
	FUZZ_CHECK(store_client_add(st, "fuzz", NULL, client_token) == 0, "client add");
	FUZZ_CHECK(store_pipeline_add(st, "pipe", NULL, pipeline_token) == 0, "pipeline add");
	struct store_path orders = {"fuzz", "shop", "orders"};
	FUZZ_CHECK(store_make_objstore(st, &orders, "\"id\"", true) == 0, "mkstore");
	store_close(st);

	struct http_config cfg;
	http_config_defaults(&cfg);
	cfg.datadir = datadir;
	cfg.listen = "127.0.0.1:0";
	cfg.server_names = "fuzz.example";
	cfg.allow_origins = "https://app.example";
	cfg.max_body = 64 * 1024;
	cfg.threads = 1;
	cfg.timeout_s = 5;
	cfg.keepalive_s = 1;
	cfg.node = "fuzz";
	FUZZ_CHECK(http_prepare(&cfg, &server, err, sizeof(err)) == 0, "%s", err);
	FUZZ_CHECK(http_start(server, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	port = http_port(server);
	snprintf(port_text, sizeof(port_text), "%u", port);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The input with its placeholders replaced. */
static void expand(const uint8_t *data, size_t size, struct buf *out)
{
	static const struct {
		const char *name;
		const char *value;
	} subst[] = {{"@TOKEN@", client_token}, {"@PIPE@", pipeline_token}, {"@PORT@", port_text}};
	for (size_t i = 0; i < size;) {
		bool done = false;
		for (size_t k = 0; k < 3 && !done; k++) {
			size_t n = strlen(subst[k].name);
			if (size - i >= n && memcmp(data + i, subst[k].name, n) == 0) {
				FUZZ_CHECK(buf_append_str(out, subst[k].value) == 0,
				           "out of memory");
				i += n;
				done = true;
			}
		}
		if (!done)
			FUZZ_CHECK(buf_append_char(out, (char)data[i++]) == 0, "out of memory");
	}
}

static bool contains(const uint8_t *data, size_t size, const char *word)
{
	size_t n = strlen(word);
	for (size_t i = 0; i + n <= size; i++)
		if (strncasecmp((const char *)data + i, word, n) == 0)
			return true;
	return false;
}

/* The value of header `name` in the header block head..end, or NULL
 * (copied into `out`). */
static const char *header(const char *head, const char *end, const char *name, char *out,
                          size_t outlen)
{
	size_t n = strlen(name);
	for (const char *line = strstr(head, "\r\n"); line && line < end;
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (h + n < end && strncasecmp(h, name, n) == 0 && h[n] == ':') {
			const char *v = h + n + 1;
			while (*v == ' ')
				v++;
			const char *e = strstr(v, "\r\n");
			size_t len = e ? (size_t)(e - v) : strlen(v);
			if (len >= outlen)
				len = outlen - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return out;
		}
	}
	return NULL;
}

/* The body of a chunked response from `p` into `body`; returns its end. */
static const char *dechunk(const char *p, const char *end, struct buf *body)
{
	while (p < end) {
		char *after = NULL;
		unsigned long n = strtoul(p, &after, 16);
		const char *data = strstr(after, "\r\n");
		if (!data || after == p)
			return end;
		data += 2;
		if (n == 0)
			return data + 2 <= end ? data + 2 : end;
		if ((size_t)(end - data) < n)
			n = (size_t)(end - data);
		buf_append(body, data, n);
		p = data + n + 2;
	}
	return end;
}

/* The end of the first whole final response at p (1xx ones skipped), or
 * NULL while it is not all in; an event stream ends with its headers. */
static const char *response_end(const char *p, const char *end, bool head)
{
	for (;;) {
		const char *head_end = strstr(p, "\r\n\r\n");
		if (!head_end || head_end + 4 > end)
			return NULL;
		const char *body = head_end + 4;
		unsigned status = end - p > 12 ? (unsigned)strtoul(p + 9, NULL, 10) : 0;
		if (status >= 100 && status < 200) {
			p = body;
			continue;
		}
		char value[256];
		if (head || status == 204 || status == 304 ||
		    (header(p, head_end, "Content-Type", value, sizeof(value)) &&
		     strncasecmp(value, "text/event-stream", 17) == 0))
			return body;
		if (header(p, head_end, "Transfer-Encoding", value, sizeof(value))) {
			const char *last = strstr(body, "\r\n0\r\n\r\n");
			if (strncmp(body, "0\r\n\r\n", 5) == 0)
				return body + 5;
			return last && last + 7 <= end ? last + 7 : NULL;
		}
		if (header(p, head_end, "Content-Length", value, sizeof(value))) {
			size_t len = strtoull(value, NULL, 10);
			return (size_t)(end - body) >= len ? body + len : NULL;
		}
		return NULL; /* until the connection ends */
	}
}

/* Sends the request and reads the answer: until the first response is
 * all in, the daemon ends the connection, or nothing came for IDLE_MS (a
 * request not whole: libmicrohttpd waits for the rest, as it takes a
 * client's half close for nothing until its timeout). */
static void exchange(const struct buf *request, struct buf *answer, bool head)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	/* Closed with a reset, not a FIN: a run makes thousands of
	 * connections, which would otherwise sit in TIME_WAIT. */
	struct linger reset = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0, "connect: %s",
	           strerror(errno));
	for (size_t sent = 0; sent < request->len;) {
		ssize_t n = send(fd, request->data + sent, request->len - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the daemon answered early and closed */
		sent += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	int64_t deadline = now_ms() + ANSWER_WITHIN_MS;
	while (!answer->data || !response_end(answer->data, answer->data + answer->len, head)) {
		int64_t left = deadline - now_ms();
		FUZZ_CHECK(left > 0, "no whole answer within %d ms; so far:\n%s", ANSWER_WITHIN_MS,
		           answer->data ? answer->data : "");
		struct pollfd p = {fd, POLLIN, 0};
		int ready = poll(&p, 1, left < IDLE_MS ? (int)left : IDLE_MS);
		if (ready == 0)
			break;
		if (ready < 0)
			continue;
		char chunk[16384];
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n <= 0)
			break;
		FUZZ_CHECK(buf_append(answer, chunk, (size_t)n) == 0, "answer too large");
	}
	close(fd);
}

static void check_error_body(unsigned status, const char *body, size_t len)
{
	json_error_t e;
	json_t *v = json_loadb(body, len, 0, &e);
	FUZZ_CHECK(v && json_is_object(v) && json_object_size(v) == 2 &&
	                   json_is_string(json_object_get(v, "error")) &&
	                   json_is_string(json_object_get(v, "detail")),
	           "%u with a body that is not {error, detail}: %.*s", status, (int)len, body);
	FUZZ_CHECK(len && body[len - 1] == '\n', "%u: the body does not end its line", status);
	json_decref(v);
}

/* Whether a 200 answer is one only a token reaches. */
static bool token_answer(const char *type, const char *body, size_t len)
{
	if (strncasecmp(type, "text/event-stream", 17) == 0 ||
	    strncasecmp(type, "application/x-ndjson", 20) == 0)
		return true;
	if (strncasecmp(type, "application/json", 16) != 0)
		return false;
	json_t *v = json_loadb(body, len, 0, NULL);
	bool token = json_object_get(v, "changes") || json_object_get(v, "results") ||
	             json_object_get(v, "stores");
	json_decref(v);
	return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf request = BUF_INIT(1u << 20), answer = BUF_INIT(64u << 20);
	expand(data, size, &request);
	/* A HEAD answer has a Content-Length but no body: answers after one
	 * cannot be told apart, so only the first is read then. */
	bool head = contains(data, size, "HEAD");
	exchange(&request, &answer, head);
	bool names_us = contains(data, size, "fuzz.example") || contains(data, size, "localhost") ||
	                contains(data, size, "127.0.0.1");
	bool has_token = contains(data, size, "@TOKEN@") || contains(data, size, "@PIPE@");
	const char *p = answer.data ? answer.data : "";
	const char *end = p + answer.len;
	if (p < end)
		FUZZ_CHECK(end - p >= 12 && strncmp(p, "HTTP/1.", 7) == 0,
		           "the answer is no HTTP response:\n%s", p);
	/* Every whole response that came: the first, and those to pipelined
	 * requests that came with it. */
	for (const char *next; p < end && (next = response_end(p, end, head)); p = next) {
		FUZZ_CHECK(end - p >= 12 && strncmp(p, "HTTP/1.", 7) == 0,
		           "an answer is no HTTP response:\n%s", p);
		unsigned status = (unsigned)strtoul(p + 9, NULL, 10);
		FUZZ_CHECK(status >= 100 && status <= 599, "status %u", status);
		const char *head_end = strstr(p, "\r\n\r\n");
		if (status < 200) {
			next = head_end + 4; /* 100 Continue: the answer follows */
			continue;
		}
		char value[256], type[256] = "";
		header(p, head_end, "Content-Type", type, sizeof(type));
		bool ours =
		        header(p, head_end, "X-Content-Type-Options", value, sizeof(value)) != NULL;
		const char *body_start = head_end + 4;
		struct buf body = BUF_INIT(64u << 20);
		if (next > body_start &&
		    header(p, head_end, "Transfer-Encoding", value, sizeof(value)))
			dechunk(body_start, next, &body);
		else if (next > body_start)
			buf_append(&body, body_start, (size_t)(next - body_start));
		if (ours && status >= 400 && !head) {
			FUZZ_CHECK(strncasecmp(type, "application/json", 16) == 0,
			           "%u of type '%s'", status, type);
			check_error_body(status, body.data ? body.data : "", body.len);
		}
		if (ours && status == 401)
			FUZZ_CHECK(header(p, head_end, "WWW-Authenticate", value, sizeof(value)),
			           "401 without WWW-Authenticate");
		if (ours && status == 503)
			FUZZ_CHECK(header(p, head_end, "Retry-After", value, sizeof(value)),
			           "503 without Retry-After");
		if (ours && status == 405)
			FUZZ_CHECK(header(p, head_end, "Allow", value, sizeof(value)),
			           "405 without Allow");
		if (ours && !names_us)
			FUZZ_CHECK(status == 400 || status == 421,
			           "answered %u to a request that names none of its hosts", status);
		if (ours && !has_token && !head)
			FUZZ_CHECK(status >= 300 || !token_answer(type, body.data ? body.data : "",
			                                          body.len),
			           "a token route answered %u (%s) without a token", status, type);
		buf_free(&body);
		if (head)
			break;
	}
	buf_free(&request);
	buf_free(&answer);
	return 0;
}
