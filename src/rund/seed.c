/* The seed program's spellings (docs/dev/OPERATIONS.md, "The seed's
 * spellings"): `rund serve -addr ADDR -ca F -cert F -key F` with Go-style
 * flags, and `rund execute`, which the seed used internally. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "rund/opts.h"

static const struct {
  const char *seed, *ours;
} seed_flags[] = {
    {"addr", "--listen"},
    {"ca", "--client-ca"},
    {"cert", "--tls-cert"},
    {"key", "--tls-key"},
};

/* Can this host listen on IPv6 (Go's ":PORT" means both families)? */
static bool seed_have_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

/* Append s to the argument vector being built. */
static int seed_push(char ***v, int *n, char *s) {
  char **g = realloc(*v, (size_t)(*n + 2) * sizeof *g);
  if (!g || !s) {
    free(s);
    if (g)
      *v = g;
    return -1;
  }
  g[(*n)++] = s;
  g[*n] = NULL;
  *v = g;
  return 0;
}

int rund_seed_serve_args(int argc, char **argv, int *ret_argc, char ***ret_argv) {
  char **v = NULL;
  int n = 0;
  if (seed_push(&v, &n, strdup(argv[0])) < 0)
    goto oom;
  for (int i = 2; i < argc; i++) {
    const char *w = argv[i];
    const char *name = w[0] == '-' ? w + 1 + (w[1] == '-') : NULL;
    size_t k = RR_ARRAY_SIZE(seed_flags);
    size_t len = name ? strcspn(name, "=") : 0;
    for (size_t j = 0; name && j < RR_ARRAY_SIZE(seed_flags); j++)
      if (strlen(seed_flags[j].seed) == len && !strncmp(name, seed_flags[j].seed, len))
        k = j;
    if (name && !strcmp(name, "help")) { /* Go's flag package answers -help */
      if (seed_push(&v, &n, strdup("--help")) < 0)
        goto oom;
      continue;
    }
    if (k == RR_ARRAY_SIZE(seed_flags)) {
      /* rund's own flags pass through (and "--" ends the flags) */
      if (seed_push(&v, &n, strdup(w)) < 0)
        goto oom;
      continue;
    }
    const char *val = name[len] == '=' ? name + len + 1 : NULL;
    if (!val) {
      if (i + 1 >= argc) {
        fprintf(stderr, "rund: serve: %s needs a value (see rund --help)\n", w);
        goto fail;
      }
      val = argv[++i];
    }
    if (k == 0 && val[0] == ':' && val[1]) {
      /* Go's ":PORT": every address of the host, both families */
      char *s4 = NULL, *s6 = NULL;
      if (seed_push(&v, &n, strdup("--listen")) < 0 ||
          seed_push(&v, &n, asprintf(&s4, "0.0.0.0%s", val) < 0 ? NULL : s4) < 0)
        goto oom;
      if (seed_have_ipv6() && (seed_push(&v, &n, strdup("--listen")) < 0 ||
                               seed_push(&v, &n, asprintf(&s6, "[::]%s", val) < 0 ? NULL : s6) < 0))
        goto oom;
      continue;
    }
    if (seed_push(&v, &n, strdup(seed_flags[k].ours)) < 0 || seed_push(&v, &n, strdup(val)) < 0)
      goto oom;
  }
  *ret_argc = n;
  *ret_argv = v;
  return 0;
oom:
  fprintf(stderr, "rund: serve: out of memory\n");
fail:
  for (int i = 0; i < n; i++)
    free(v[i]);
  free(v);
  return 2;
}

int rund_seed_execute(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr,
          "rund: \"rund execute\" was the seed's internal step (its server ran it for each "
          "job and held it on the -fifo until the job's cgroup was set); rund starts jobs "
          "itself: run \"rund\" (or \"rund serve\") and start commands with \"runctl start -- "
          "CMD\" or \"runctl run -- CMD\"\n");
  return 2;
}

void rund_seed_args_free(char **v, char **orig) {
  if (v == orig)
    return;
  for (size_t i = 0; v[i]; i++)
    free(v[i]);
  free(v);
}
