/* The flags every `rund NOUN VERB` subcommand shares. */
#include <getopt.h>
#include <stdio.h>

#include "rund/opts.h"

int rund_bad_flag(const char *help, const char *fmt, const char *arg) {
  fprintf(stderr, "rund: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see %s)\n", help);
  return 2;
}

int rund_subcmd_flags(int argc, char **argv, const char *path_flag, const char **path,
                      const char **state, void (*usage)(FILE *), const char *help,
                      const char *verbs) {
  const struct option longs[] = {{path_flag, required_argument, NULL, 'p'},
                                 {"state-dir", required_argument, NULL, 's'},
                                 {"help", no_argument, NULL, 'h'},
                                 {NULL, 0, NULL, 0}};
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    switch (c) {
    case 'p':
      *path = optarg;
      break;
    case 's':
      *state = optarg;
      break;
    case 'h':
      usage(stdout);
      return -1;
    case ':':
      return rund_bad_flag(help, "%s needs a value", argv[optind - 1]);
    default:
      return rund_bad_flag(help, "unknown flag \"%s\"", argv[optind - 1]);
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "rund: %s: missing verb (%s) (see %s)\n", argv[0], verbs, help);
    return 2;
  }
  return 0;
}
