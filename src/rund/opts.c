/* rund's flags. */
#include "rund/opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authz.h"
#include "common/log.h"
#include "common/util.h"
#include "rund/quota.h"

static void rund_usage(FILE *f) {
  fprintf(
      f,
      "Usage: rund [--listen ADDR]... [--state-dir DIR] [--max-log-bytes N]\n"
      "            [--log-level debug|info|warn|error] [--fsync]\n"
      "            [--tls-cert F --tls-key F --client-ca F] [--tls12]\n"
      "            [--token-file F] [--allow-insecure-tokens] [--admin PRINCIPAL]...\n"
      "            [--secrets-dir DIR] [--retention DUR] [--no-cgroups] [--help] [--version]\n"
      "            [--idle-timeout DUR] [--max-connections N] [--max-conns-per-peer N]\n"
      "            [--quota-running N] [--quota-jobs N] [--quota-followers N] [--fd-reserve N]\n"
      "            [--default-profile P] [--min-profile P] [--bind-allow DIR]...\n"
      "            [--image-roots auto|overlay|copy]\n"
      "       rund certs issue NAME --san KIND:VALUE... [--days N] [--out DIR] [--state-dir "
      "DIR]\n"
      "       rund certs init|server [--san KIND:VALUE]... [--state-dir DIR]\n"
      "       rund tokens create IDENTITY | revoke IDENTITY | list [--token-file F] [--state-dir "
      "DIR]\n"
      "       rund secrets allow|deny|list ... (rund secrets --help)\n"
      "\n"
      "Run commands for remote clients over gRPC (service runrpc.v1.Jobs).\n"
      "\n"
      "  --listen ADDR        unix:PATH, HOST:PORT ([::1]:PORT for IPv6; TLS, e.g.\n"
      "                       0.0.0.0:7734 for other machines) or h2c:HOST:PORT\n"
      "                       (plaintext, loopback only); repeatable. Default: " RUND_DEFAULT_ADDR
      "\n"
      "                       and TLS " RUND_DEFAULT_TLS_ADDR ". Without --tls-cert/--tls-key/\n"
      "                       --client-ca, TLS uses the CA made in STATE/tls and a\n"
      "                       server certificate naming this host's name and addresses\n"
      "                       (rund certs server --san adds others)\n"
      "  --state-dir DIR      jobs, logs, tls/, tokens, secrets/; default " RUND_DEFAULT_STATE "\n"
      "  --max-log-bytes N    per job and stream, oldest bytes dropped past it;\n"
      "                       suffixes K, M, G; default 1G\n"
      "  --log-level L        debug, info, warn or error; default info\n"
      "  --fsync              fsync job state on every change (survives power\n"
      "                       loss; slower); without it state survives rund\n"
      "                       crashes and restarts (atomic writes)\n"
      "  --tls-cert F, --tls-key F, --client-ca F\n"
      "                       server certificate chain, its key, and the CA client\n"
      "                       certificates must chain to (all three or none)\n"
      "  --tls12              also accept TLS 1.2 (ECDHE + AEAD only)\n"
      "  --token-file F       bearer tokens (IDENTITY sha256:HEX lines, mode 0600);\n"
      "                       default STATE/tokens; changes apply to the next call\n"
      "  --allow-insecure-tokens\n"
      "                       accept bearer tokens on plaintext connections (development)\n"
      "  --admin PRINCIPAL    sees and controls every job (uid:N, token:ID,\n"
      "                       san:uri|dns|email|ip:VALUE); repeatable\n"
      "  --secrets-dir DIR    secret://NAME env values come from DIR/NAME (mode 0700,\n"
      "                       files 0600); default STATE/secrets (also when made later)\n"
      "  --retention DUR      delete finished jobs (status and logs) DUR after they\n"
      "                       ended, e.g. 12h or 7d; default: keep them\n"
      "  --no-cgroups         do not use cgroups: commands with limits are refused\n"
      "                       (FAILED_PRECONDITION), the others run in rund's; by\n"
      "                       default every job gets a cgroup below rund's own (v2,\n"
      "                       or v1 per controller)\n"
      "  --quota-running N    running jobs per identity (each principal of the\n"
      "                       caller); default 1000; 0: no limit; admins exempt\n"
      "  --quota-jobs N       kept jobs (running + finished) per identity;\n"
      "                       default 10000; 0: no limit; admins exempt\n"
      "  --quota-followers N  concurrent Logs streams per identity; default 256;\n"
      "                       0: no limit; admins exempt\n"
      "  --fd-reserve N       file descriptors never spent on starts and Logs\n"
      "                       streams (kept for admins' calls and rund's own work);\n"
      "                       default 1/8 of RLIMIT_NOFILE within 64..4096\n"
      "  --default-profile P  sandbox profile of requests that name none: host (no\n"
      "                       isolation), default or strict (docs/dev/SANDBOX.md);\n"
      "                       default host, as local commands run\n"
      "  --min-profile P      the weakest profile allowed: weaker requests are raised\n"
      "                       to it (not refused); default host. A rund that remote\n"
      "                       callers reach should say default or strict\n"
      "  --bind-allow DIR     requests may bind host paths at or below DIR into their\n"
      "                       sandbox, and use directories below it as rootfs;\n"
      "                       repeatable; default: none\n"
      "  --image-roots M      how --image commands get their root: overlay (an\n"
      "                       overlayfs per command), copy (the layers copied per\n"
      "                       command: slower, for kernels without overlayfs) or\n"
      "                       auto (overlay, copy where overlayfs is missing); default auto\n"
      "  --idle-timeout DUR   close connections with no call and no request for DUR\n"
      "                       (PINGs do not count); default 5m\n"
      "  --max-connections N  default 4096, of which 64 only admins may take\n"
      "  --max-conns-per-peer N\n"
      "                       connections per unix uid or remote IP address,\n"
      "                       admins exempt; default 256\n"
      "  --help, --version\n"
      "\n"
      "Signals: SIGTERM/SIGINT stop rund (running jobs keep running; the next rund\n"
      "adopts them with their exit status, which rund-waiter records); SIGHUP\n"
      "reloads the token file; SIGUSR2 restarts rund in place (re-executes the file\n"
      "it was started from, e.g. after an upgrade, keeping its pid): running jobs\n"
      "stay its children; connections drop and Exec commands end.\n"
      "\n"
      "systemd: with sockets passed (LISTEN_FDS, rund.socket) rund serves those\n"
      "instead of --listen: unix sockets by peer credentials, TCP ones with TLS\n"
      "(FileDescriptorName=h2c: plaintext, loopback only). With NOTIFY_SOCKET it\n"
      "says READY, RELOADING, STOPPING and feeds WatchdogSec= (Type=notify).\n");
}

