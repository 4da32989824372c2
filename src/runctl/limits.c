/* runctl: parsing of the resource limit flags (see limits.h, docs/dev/CLI.md). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "limits.h"

#define LIMITS_MAX_VALUE ((uint64_t)INT64_MAX) /* cgroup v1 files are signed 64-bit */
#define LIMITS_MAX_CPUS 100000u
#define LIMITS_MIN_QUOTA_US 1000u
#define LIMITS_MIN_PERIOD_US 1000u
#define LIMITS_MAX_PERIOD_US 1000000u
#define LIMITS_MIN_MEMORY (1024u * 1024u)

typedef unsigned __int128 u128;

/* Non-negative decimal "12", "0.5", ".5" at s, times mult, rounded down;
 * *end after it; *exact false if digits were lost. */
static int decimal_scaled(const char *s, uint64_t mult, const char **end, uint64_t *ret,
                          bool *exact, const char **why) {
  if (*s == '-')
    return *why = "negative", -1;
  u128 ip = 0, frac = 0, scale = 1;
  bool digits = false, big = false;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++, digits = true) {
    ip = ip * 10 + (u128)(*p - '0');
    if (ip > LIMITS_MAX_VALUE)
      big = true, ip = LIMITS_MAX_VALUE; /* keep scanning to report "too large", not junk */
  }
  bool lost = false;
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++, digits = true) {
      if (scale < (u128)1000000000000000000u)
        frac = frac * 10 + (u128)(*p - '0'), scale *= 10;
      else if (*p != '0')
        lost = true;
    }
  }
  if (!digits)
    return *why = "not a number", -1;
  u128 v = ip * mult + frac * mult / scale;
  if (big || v > LIMITS_MAX_VALUE)
    return *why = "too large", -1;
  *exact = !lost && (frac * mult) % scale == 0;
  *end = p;
  *ret = (uint64_t)v;
  return 0;
}

int runctl_parse_size(const char *s, uint64_t *ret, const char **why) {
  static const struct {
    char letter;
    unsigned shift;
  } units[] = {{'b', 0}, {'k', 10}, {'m', 20}, {'g', 30}, {'t', 40}, {'p', 50}};
  if (!*s)
    return *why = "empty value", -1;
  /* find the suffix first: the multiplier is needed to scale a fraction exactly */
  const char *suf = s;
  while ((*suf >= '0' && *suf <= '9') || *suf == '.' || *suf == '-')
    suf++;
  uint64_t mult = 0;
  if (!*suf) {
    mult = 1;
  } else {
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      if ((*suf | 0x20) != units[i].letter)
        continue;
      const char *rest = suf + 1;
      if (units[i].shift == 0
              ? !*rest
              : (!*rest || strcasecmp(rest, "b") == 0 || strcasecmp(rest, "ib") == 0))
        mult = (uint64_t)1 << units[i].shift;
    }
  }
  if (!mult) {
    if (*s == '-')
      return *why = "negative", -1;
    if (suf == s)
      return *why = "not a number (want bytes, or a number with K, M, G, T, P)", -1;
    return *why = "unknown suffix (want bytes, or K, M, G, T, P; binary: K = KiB = 1024)", -1;
  }
  const char *end;
  bool exact;
  uint64_t v;
  if (decimal_scaled(s, mult, &end, &v, &exact, why) < 0)
    return -1;
  if (end != suf)
    return *why = "not a number", -1;
  if (mult == 1 && !exact)
    return *why = "fraction of a byte", -1;
  if (v == 0)
    return *why = "must be more than 0", -1;
  *ret = v;
  return 0;
}

int runctl_parse_count(const char *s, uint64_t *ret, const char **why) {
  if (!*s)
    return *why = "empty value", -1;
  const char *end;
  bool exact;
  uint64_t v;
  if (decimal_scaled(s, 1, &end, &v, &exact, why) < 0)
    return -1;
  if (*end || strchr(s, '.'))
    return *why = "not a whole number", -1;
  if (v == 0)
    return *why = "must be more than 0", -1;
  *ret = v;
  return 0;
}

int runctl_parse_cpu(const char *s, uint64_t *ret_quota, uint64_t *ret_period, const char **why) {
  if (!*s)
    return *why = "empty value", -1;
  uint64_t quota, period = RUNRPC_DEFAULT_CPU_PERIOD_US;
  const char *slash = strchr(s, '/');
  if (slash) {
    char q[32];
    size_t ql = (size_t)(slash - s);
    if (ql >= sizeof q)
      return *why = "too large", -1;
    memcpy(q, s, ql);
    q[ql] = '\0';
    if (runctl_parse_count(q, &quota, why) < 0 || runctl_parse_count(slash + 1, &period, why) < 0)
      return -1;
    if (period < LIMITS_MIN_PERIOD_US || period > LIMITS_MAX_PERIOD_US)
      return *why = "period must be 1000..1000000 us", -1;
  } else {
    size_t len = strlen(s);
    bool pct = s[len - 1] == '%';
    const char *end;
    bool exact;
    /* a count of CPUs is quota per 100000 us; a percent of one CPU per 1000 us */
    if (decimal_scaled(s, pct ? period / 100 : period, &end, &quota, &exact, why) < 0)
      return -1;
    if (end != s + len - (pct ? 1 : 0))
      return *why = "not a number (want CPUs like 0.5, a percentage like 50%, or QUOTA/PERIOD "
                    "in us like 50000/100000)",
             -1;
    if (quota == 0)
      return *why = "must be more than 0", -1;
  }
  if (quota < LIMITS_MIN_QUOTA_US)
    return *why = "less than 1000 us of CPU time per period", -1;
  if (quota / period >= LIMITS_MAX_CPUS)
    return *why = "too large", -1;
  *ret_quota = quota;
  *ret_period = period;
  return 0;
}

