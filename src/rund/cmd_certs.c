/* rund certs issue NAME --san KIND:VALUE... [--days N] [--out DIR]
 * [--state-dir DIR]: a client certificate from the embedded CA.
 * rund certs init [--state-dir DIR]: make the embedded default files now.
 * rund certs server [--san KIND:VALUE]... [--state-dir DIR]: the server
 * certificate with this host's names and the given ones. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/certs.h"
#include "rund/opts.h"

#define HELP "rund certs --help"

static void certs_usage(FILE *f) {
  fprintf(f, "Usage: rund certs issue NAME --san KIND:VALUE [--san ...] [--days N] [--out DIR]\n"
             "                  [--state-dir DIR]\n"
             "       rund certs init [--state-dir DIR]\n"
             "       rund certs server [--san KIND:VALUE]... [--state-dir DIR]\n"
             "\n"
             "init makes what rund's first start would: a private CA, a server certificate\n"
             "and an admin client certificate in STATE/tls (0700, files 0600); missing,\n"
             "expired or foreign ones are remade. The server certificate names localhost,\n"
             "127.0.0.1, ::1, this host's name and the addresses of its interfaces. It\n"
             "prints the directory.\n"
             "\n"
             "server does the same and adds the names given with --san to the server\n"
             "certificate (names it had are kept): for a client reaching rund by a name or\n"
             "address this host does not know (DNS alias, NAT). Restart rund to use it.\n"
             "\n"
             "issue makes a client certificate signed by the CA in STATE/tls: writes\n"
             "DIR/NAME.pem and DIR/NAME.key (mode 0600; existing files are not\n"
             "overwritten), and the CA's certificate as DIR/ca.pem (kept if it is already\n"
             "there), and prints the three paths: copy them to the client and run\n"
             "  runctl --addr HOST:7734 --tls-cert NAME.pem --tls-key NAME.key --ca ca.pem ...\n"
             "KIND is uri, dns, email or ip; callers presenting it are the principals\n"
             "san:KIND:VALUE.\n"
             "\n"
             "  --san KIND:VALUE   repeatable, at least one\n"
             "  --days N           validity, 1..3650; default 365\n"
             "  --out DIR          made (0700) if missing; default: the current directory\n"
             "  --state-dir DIR    default " RUND_DEFAULT_STATE "\n");
}

/* init and server: the embedded default's files, the server certificate
 * naming this host and the --san names. */
static int certs_cmd_default(int argc, char **argv, const char *state, const char *const *sans,
                             size_t nsans, bool other_flags) {
  bool server = !strcmp(argv[optind], "server");
  const char *verb = server ? "certs server" : "certs init";
  if (optind + 1 < argc)
    return rund_bad_flag(HELP,
                         server ? "certs server: unexpected argument \"%s\""
                                : "certs init: unexpected argument \"%s\"",
                         argv[optind + 1]);
  if (other_flags || (!server && nsans))
    return rund_bad_flag(HELP, "%s",
                         server ? "certs server: only --san and --state-dir apply"
                                : "certs init: only --state-dir applies");
  certs_san_list names = {.n = 0};
  certs_paths paths;
  char made[128];
  rr_err e = {0};
  for (size_t i = 0; i < nsans; i++)
    if (certs_san_list_add(&names, sans[i], &e) < 0)
      goto fail;
  if (certs_host_sans(&names, &e) < 0 ||
      certs_ensure_default(state, &names, &paths, made, sizeof made, &e) < 0)
    goto fail;
  printf("%s\n", server ? paths.server : paths.dir);
  if (*made)
    fprintf(stderr, "rund %s: made %s\n", verb, made);
  return 0;
fail:
  fprintf(stderr, "rund %s: %s\n", verb, e.msg);
  return 1;
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
    return rund_bad_flag(HELP, "%s", "certs: missing verb (issue, init or server)");
  bool server = !strcmp(argv[optind], "server");
  if (server || !strcmp(argv[optind], "init"))
    return certs_cmd_default(argc, argv, state, sans, nsans,
                             days != CERTS_LEAF_DAYS || strcmp(out, "."));
  if (strcmp(argv[optind], "issue") != 0)
    return rund_bad_flag(HELP, "certs: unknown verb \"%s\" (want issue, init or server)",
                         argv[optind]);
  if (optind + 1 >= argc)
    return rund_bad_flag(HELP, "%s", "certs issue: missing NAME");
  if (optind + 2 < argc)
    return rund_bad_flag(HELP, "certs issue: unexpected argument \"%s\"", argv[optind + 2]);
  const char *name = argv[optind + 1];
  if (certs_name_check(name, &e) < 0)
    return rund_bad_flag(HELP, "certs issue: %s", e.msg);
  if (!nsans)
    return rund_bad_flag(HELP, "%s", "certs issue: at least one --san is needed");
  if (mkdir(out, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "rund certs issue: cannot create --out directory \"%s\": %s\n", out,
            strerror(errno));
    return 1;
  }
  char cert[4200], key[4200], ca[4200];
  if (certs_issue_client(state, name, sans, nsans, days, out, cert, key, ca, sizeof cert, &e) < 0) {
    fprintf(stderr, "rund certs issue: %s\n", e.msg);
    return 1;
  }
  printf("%s\n%s\n%s\n", cert, key, ca);
  return 0;
}
