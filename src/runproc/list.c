/* runproc list [--format table|json] [-q]: the containers of ROOT. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "runproc.h"

static int cmd_list(runproc_ctx *ctx, int argc, char **argv) {
  const char *format = "table";
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int r = runproc_opt(argc, argv, &i, "format", 'f', &v);
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", argv[i]);
    if (r > 0)
      format = v;
    else if (runproc_flag(argv[i], "quiet", 'q'))
      quiet = true;
    else
      return runproc_fail(ctx, "unexpected argument \"%s\"", argv[i]);
  }
  bool json = strcmp(format, "json") == 0;
  if (!json && strcmp(format, "table") != 0)
    return runproc_fail(ctx, "invalid --format \"%s\" (want table or json)", format);
  json_object *all = json_object_new_array();
  DIR *d = opendir(ctx->root);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    runproc_container c;
    rr_err e = {0};
    if (runproc_container_load(ctx, de->d_name, &c, &e) < 0)
      continue; /* being created or deleted */
    json_object_array_add(all, runproc_container_state_json(&c));
    runproc_container_free(&c);
  }
  if (d)
    closedir(d);
  size_t n = json_object_array_length(all);
  if (json) {
    printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
  } else if (!quiet) {
    printf("%-20s %-8s %-10s %-40s %-32s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED",
           "OWNER");
  }
  for (size_t i = 0; i < n && !json; i++) {
    json_object *o = json_object_array_get_idx(all, i), *v;
#define F(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "")
    if (quiet)
      printf("%s\n", F("id"));
    else
      printf("%-20s %-8s %-10s %-40s %-32s %s\n", F("id"), F("pid"), F("status"), F("bundle"),
             F("created"), F("owner"));
#undef F
  }
  json_object_put(all);
  return 0;
}

const runproc_command runproc_cmd_list = {"list", "list [--format table|json] [-q]", cmd_list};