/* The io entry for dev (a copy of [dev, dev+len)), added if new. */
static runrpc_io_limit *limits_io_entry(runctl_limits *l, const char *dev, size_t len,
                                        const char **why) {
  for (size_t i = 0; i < l->limits.nio; i++)
    if (strlen(l->io[i].device) == len && strncmp(l->io[i].device, dev, len) == 0)
      return &l->io[i];
  if (l->limits.nio == RUNRPC_MAX_IO_LIMITS)
    return *why = "more than 16 devices", NULL;
  if (len >= sizeof l->devices[0])
    return *why = "device name too long", NULL;
  size_t i = l->limits.nio++;
  memcpy(l->devices[i], dev, len);
  l->devices[i][len] = '\0';
  l->io[i] = (runrpc_io_limit){.device = l->devices[i]};
  l->limits.io = l->io;
  return &l->io[i];
}

static int limits_apply_io(runctl_limits *l, runctl_limit_flag flag, const char *value,
                           const char **why) {
  const char *eq = strrchr(value, '=');
  const char *dev = value, *rate = eq ? eq + 1 : value;
  size_t devlen = eq ? (size_t)(eq - value) : 0;
  if (eq && devlen == 0)
    return *why = "empty device before '=' (want DEV=RATE, e.g. /dev/sda=10M or 8:0=10M)", -1;
  uint64_t v;
  if (flag == RUNCTL_LIMIT_RBPS || flag == RUNCTL_LIMIT_WBPS) {
    char buf[64];
    size_t n = strlen(rate);
    if (n >= 2 && strcasecmp(rate + n - 2, "/s") == 0) /* "10M/s" reads naturally */
      n -= 2;
    if (n >= sizeof buf)
      return *why = "too large", -1;
    memcpy(buf, rate, n);
    buf[n] = '\0';
    if (runctl_parse_size(buf, &v, why) < 0)
      return -1;
  } else if (runctl_parse_count(rate, &v, why) < 0) {
    return -1;
  }
  runrpc_io_limit *io = limits_io_entry(l, dev, devlen, why);
  if (!io)
    return -1;
  if (flag == RUNCTL_LIMIT_RBPS)
    io->rbps = v;
  else if (flag == RUNCTL_LIMIT_WBPS)
    io->wbps = v;
  else if (flag == RUNCTL_LIMIT_RIOPS)
    io->riops = v;
  else
    io->wiops = v;
  return 0;
}

int runctl_limits_apply(runctl_limits *l, runctl_limit_flag flag, const char *flag_name,
                        const char *value, char *msg, size_t msgsz) {
  const char *why = NULL;
  uint64_t v, period;
  runrpc_limits *lim = &l->limits;
  int rc = -1;
  switch (flag) {
  case RUNCTL_LIMIT_CPU:
    rc = runctl_parse_cpu(value, &v, &period, &why);
    if (rc == 0)
      lim->has_cpu = true, lim->quota_us = v, lim->period_us = period;
    break;
  case RUNCTL_LIMIT_CPU_BANDWIDTH: /* the seed's unit: us of CPU per 100000 us */
    rc = runctl_parse_count(value, &v, &why);
    if (rc == 0 && v < LIMITS_MIN_QUOTA_US)
      rc = -1, why = "less than 1000 us of CPU time per 100000 us";
    else if (rc == 0 && v / RUNRPC_DEFAULT_CPU_PERIOD_US >= LIMITS_MAX_CPUS)
      rc = -1, why = "too large";
    if (rc == 0)
      lim->has_cpu = true, lim->quota_us = v, lim->period_us = RUNRPC_DEFAULT_CPU_PERIOD_US;
    break;
  case RUNCTL_LIMIT_MEMORY:
    rc = runctl_parse_size(value, &v, &why);
    if (rc == 0 && v < LIMITS_MIN_MEMORY)
      rc = -1, why = "less than 1 MiB";
    if (rc == 0)
      lim->has_memory_max = true, lim->memory_max = v;
    break;
  case RUNCTL_LIMIT_PIDS:
    rc = runctl_parse_count(value, &v, &why);
    if (rc == 0)
      lim->has_pids_max = true, lim->pids_max = v;
    break;
  case RUNCTL_LIMIT_RBPS:
  case RUNCTL_LIMIT_WBPS:
  case RUNCTL_LIMIT_RIOPS:
  case RUNCTL_LIMIT_WIOPS:
    rc = limits_apply_io(l, flag, value, &why);
    break;
  }
  if (rc < 0)
    snprintf(msg, msgsz, "invalid %s \"%.200s\": %s", flag_name, value,
             why ? why : "invalid value");
  return rc;
}

void runctl_format_bytes(uint64_t n, char *buf, size_t bufsz) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (n < 1024) {
    snprintf(buf, bufsz, "%llu B", (unsigned long long)n);
    return;
  }
  double v = (double)n / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0])
    v /= 1024, u++;
  snprintf(buf, bufsz, "%.1f %s", v, units[u]);
}

void runctl_format_cpu(uint64_t quota_us, uint64_t period_us, char *buf, size_t bufsz) {
  if (period_us == 0)
    period_us = RUNRPC_DEFAULT_CPU_PERIOD_US;
  double cpus = (double)quota_us / (double)period_us;
  if (period_us == RUNRPC_DEFAULT_CPU_PERIOD_US)
    snprintf(buf, bufsz, "%.4g CPU", cpus);
  else
    snprintf(buf, bufsz, "%.4g CPU = %llu/%llu us", cpus, (unsigned long long)quota_us,
             (unsigned long long)period_us);
}
