/* --systemd-cgroup (systemd.c): the scope systemd makes for a container
 * over D-Bus, or the cgroupfs path it would give it where nobody asks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "sandbox/cgroup.h"

typedef enum runproc_prop_kind {
  RUNPROC_PROP_STRING,
  RUNPROC_PROP_BOOL,
  RUNPROC_PROP_U64,
  RUNPROC_PROP_PIDS, /* "au" with the one pid in u */
} runproc_prop_kind;

/* One property of StartTransientUnit's a(sv). */
typedef struct runproc_unit_prop {
  const char *name;
  runproc_prop_kind kind;
  const char *s;
  uint64_t u;
} runproc_unit_prop;

#define RUNPROC_SCOPE_MAX_PROPS 10

/* "slice:prefix:name" as systemd's slice ("system.slice" when empty) and
 * unit ("prefix-name.scope"; name as it is when prefix is empty). */
int runproc_systemd_names(const char *spec, char *slice, size_t slice_len, char *unit,
                          size_t unit_len, rr_err *e);
/* The scope's properties, as runc's systemd driver sets them: Description,
 * Slice, PIDs, Delegate, DefaultDependencies=no, and the limits l sets
 * (MemoryMax, or MemoryLimit on v1; CPUQuotaPerSecUSec rounded up to
 * 10 ms and CPUQuotaPeriodUSec; TasksMax). Fills out (at least
 * RUNPROC_SCOPE_MAX_PROPS); returns how many. */
size_t runproc_scope_properties(const char *slice, const char *description, const cg_limits *l,
                                bool v2, uint32_t pid, runproc_unit_prop *out);
/* StartTransientUnit(unit, "fail", props) on the system bus and wait for
 * its job: 0 made; 1 when there is no bus, no systemd on it or no sd-bus
 * in this build (e says which: the caller makes the path itself); -1 when
 * systemd refused or failed (e). */
int runproc_systemd_start_scope(const char *unit, const runproc_unit_prop *props, size_t n,
                                rr_err *e);
struct runproc_ctx;
/* create's part: the scope of spec with us in it (the container's first
 * process inherits it): 0 and *ret_saved (our cgroups before, for
 * runproc_systemd_leave); 1 when nobody can be asked (said once in the
 * log: the caller makes the path); -1 (e) when systemd refused. */
int runproc_systemd_scope(struct runproc_ctx *ctx, const char *id, const char *spec,
                          const cg_limits *l, char **ret_saved, rr_err *e);
/* Back into the cgroups saved (best effort: a foreground run must not
 * stay in its container's scope). */
void runproc_systemd_leave(const char *saved);
