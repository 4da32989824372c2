/* runctl: resource limit flags of start and exec (--max-cpu, --max-memory,
 * --max-pids, --max-rbps/wbps/riops/wiops and the seed's -max_* spellings),
 * parsed into a runrpc_limits, and the size/rate/CPU formats they use. Pure
 * functions (no output) so unit tests can call them. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "runrpc/client.h"

typedef enum runctl_limit_flag {
  RUNCTL_LIMIT_CPU,           /* --max-cpu 0.5 | 50% | 50000/100000 */
  RUNCTL_LIMIT_CPU_BANDWIDTH, /* -max_cpu_bandwidth 50000 (us out of 100000) */
  RUNCTL_LIMIT_MEMORY,        /* --max-memory 64M, -max_memory_usage */
  RUNCTL_LIMIT_PIDS,          /* --max-pids 10 */
  RUNCTL_LIMIT_RBPS,          /* --max-rbps [DEV=]10M, -max_rbps */
  RUNCTL_LIMIT_WBPS,
  RUNCTL_LIMIT_RIOPS, /* --max-riops [DEV=]100, -max_riops */
  RUNCTL_LIMIT_WIOPS,
} runctl_limit_flag;

/* Limits being collected from flags (zero-initialise); limits.io points
 * into io, whose devices are the copies in devices. */
typedef struct runctl_limits {
  runrpc_limits limits;
  runrpc_io_limit io[RUNRPC_MAX_IO_LIMITS];
  char devices[RUNRPC_MAX_IO_LIMITS][256];
} runctl_limits;

/* Size in bytes: digits with an optional fraction and an optional binary
 * suffix, case-insensitive: B, K/KB/KiB (1024), M, G, T, P (forms alike).
 * 0 or -1 with *why set to a static reason. */
int runctl_parse_size(const char *s, uint64_t *ret, const char **why);
/* A positive integer (counts: pids, iops). */
int runctl_parse_count(const char *s, uint64_t *ret, const char **why);
/* CPU limit: a CPU count ("0.5", "2"), a percentage of one CPU ("50%"), or
 * "QUOTA/PERIOD" in microseconds ("50000/100000"). */
int runctl_parse_cpu(const char *s, uint64_t *ret_quota_us, uint64_t *ret_period_us,
                     const char **why);
/* Apply one flag's value to l; on failure writes a one-line message naming
 * the flag (as spelled in flag_name) and the value into msg. */
int runctl_limits_apply(runctl_limits *l, runctl_limit_flag flag, const char *flag_name,
                        const char *value, char *msg, size_t msgsz);
/* Human form of a byte count: "512 B", "1.5 KiB", "64.0 MiB". */
void runctl_format_bytes(uint64_t n, char *buf, size_t bufsz);
/* Human form of a CPU limit: "0.5 CPU" (and " = 50000/200000 us" when the period is not the
 * default). */
void runctl_format_cpu(uint64_t quota_us, uint64_t period_us, char *buf, size_t bufsz);
