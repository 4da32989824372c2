/* runproc: an OCI runtime with runc's command line, on the project's
 * sandbox engine (see docs/dev/RUNPROC.md). main parses the globals and
 * hands over to one verb of the table; verbs not done yet fail clearly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runproc.h"

static const runproc_command *const commands[] = {
    &runproc_cmd_create,   &runproc_cmd_start,  &runproc_cmd_state,  &runproc_cmd_kill,
    &runproc_cmd_delete,   &runproc_cmd_run,    &runproc_cmd_list,   &runproc_cmd_spec,
    &runproc_cmd_features, &runproc_cmd_pause,  &runproc_cmd_resume, &runproc_cmd_ps,
    &runproc_cmd_exec,     &runproc_cmd_update, &runproc_cmd_events,
};

/* runc's verbs that runproc does not have yet. */
static const char *const not_yet[] = {"checkpoint", "restore"};

static void runproc_help(void) {
  printf("Usage: runproc [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
         "An OCI runtime (runc's command line) on the runrpc sandbox engine.\n\nCommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    printf("  %s\n", commands[i]->usage);
  printf("\nGlobal options:\n"
         "  --root DIR              state directory (default $RUNPROC_STATE_DIR, "
         "else " RUNPROC_DEFAULT_ROOT ")\n"
         "  --log FILE              also write errors (and --debug lines) to FILE\n"
         "  --log-format text|json  format of the log lines (json: containerd's)\n"
         "  --debug                 debug lines in the log\n"
         "  --systemd-cgroup, --rootless  accepted (no effect yet)\n"
         "  --help, --version\n");
}

int main(int argc, char **argv) {
  runproc_ctx ctx = {0};
  const char *env_root = getenv("RUNPROC_STATE_DIR");
  ctx.root = env_root && *env_root ? env_root : RUNPROC_DEFAULT_ROOT;
  signal(SIGPIPE, SIG_IGN);
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *v = NULL, *a = argv[i];
    int r;
    if ((r = runproc_opt(argc, argv, &i, "root", 0, &v)))
      ctx.root = v;
    else if ((r = runproc_opt(argc, argv, &i, "log", 0, &v)))
      ctx.log_path = v;
    else if ((r = runproc_opt(argc, argv, &i, "log-format", 0, &v))) {
      if (v && strcmp(v, "json") != 0 && strcmp(v, "text") != 0)
        return runproc_fail(&ctx, "invalid --log-format \"%s\" (want text or json)", v);
      ctx.log_json = v && strcmp(v, "json") == 0;
    } else if ((r = runproc_opt(argc, argv, &i, "criu", 0, &v)))
      ; /* runc's: no checkpoints here */
    else if (runproc_flag(a, "debug", 0))
      ctx.debug = true;
    else if (runproc_flag(a, "systemd-cgroup", 0))
      ctx.systemd_cgroup = true;
    else if (strcmp(a, "--rootless") == 0 || strncmp(a, "--rootless=", 11) == 0) {
      /* runc's --rootless true|false|auto (bare: true) */
      const char *val = a[10] == '=' ? a + 11 : NULL;
      if (!val && i + 1 < argc &&
          (strcmp(argv[i + 1], "true") == 0 || strcmp(argv[i + 1], "false") == 0 ||
           strcmp(argv[i + 1], "auto") == 0))
        val = argv[++i];
      ctx.rootless = !val || strcmp(val, "true") == 0;
    } else if (runproc_flag(a, "help", 'h')) {
      runproc_help();
      return 0;
    } else if (runproc_flag(a, "version", 'v')) {
      printf("runproc version 0.1.0\nspec: " RUNPROC_OCI_VERSION "\n");
      return 0;
    } else
      return runproc_fail(&ctx, "unknown global option \"%s\"", a);
    if (r < 0)
      return runproc_fail(&ctx, "option \"%s\" needs a value", a);
  }
  if (i >= argc) {
    runproc_help();
    return 1;
  }
  ctx.verb = argv[i];
  for (size_t k = 0; k < sizeof commands / sizeof *commands; k++)
    if (strcmp(commands[k]->name, argv[i]) == 0)
      return commands[k]->run(&ctx, argc - i, argv + i);
  for (size_t k = 0; k < sizeof not_yet / sizeof *not_yet; k++)
    if (strcmp(not_yet[k], argv[i]) == 0)
      return runproc_fail(&ctx, "not implemented yet");
  ctx.verb = NULL;
  return runproc_fail(&ctx, "unknown command \"%s\" (runproc --help lists them)", argv[i]);
}
