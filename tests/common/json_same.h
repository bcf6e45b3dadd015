/* json_same.h - what the unit tests and the fuzz targets mean by "the same
 * JSON value": the same to JavaScript, whose numbers are all doubles (the
 * writers print 2.0 as 2 and 1e19 as 10000000000000000000, as
 * JSON.stringify does), so two numbers are equal when their doubles are;
 * everything else as jansson's json_equal. Header only: each test program
 * includes it as "../common/json_same.h".
 */
#ifndef IDBMOUNT_TESTS_JSON_SAME_H
#define IDBMOUNT_TESTS_JSON_SAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

static inline bool json_same_to_javascript(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!json_same_to_javascript(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	if (json_is_object(a)) {
		if (json_object_size(a) != json_object_size(b))
			return false;
		const char *k;
		json_t *va;
		json_object_foreach((json_t *)a, k, va)
		{
			const json_t *vb = json_object_get(b, k);
			if (!vb || !json_same_to_javascript(va, vb))
				return false;
		}
		return true;
	}
	return json_equal(a, b);
}

#endif
