/* rund.conf: KEY = VALUE lines read with inih (libinih, Debian's INI parser);
 * this file only adds line numbers, refuses sections and overlong lines, and
 * hands each pair to the caller. What a key means is opts.c's business. */
#include "rund/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define RUND_CONFIG_MAX_LINE 4096

typedef struct config_read {
  FILE *f;
  const char *path;
  unsigned line; /* of the last line handed to inih */
  bool failed;   /* e holds the first error */
  rund_config_fn *fn;
  void *data;
  rr_err *e;
} config_read;

/* fgets for inih, counting lines; a section or an overlong line is an error
 * (EOF for inih: nothing after it is read). */
static char *config_reader(char *buf, int n, void *stream) {
  config_read *r = stream;
  if (r->failed || !fgets(buf, n, r->f))
    return NULL;
  r->line++;
  size_t len = strlen(buf);
  if (len && buf[len - 1] != '\n' && !feof(r->f)) {
    rr_err_set(r->e, RR_INVALID_ARGUMENT, "%s:%u: line longer than %d bytes", r->path, r->line,
               RUND_CONFIG_MAX_LINE - 3);
    r->failed = true;
    return NULL;
  }
  if (memchr(buf, '\0', len + 1) != buf + len) {
    rr_err_set(r->e, RR_INVALID_ARGUMENT, "%s:%u: NUL byte in the line", r->path, r->line);
    r->failed = true;
    return NULL;
  }
  const char *p = buf + strspn(buf, " \t");
  if (*p == '[') {
    rr_err_set(r->e, RR_INVALID_ARGUMENT, "%s:%u: sections are not used: write KEY = VALUE lines",
               r->path, r->line);
    r->failed = true;
    return NULL;
  }
  return buf;
}

static int config_handler(void *user, const char *section, const char *name, const char *value) {
  (void)section; /* always "": the reader refuses section lines */
  config_read *r = user;
  if (r->failed)
    return 0;
  rr_err ke = {0};
  if (r->fn(r->data, name, value, &ke) < 0) {
    rr_err_set(r->e, ke.code ? ke.code : RR_INVALID_ARGUMENT, "%s:%u: %s", r->path, r->line,
               ke.msg);
    r->failed = true;
    return 0;
  }
  return 1;
}

int rund_config_read(const char *path, bool missing_ok, rund_config_fn *fn, void *data, rr_err *e) {
  FILE *f = fopen(path, "re");
  if (!f) {
    if (missing_ok && errno == ENOENT)
      return 0;
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot read config file \"%s\"", path);
  }
  /* inih's run-time settings (Debian builds them as variables): one value
   * per line, no continuation lines, stop at the first error */
  ini_allow_multiline = false;
  ini_stop_on_first_error = true;
  ini_allow_no_value = false;
  ini_use_stack = false;
  ini_allow_realloc = false;
  ini_max_line = RUND_CONFIG_MAX_LINE;
  config_read r = {.f = f, .path = path, .fn = fn, .data = data, .e = e};
  int rc = ini_parse_stream(config_reader, &r, config_handler, &r);
  bool read_error = ferror(f);
  fclose(f);
  if (r.failed)
    return -1;
  if (read_error)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "cannot read config file \"%s\": read error",
                      path);
  if (rc == -2)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  if (rc != 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s:%d: not KEY = VALUE", path, rc);
  return 1;
}