static int rund_parse_size(const char *s, uint64_t *ret) {
  char *end;
  errno = 0;
  if (!*s || *s == '-')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s)
    return -1;
  unsigned shift = 0;
  if (*end) {
    switch (*end) {
    case 'k':
    case 'K':
      shift = 10;
      break;
    case 'm':
    case 'M':
      shift = 20;
      break;
    case 'g':
    case 'G':
      shift = 30;
      break;
    default:
      return -1;
    }
    if (end[1] && !((end[1] == 'i' || end[1] == 'B') &&
                    (!end[2] || (end[1] == 'i' && end[2] == 'B' && !end[3]))))
      return -1;
  }
  if (v > (UINT64_MAX >> shift))
    return -1;
  *ret = (uint64_t)v << shift;
  return 0;
}

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

#define BAD(...) rund_bad_flag("rund --help", __VA_ARGS__)

static int rund_opt_file(const char **slot, const char *flag, const char *arg) {
  if (!*arg)
    return BAD("%s needs a file", flag);
  *slot = arg;
  return 0;
}

/* A count flag: a decimal number 0..1000000000. */
static int rund_opt_count(uint32_t *slot, const char *flag, const char *arg) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  if (!*arg || *arg == '-' || *arg == '+' || errno || *end || v > 1000000000ull) {
    fprintf(stderr, "rund: %s \"%s\" is not a count (0..1000000000) (see rund --help)\n", flag,
            arg);
    return 2;
  }
  *slot = (uint32_t)v;
  return 0;
}

/* Checks across flags once all are read. */
static int rund_opts_finish(rund_opts *o) {
  int tls = !!o->tls_cert + !!o->tls_key + !!o->client_ca;
  if (tls != 0 && tls != 3)
    return BAD("%s", "--tls-cert, --tls-key and --client-ca go together: give all three or none");
  /* without TLS flags, TLS listeners use the embedded CA */
  o->embedded = tls == 0;
  o->listen_given = o->nlisten > 0;
  if (!o->nlisten) {
    o->listen[o->nlisten++] = RUND_DEFAULT_ADDR;
    o->listen[o->nlisten++] = RUND_DEFAULT_TLS_ADDR;
  }
  return 0;
}

