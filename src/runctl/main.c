/* runctl: command-line client of rund (see docs/dev/CLI.md). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runctl.h"

#define RUNCTL_DEFAULT_ADDR "unix:/run/runrpc/rund.sock"

static const runctl_command *const commands[] = {
    &runctl_cmd_exec, &runctl_cmd_start,  &runctl_cmd_status, &runctl_cmd_logs,
    &runctl_cmd_wait, &runctl_cmd_signal, &runctl_cmd_stop,   &runctl_cmd_list,
};

static const runctl_command *command_find(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

static void print_main_help(void) {
  printf("Usage: runctl [--addr ADDR] COMMAND [ARGS]\n"
         "\n"
         "Run and manage commands on a rund server.\n"
         "\n"
         "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    printf("  %s\n", commands[i]->usage);
  printf("\n"
         "Options:\n"
         "  --addr ADDR   server address: unix:PATH, HOST:PORT or [V6]:PORT\n"
         "                (default $RUNRPC_ADDR, else " RUNCTL_DEFAULT_ADDR ")\n"
         "  --help        this help; 'runctl help COMMAND' or 'runctl COMMAND --help' for one\n"
         "  --version     print the version\n"
         "\n"
         "DUR is 1.5 (seconds), 500ms, 10s, 2m or 1h.\n"
         "Exit codes: 2 usage error, 1 other failures; exec and wait exit with the\n"
         "command's status (128+N if killed by signal N), or 125 when they fail\n"
         "themselves (126: command not executable, 127: command not found).\n");
}

static int cmd_help(runctl_ctx *ctx, int argc, char **argv) {
  if (argc <= 1) {
    print_main_help();
    return 0;
  }
  if (argc > 2)
    return runctl_usage_error(ctx, "too many arguments");
  const runctl_command *cmd = command_find(argv[1]);
  if (!cmd)
    return runctl_usage_error(ctx, "unknown command \"%s\"", argv[1]);
  runctl_print_help(cmd);
  return 0;
}

int main(int argc, char **argv) {
  /* our own writes report EPIPE; we then die by SIGPIPE on purpose */
  signal(SIGPIPE, SIG_IGN);
  runctl_ctx ctx = {.addr = getenv("RUNRPC_ADDR")};
  if (!ctx.addr || !*ctx.addr)
    ctx.addr = RUNCTL_DEFAULT_ADDR;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--addr") == 0) {
      if (i + 1 >= argc)
        return runctl_usage_error(NULL, "option '--addr' needs a value");
      ctx.addr = argv[++i];
    } else if (strncmp(a, "--addr=", 7) == 0) {
      ctx.addr = a + 7;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      print_main_help();
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("runctl %s\n", runrpc_version());
      return 0;
    } else {
      return runctl_usage_error(NULL, "unknown option '%s'", a);
    }
  }
  if (!*ctx.addr)
    return runctl_usage_error(NULL, "empty --addr");
  if (i >= argc)
    return runctl_usage_error(NULL, "missing command");
  ctx.verb = argv[i];
  if (strcmp(argv[i], "help") == 0)
    return cmd_help(&ctx, argc - i, argv + i);
  const runctl_command *cmd = command_find(argv[i]);
  if (!cmd) {
    ctx.verb = NULL;
    return runctl_usage_error(NULL, "unknown command \"%s\"", argv[i]);
  }
  int rc = cmd->run(&ctx, argc - i, argv + i);
  runrpc_close(ctx.client);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    runrpc_error err = {.code = RUNRPC_UNKNOWN, .sys_errno = errno};
    runctl_die_if_epipe(&err);
    return rc ? rc : RUNCTL_EXIT_FAILURE;
  }
  return rc;
}
