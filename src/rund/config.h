/* rund's config file (rund.conf): KEY = VALUE lines, parsed with inih. */
#pragma once
#include <stdbool.h>

#include "common/err.h"

#define RUND_DEFAULT_CONFIG "/etc/runrpc/rund.conf"

/* One KEY = VALUE of the file; fails with the reason alone (the reader adds
 * FILE:LINE). */
typedef int rund_config_fn(void *data, const char *key, const char *value, rr_err *e);

/* Call fn for each pair of the file at path, in order: 1 when read, 0 when
 * it is missing and missing_ok, else -1 with "PATH:LINE: reason" (or why the
 * file cannot be read). */
int rund_config_read(const char *path, bool missing_ok, rund_config_fn *fn, void *data, rr_err *e);