int rund_opts_parse(int argc, char **argv, rund_opts *o) {
  enum {
    O_CERT = 256,
    O_KEY,
    O_CA,
    O_TLS12,
    O_TOKENS,
    O_INSECURE,
    O_ADMIN,
    O_SECRETS,
    O_NO_CGROUPS,
    O_RETENTION,
    O_IDLE,
    O_MAXCONN,
    O_PERPEER,
    O_QRUN,
    O_QJOBS,
    O_QFOLLOW,
    O_FDRES,
    O_DEFPROFILE,
    O_MINPROFILE,
    O_BINDALLOW,
    O_IMAGEROOTS
  };
  static const struct option longs[] = {{"listen", required_argument, NULL, 'l'},
                                        {"state-dir", required_argument, NULL, 's'},
                                        {"max-log-bytes", required_argument, NULL, 'm'},
                                        {"log-level", required_argument, NULL, 'v'},
                                        {"fsync", no_argument, NULL, 'f'},
                                        {"tls-cert", required_argument, NULL, O_CERT},
                                        {"tls-key", required_argument, NULL, O_KEY},
                                        {"client-ca", required_argument, NULL, O_CA},
                                        {"tls12", no_argument, NULL, O_TLS12},
                                        {"token-file", required_argument, NULL, O_TOKENS},
                                        {"allow-insecure-tokens", no_argument, NULL, O_INSECURE},
                                        {"admin", required_argument, NULL, O_ADMIN},
                                        {"secrets-dir", required_argument, NULL, O_SECRETS},
                                        {"no-cgroups", no_argument, NULL, O_NO_CGROUPS},
                                        {"retention", required_argument, NULL, O_RETENTION},
                                        {"idle-timeout", required_argument, NULL, O_IDLE},
                                        {"max-connections", required_argument, NULL, O_MAXCONN},
                                        {"max-conns-per-peer", required_argument, NULL, O_PERPEER},
                                        {"quota-running", required_argument, NULL, O_QRUN},
                                        {"quota-jobs", required_argument, NULL, O_QJOBS},
                                        {"quota-followers", required_argument, NULL, O_QFOLLOW},
                                        {"fd-reserve", required_argument, NULL, O_FDRES},
                                        {"default-profile", required_argument, NULL, O_DEFPROFILE},
                                        {"min-profile", required_argument, NULL, O_MINPROFILE},
                                        {"bind-allow", required_argument, NULL, O_BINDALLOW},
                                        {"image-roots", required_argument, NULL, O_IMAGEROOTS},
                                        {"help", no_argument, NULL, 'h'},
                                        {"version", no_argument, NULL, 'V'},
                                        {NULL, 0, NULL, 0}};
  *o = (rund_opts){.state_dir = RUND_DEFAULT_STATE,
                   .max_log_bytes = 1ull << 30,
                   .log_level = RR_LOG_INFO,
                   .quota_running = QUOTA_DEFAULT_RUNNING,
                   .quota_jobs = QUOTA_DEFAULT_JOBS,
                   .quota_followers = QUOTA_DEFAULT_FOLLOWERS};
  opterr = 0;
  int c, rc = 0;
  while (rc == 0 && (c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    switch (c) {
    case 'l':
      if (o->nlisten == RUND_MAX_LISTEN)
        return BAD("too many --listen (max 16)%s", "");
      if (!*optarg)
        return BAD("--listen needs an address%s", "");
      o->listen[o->nlisten++] = optarg;
      break;
    case 's':
      if (!*optarg)
        return BAD("--state-dir needs a directory%s", "");
      o->state_dir = optarg;
      break;
    case 'm':
      if (rund_parse_size(optarg, &o->max_log_bytes) < 0 || o->max_log_bytes == 0)
        return BAD("--max-log-bytes \"%s\" is not a size (e.g. 65536, 64K, 1G)", optarg);
      break;
    case 'v':
      if (!strcmp(optarg, "debug"))
        o->log_level = RR_LOG_DEBUG;
      else if (!strcmp(optarg, "info"))
        o->log_level = RR_LOG_INFO;
      else if (!strcmp(optarg, "warn"))
        o->log_level = RR_LOG_WARN;
      else if (!strcmp(optarg, "error"))
        o->log_level = RR_LOG_ERROR;
      else
        return BAD("--log-level \"%s\" is not debug, info, warn or error", optarg);
      break;
    case 'f':
      o->fsync = true;
      break;
    case O_CERT:
      rc = rund_opt_file(&o->tls_cert, "--tls-cert", optarg);
      break;
    case O_KEY:
      rc = rund_opt_file(&o->tls_key, "--tls-key", optarg);
      break;
    case O_CA:
      rc = rund_opt_file(&o->client_ca, "--client-ca", optarg);
      break;
    case O_TLS12:
      o->tls12 = true;
      break;
    case O_TOKENS:
      rc = rund_opt_file(&o->token_file, "--token-file", optarg);
      break;
    case O_INSECURE:
      o->allow_insecure_tokens = true;
      break;
    case O_ADMIN: {
      rr_err e = {0};
      if (o->nadmins == RUND_MAX_ADMINS)
        return BAD("too many --admin (max 32)%s", "");
      if (authz_principal_check(optarg, &e) < 0)
        return BAD("--admin: %s", e.msg);
      o->admins[o->nadmins++] = optarg;
      break;
    }
    case O_SECRETS:
      if (!*optarg)
        return BAD("--secrets-dir needs a directory%s", "");
      o->secrets_dir = optarg;
      break;
    case O_NO_CGROUPS:
      o->no_cgroups = true;
      break;
    case O_IMAGEROOTS:
      if (!strcmp(optarg, "auto"))
        o->image_roots = RUND_IMAGE_ROOTS_AUTO;
      else if (!strcmp(optarg, "overlay"))
        o->image_roots = RUND_IMAGE_ROOTS_OVERLAY;
      else if (!strcmp(optarg, "copy"))
        o->image_roots = RUND_IMAGE_ROOTS_COPY;
      else
        return BAD("--image-roots \"%s\": want auto, overlay or copy", optarg);
      break;
    case O_DEFPROFILE:
    case O_MINPROFILE: {
      rr_err e = {0};
      const char *flag = c == O_DEFPROFILE ? "--default-profile" : "--min-profile";
      if (sb_profile_from_name(optarg, flag,
                               c == O_DEFPROFILE ? &o->default_profile : &o->min_profile, &e) < 0)
        return BAD("%s", e.msg);
      break;
    }
    case O_BINDALLOW:
      if (o->nbind_allow == RUND_MAX_BIND_ALLOW)
        return BAD("too many --bind-allow (max 32)%s", "");
      if (optarg[0] != '/')
        return BAD("--bind-allow \"%s\": must be an absolute path", optarg);
      o->bind_allow[o->nbind_allow++] = optarg;
      break;
    case O_RETENTION:
      if (rr_parse_duration_ms(optarg, &o->retention_ms) < 0 || o->retention_ms == 0)
        return BAD("--retention \"%s\" is not a duration (e.g. 30s, 12h, 7d)", optarg);
      break;
    case O_IDLE:
      if (rr_parse_duration_ms(optarg, &o->idle_timeout_ms) < 0 || o->idle_timeout_ms == 0)
        return BAD("--idle-timeout \"%s\" is not a duration (e.g. 30s, 5m)", optarg);
      break;
    case O_MAXCONN:
    case O_PERPEER: {
      uint64_t v;
      if (rund_parse_size(optarg, &v) < 0 || v == 0 || v > 1000000)
        return BAD(c == O_MAXCONN ? "--max-connections \"%s\" is not a count (1..1000000)"
                                  : "--max-conns-per-peer \"%s\" is not a count (1..1000000)",
                   optarg);
      *(c == O_MAXCONN ? &o->max_connections : &o->max_connections_per_peer) = (uint32_t)v;
      break;
    }
    case O_QRUN:
      rc = rund_opt_count(&o->quota_running, "--quota-running", optarg);
      break;
    case O_QJOBS:
      rc = rund_opt_count(&o->quota_jobs, "--quota-jobs", optarg);
      break;
    case O_QFOLLOW:
      rc = rund_opt_count(&o->quota_followers, "--quota-followers", optarg);
      break;
    case O_FDRES: {
      uint32_t v;
      rc = rund_opt_count(&v, "--fd-reserve", optarg);
      o->fd_reserve = v;
      if (rc == 0 && v == 0)
        return BAD("--fd-reserve \"%s\" must be at least 1", optarg);
      break;
    }
    case 'h':
      rund_usage(stdout);
      return -1;
    case 'V':
      printf("rund %s\n", RUND_VERSION);
      return -1;
    case ':':
      return BAD("%s needs a value", argv[optind - 1]);
    default:
      return BAD("unknown flag \"%s\"", argv[optind - 1]);
    }
  }
  if (rc)
    return rc;
  if (optind < argc)
    return BAD("unexpected argument \"%s\"", argv[optind]);
  return rund_opts_finish(o);
}
