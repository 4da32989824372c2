#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void err_vset(rr_err *e, int code, int errnum, const char *fmt, va_list ap) {
  if (!e)
    return;
  /* a full disk or quota, or no fd left, is a resource running out, not a
   * fault of ours */
  if (code == RR_INTERNAL &&
      (errnum == ENOSPC || errnum == EDQUOT || errnum == EMFILE || errnum == ENFILE))
    code = RR_RESOURCE_EXHAUSTED;
  e->code = code;
  e->sys_errno = errnum;
  int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  if (n < 0)
    e->msg[0] = '\0';
  if (errnum && n >= 0 && (size_t)n < sizeof e->msg) {
    char buf[128];
    snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror_r(errnum, buf, sizeof buf));
  }
}

int rr_err_set(rr_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err_vset(e, code, 0, fmt, ap);
  va_end(ap);
  return -1;
}

int rr_err_sys(rr_err *e, int code, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err_vset(e, code, errnum, fmt, ap);
  va_end(ap);
  return -1;
}

int rr_err_wrap(rr_err *e, const char *fmt, ...) {
  if (!e)
    return -1;
  char prefix[RR_ERR_MSG_MAX], old[RR_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof old);
  size_t n = strnlen(prefix, sizeof e->msg - 1);
  memcpy(e->msg, prefix, n);
  if (n + 2 < sizeof e->msg) {
    memcpy(e->msg + n, ": ", 2);
    n += 2;
  }
  size_t m = strnlen(old, sizeof e->msg - 1 - n);
  memcpy(e->msg + n, old, m);
  e->msg[n + m] = '\0';
  if (e->code == RR_OK)
    e->code = RR_UNKNOWN;
  return -1;
}

void rr_err_clear(rr_err *e) {
  if (!e)
    return;
  e->code = RR_OK;
  e->sys_errno = 0;
  e->msg[0] = '\0';
}

const char *rr_code_name(int code) {
  static const char *const names[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
    return "UNKNOWN";
  return names[code];
}
