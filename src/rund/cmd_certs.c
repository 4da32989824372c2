/* rund certs issue NAME --san KIND:VALUE... [--days N] [--out DIR]
 * [--state-dir DIR]: a client certificate from the embedded CA.
 * rund certs init [--state-dir DIR]: make the embedded default files now. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/certs.h"
#include "rund/opts.h"

#define HELP "rund certs --help"

static void certs_usage(FILE *f) {
  fprintf(f, "Usage: rund certs issue NAME --san KIND:VALUE [--san ...] [--days N] [--out DIR]\n"
             "                  [--state-dir DIR]\n"
             "       rund certs init [--state-dir DIR]\n"
             "\n"
             "init makes what rund's first start would: a private CA, a server certificate\n"
             "(localhost, 127.0.0.1, ::1) and an admin client certificate in STATE/tls\n"
             "(0700, files 0600); missing, expired or foreign ones are remade. It prints\n"
             "the directory.\n"
             "\n"
             "Issue a client certificate signed by the CA in STATE/tls (made by rund's first\n"
             "start): writes DIR/NAME.pem and DIR/NAME.key (mode 0600; existing files are\n"
             "not overwritten) and prints both paths. KIND is uri, dns, email or ip; callers\n"
             "presenting it are the principals san:KIND:VALUE.\n"
             "\n"
             "  --san KIND:VALUE   repeatable, at least one\n"
             "  --days N           validity, 1..3650; default 365\n"
             "  --out DIR          default: the current directory\n"
             "  --state-dir DIR    default " RUND_DEFAULT_STATE "\n");
}

int rund_cmd_certs(int argc, char **argv) {
  static const struct option longs[] = {
      {"san", required_argument, NULL, 'n'}, {"days", required_argument, NULL, 'd'},
      {"out", required_argument, NULL, 'o'}, {"state-dir", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
  const char *sans[CERTS_MAX_SANS], *out = ".", *state = RUND_DEFAULT_STATE;
  size_t nsans = 0;
  int days = CERTS_LEAF_DAYS;
  rr_err e = {0};
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    switch (c) {
    case 'n':
      if (nsans == CERTS_MAX_SANS)
        return rund_bad_flag(HELP, "too many --san (max %s)", "32");
      if (certs_san_check(optarg, &e) < 0)
        return rund_bad_flag(HELP, "certs issue: %s", e.msg);
      sans[nsans++] = optarg;
      break;
    case 'd': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (!*optarg || *end || v < 1 || v > CERTS_MAX_DAYS)
        return rund_bad_flag(HELP, "--days \"%s\" is not a number of days in 1..3650", optarg);
      days = (int)v;
      break;
    }
    case 'o':
      out = optarg;
      break;
    case 's':
      state = optarg;
      break;
    case 'h':
      certs_usage(stdout);
      return 0;
    case ':':
      return rund_bad_flag(HELP, "%s needs a value", argv[optind - 1]);
    default:
      return rund_bad_flag(HELP, "unknown flag \"%s\"", argv[optind - 1]);
    }
  }
  if (optind >= argc)
    return rund_bad_flag(HELP, "%s", "certs: missing verb (issue or init)");
  if (!strcmp(argv[optind], "init")) {
    if (optind + 1 < argc)
      return rund_bad_flag(HELP, "certs init: unexpected argument \"%s\"", argv[optind + 1]);
    if (nsans || days != CERTS_LEAF_DAYS || strcmp(out, "."))
      return rund_bad_flag(HELP, "%s", "certs init: only --state-dir applies");
    certs_paths paths;
    char made[128];
    if (certs_ensure_default(state, &paths, made, sizeof made, &e) < 0) {
      fprintf(stderr, "rund certs init: %s\n", e.msg);
      return 1;
    }
    printf("%s/tls\n", state);
    if (*made)
      fprintf(stderr, "rund certs init: made %s\n", made);
    return 0;
  }
  if (strcmp(argv[optind], "issue") != 0)
    return rund_bad_flag(HELP, "certs: unknown verb \"%s\" (want issue or init)", argv[optind]);
  if (optind + 1 >= argc)
    return rund_bad_flag(HELP, "%s", "certs issue: missing NAME");
  if (optind + 2 < argc)
    return rund_bad_flag(HELP, "certs issue: unexpected argument \"%s\"", argv[optind + 2]);
  const char *name = argv[optind + 1];
  if (certs_name_check(name, &e) < 0)
    return rund_bad_flag(HELP, "certs issue: %s", e.msg);
  if (!nsans)
    return rund_bad_flag(HELP, "%s", "certs issue: at least one --san is needed");
  char cert[4200], key[4200];
  if (certs_issue_client(state, name, sans, nsans, days, out, cert, key, sizeof cert, &e) < 0) {
    fprintf(stderr, "rund certs issue: %s\n", e.msg);
    return 1;
  }
  printf("%s\n%s\n", cert, key);
  return 0;
}
