#include "jobs/signame.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int signame_check_number(int sig, const char *field, rr_err *e) {
  if (sig < 1 || sig > SIGNAME_MAX_NUMBER || sig > SIGRTMAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s %d is not a signal (want 1..%d)", field, sig,
                      SIGRTMAX < SIGNAME_MAX_NUMBER ? SIGRTMAX : SIGNAME_MAX_NUMBER);
  return 0;
}

static int signame_rt(const char *s, int *ret) {
  int base;
  if (strncasecmp(s, "RTMIN", 5) == 0)
    base = SIGRTMIN;
  else if (strncasecmp(s, "RTMAX", 5) == 0)
    base = SIGRTMAX;
  else
    return -1;
  s += 5;
  if (!*s) {
    *ret = base;
    return 0;
  }
  if ((*s != '+' && *s != '-') || !isdigit((unsigned char)s[1]))
    return -1;
  char *end;
  long off = strtol(s + 1, &end, 10);
  if (*end || off > 64)
    return -1;
  *ret = base + (*s == '+' ? (int)off : -(int)off);
  return (*ret >= SIGRTMIN && *ret <= SIGRTMAX) ? 0 : -1;
}

int signame_parse(const char *name, const char *field, int *ret, rr_err *e) {
  if (!name || !*name)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s is empty: want a signal name or number", field);
  if (isdigit((unsigned char)name[0])) {
    char *end;
    long v = strtol(name, &end, 10);
    if (*end || v > SIGNAME_MAX_NUMBER)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not a signal", field, name);
    if (signame_check_number((int)v, field, e) < 0)
      return -1;
    *ret = (int)v;
    return 0;
  }
  const char *s = strncasecmp(name, "SIG", 3) == 0 ? name + 3 : name;
  if (signame_rt(s, ret) == 0)
    return 0;
  for (int sig = 1; sig < SIGRTMIN; sig++) {
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev && strcasecmp(abbrev, s) == 0) {
      *ret = sig;
      return 0;
    }
  }
  return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not a known signal name", field, name);
}

const char *signame_name(int sig, char *buf, unsigned long size) {
  const char *abbrev = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;
  if (abbrev)
    snprintf(buf, size, "%s", abbrev);
  else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
    snprintf(buf, size, "RTMIN+%d", sig - SIGRTMIN);
  else
    snprintf(buf, size, "?");
  return buf;
}
