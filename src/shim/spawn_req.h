/* A runner.SpawnRequest checked and turned into spawn options: argv, env,
 * cwd, and file actions applied to the child's fds 0-2 (each starts as
 * /dev/null). Used by Spawn and Batch. */
#pragma once
#include "shim/runner.pb-c.h"
#include "sandbox/spawn.h"
#include "shim/shim.h"

typedef struct shim_spawn {
  spawn_opts opts;
  int fds[3]; /* what becomes the child's 0, 1, 2 (owned) */
  const char **env_keys, **env_values;
  char cwd[4096];
} shim_spawn;

/* field: "" or "spawns[3]." to prefix the error's field names. */
int shim_spawn_prepare(const Runner__SpawnRequest *r, const char *field, shim_spawn *ret,
                       rr_err *e);
void shim_spawn_clear(shim_spawn *s);
/* Start it: pid, pidfd and start time in *ret. */
int shim_spawn_start(shim_spawn *s, spawn_result *ret, rr_err *e);
