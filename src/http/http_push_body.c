/* http_push_body.c - reading a push's body without parsing it whole (see
 * http_push_body.h).
 */
#include "http_push_body.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *http_parse_object(const char *text, size_t len, char *why, size_t why_len)
{
	char perr[200];
	json_t *doc = json_text_parse(text, len, perr, sizeof(perr));
	if (!doc) {
		snprintf(why, why_len, "malformed JSON: %s", perr);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		snprintf(why, why_len, "the body must be a JSON object");
		return NULL;
	}
	return doc;
}

void http_push_body_free(struct http_push_body *b)
{
	json_decref(b->doc);
	if (b->owned)
		for (size_t i = 0; i < b->count; i++)
			free(b->owned[i]);
	free(b->owned);
	free(b->mutations);
	memset(b, 0, sizeof(*b));
}

/* For a body the splitter does not take but jansson does: the texts are
 * written anew from the parsed mutations. */
static int push_body_from_doc(struct http_push_body *b)
{
	json_t *list = json_object_get(b->doc, "mutations");
	if (!json_is_array(list))
		return 0;
	size_t n = json_array_size(list);
	b->mutations = calloc(n ? n : 1, sizeof(*b->mutations));
	b->owned = calloc(n ? n : 1, sizeof(*b->owned));
	if (!b->mutations || !b->owned)
		return -ENOMEM;
	for (b->count = 0; b->count < n; b->count++) {
		char *text = json_dumps(json_array_get(list, b->count), JSON_ENCODE_ANY);
		if (!text)
			return -ENOMEM;
		b->owned[b->count] = text;
		b->mutations[b->count] = (struct json_span){text, strlen(text)};
	}
	json_object_del(b->doc, "mutations");
	return 0;
}

/* Splits the body into its members without parsing the mutations. Returns
 * 0, or -EINVAL when it does not split into members that parse (jansson
 * then decides), -ENOMEM. */
static int push_body_split(const char *text, size_t len, struct http_push_body *b)
{
	struct json_member *members = NULL;
	size_t n = 0, split_at = 0;
	struct json_span *split = NULL;
	size_t nsplit = 0;
	int rc = json_text_members_splitting(text, len, "mutations", &members, &n, &split_at,
	                                     &split, &nsplit);
	b->doc = rc ? NULL : json_object();
	if (!rc && !b->doc)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < n; i++) {
		json_t *name = json_text_parse(members[i].name.text, members[i].name.len, NULL, 0);
		/* A name holding U+0000, which jansson refuses in a name, must
		 * not be taken for the name cut there ("mutations\u0000"). */
		if (!json_text_c_string(name)) {
			json_decref(name);
			rc = -EINVAL;
			break;
		}
		bool mutations = strcmp(json_string_value(name), "mutations") == 0;
		bool list = mutations && members[i].value.text[0] == '[';
		if (mutations && b->mutations) {
			/* Given again after an array, whose texts would never be
			 * parsed: jansson reads the body (the last one counts),
			 * or says what is wrong with the first. */
			rc = -EINVAL;
		} else if (list) {
			/* Replaces a "mutations" that was no array, as jansson does. */
			json_object_del(b->doc, "mutations");
			if (split && i == split_at) {
				b->mutations = split; /* split along with the body */
				b->count = nsplit;
				split = NULL;
			} else {
				rc = json_text_elements(members[i].value, &b->mutations, &b->count);
			}
		} else {
			json_t *value = json_text_parse(members[i].value.text, members[i].value.len,
			                                NULL, 0);
			rc = value ? 0 : -EINVAL;
			if (!rc)
				rc = json_object_set_new(b->doc, json_string_value(name), value)
				             ? -ENOMEM
				             : 0;
			else
				json_decref(value);
		}
		json_decref(name);
	}
	free(members);
	free(split);
	return rc;
}

int http_push_body_read(const char *text, size_t len, struct http_push_body *b, char *why,
                        size_t why_len)
{
	memset(b, 0, sizeof(*b));
	int rc = push_body_split(text, len, b);
	if (rc != -EINVAL)
		return rc;
	/* Not split: jansson says why it is no JSON object, or takes it. */
	http_push_body_free(b);
	b->doc = http_parse_object(text, len, why, why_len);
	if (!b->doc)
		return -EINVAL;
	return push_body_from_doc(b);
}

/* Reads "line L column C: REST", json_text_parse's wording of a reason.
 * Returns false when `why` is not worded so. */
static bool reason_position(const char *why, long *line, long *column, const char **rest)
{
	if (strncmp(why, "line ", 5) != 0)
		return false;
	char *end = NULL;
	*line = strtol(why + 5, &end, 10);
	if (strncmp(end, " column ", 8) != 0)
		return false;
	*column = strtol(end + 8, &end, 10);
	if (strncmp(end, ": ", 2) != 0)
		return false;
	*rest = end + 2;
	return true;
}

void http_push_body_malformed(const char *text, const struct http_push_body *b, size_t index,
                              const char *mutation_why, char *why, size_t why_len)
{
	long line = 0, column = 0;
	const char *rest = NULL;
	const char *start = b->mutations[index].text;
	bool in_body = !b->owned && start >= text;
	if (!in_body || !reason_position(mutation_why, &line, &column, &rest) || line < 1) {
		snprintf(why, why_len, "malformed JSON: mutation %zu: %s", index, mutation_why);
		return;
	}
	/* jansson counts lines from 1 and, within a line, characters (UTF-8
	 * lead bytes, not NUL) up to and including the one it stopped at. */
	long lines_before = 0, columns_before = 0;
	for (const char *c = text; c < start; c++) {
		if (*c == '\n') {
			lines_before++;
			columns_before = 0;
		} else if ((*c && (unsigned char)*c < 0x80) ||
		           ((unsigned char)*c >= 0xC2 && (unsigned char)*c <= 0xF4)) {
			columns_before++;
		}
	}
	if (line == 1)
		column += columns_before;
	/* A text that holds more than one value stops jansson where the body's
	 * reading stops too, but there the array goes on: ',' or ']' were
	 * wanted, which jansson words as "']' expected". */
	const char *trailing = "end of file expected";
	const char *in_array = "";
	if (strncmp(rest, trailing, strlen(trailing)) == 0) {
		rest += strlen(trailing);
		in_array = "']' expected";
	}
	snprintf(why, why_len, "malformed JSON: line %ld column %ld: %s%s", line + lines_before,
	         column, in_array, rest);
}
