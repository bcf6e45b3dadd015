/* curl_client.c - the libcurl sinks' shared request code (curl_client.h). */
#include "curl_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BODY_CAP (64u * 1024) /* error bodies are short */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int curl_client_init(struct curl_client *c, char *err, size_t err_len)
{
	atomic_init(&c->cancelled, false);
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(err, err_len, "libcurl: %s", curl_easy_strerror(global_rc));
		return -EIO;
	}
	c->body_max = BODY_CAP;
	c->curl = curl_easy_init();
	if (!c->curl) {
		snprintf(err, err_len, "libcurl: cannot make a handle");
		return -ENOMEM;
	}
	return 0;
}

void curl_client_cleanup(struct curl_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

void curl_client_cancel(struct curl_client *c)
{
	atomic_store(&c->cancelled, true);
}

/* libcurl calls this about once a second and on every transfer of data:
 * a nonzero answer aborts the transfer. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	struct curl_client *c = user;
	return atomic_load(&c->cancelled) ? 1 : 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct buf *b = user;
	size_t len = size * n;
	size_t room = b->max - b->len;
	/* Past the cap the rest is dropped, not an error. */
	buf_append(b, data, len < room ? len : room);
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
	struct curl_response *r = user;
	size_t len = size * n;
	if (len > 9 && strncasecmp(data, "Location:", 9) == 0) {
		size_t start = 9;
		while (start < len && (data[start] == ' ' || data[start] == '\t'))
			start++;
		size_t end = len;
		while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n'))
			end--;
		size_t copy = end - start < sizeof(r->location) - 1 ? end - start
		                                                    : sizeof(r->location) - 1;
		memcpy(r->location, data + start, copy);
		r->location[copy] = '\0';
	}
	return len;
}

void curl_client_request(struct curl_client *c, const char *method, const char *url,
                         struct curl_slist *headers, const char *body, size_t len,
                         struct curl_response *out)
{
	memset(out, 0, sizeof(*out));
	buf_init(&out->body, c->body_max);
	CURL *h = c->curl;
	curl_easy_reset(h);
	c->errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->verify ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->verify ? 2L : 0L);
	if (c->ca_file && c->ca_file[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
		/* An explicit empty body: Content-Length: 0. */
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	if (headers)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	out->code = curl_easy_perform(h);
	if (out->code == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	} else {
		snprintf(out->error, sizeof(out->error), "%s",
		         c->errbuf[0] ? c->errbuf : curl_easy_strerror(out->code));
	}
}

void curl_response_free(struct curl_response *r)
{
	buf_free(&r->body);
}

enum sink_result curl_client_classify(const struct curl_response *r, const char *what, char *msg,
                                      size_t msg_len)
{
	if (r->code != CURLE_OK) {
		snprintf(msg, msg_len, "%s: %s", what, r->error);
		return SINK_RETRY;
	}
	if (r->status >= 200 && r->status < 300)
		return SINK_OK;
	/* The start of the body, on one line. */
	char excerpt[200];
	size_t n = r->body.len < sizeof(excerpt) - 1 ? r->body.len : sizeof(excerpt) - 1;
	for (size_t i = 0; i < n; i++) {
		char ch = r->body.data[i];
		excerpt[i] = ch == '\n' || ch == '\r' || ch == '\t' ? ' ' : ch;
	}
	excerpt[n] = '\0';
	snprintf(msg, msg_len, "%s: HTTP %ld%s%s", what, r->status, n ? ": " : "", excerpt);
	if (r->status == 408 || r->status == 429 || r->status >= 500)
		return SINK_RETRY;
	return SINK_ERROR;
}

int curl_client_escape(struct buf *out, const char *text, bool component)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p && !rc; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		             (*p >= '0' && *p <= '9') || strchr("-._~", *p) ||
		             (*p == '/' && !component);
		if (plain) {
			rc = buf_append_char(out, (char)*p);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			rc = buf_append(out, e, 3);
		}
	}
	return rc;
}
