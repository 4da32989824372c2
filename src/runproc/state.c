/* runproc state ID: runc's state JSON, with the status checked now. */
#include <stdio.h>

#include "runproc.h"

static int cmd_state(runproc_ctx *ctx, int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-')
    return runproc_fail(ctx, "usage: runproc state ID");
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, argv[1], &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  json_object *o = runproc_container_state_json(&c);
  printf("%s\n",
         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
  runproc_container_free(&c);
  return 0;
}

const runproc_command runproc_cmd_state = {"state", "state ID", cmd_state};
