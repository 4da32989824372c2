/* runctl --hosts: the hosts file (docs/man/runctl.1.scd, HOSTS FILE) and
 * the job ids of status/stop. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "fanout.h"
#include "rpc/client/transport.h"

#define HOSTS_MAX_LINE 8192
#define HOSTS_MAX_TOKEN 4096

typedef struct hosts_parse {
  const char *file; /* for messages; NULL: the --hosts list */
  const char *dir;  /* relative files are taken from here ("" for the list) */
  size_t line;
  char *msg;
  size_t msglen;
} hosts_parse;

static int hosts_fail(const hosts_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int hosts_fail(const hosts_parse *p, const char *fmt, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  if (p->file)
    snprintf(p->msg, p->msglen, "%s:%zu: %s", p->file, p->line, reason);
  else
    snprintf(p->msg, p->msglen, "--hosts: host %zu: %s", p->line, reason);
  return -1;
}

static bool hosts_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("._:@+-", c);
}

/* The address as a file stem: what is not a name character becomes '_'
 * ("unix:/run/a.sock" -> "unix:_run_a.sock"). */
static void hosts_default_name(const char *addr, char *name, size_t len) {
  size_t n = 0;
  for (; addr[n] && n + 1 < len; n++)
    name[n] = hosts_name_char(addr[n]) ? addr[n] : '_';
  name[n] = '\0';
  if (name[0] == '.')
    name[0] = '_';
}

static int hosts_path(const hosts_parse *p, const char *v, char **ret) {
  int n = v[0] == '/' || !*p->dir ? asprintf(ret, "%s", v) : asprintf(ret, "%s/%s", p->dir, v);
  if (n < 0) {
    *ret = NULL;
    return hosts_fail(p, "out of memory");
  }
  return 0;
}

static int hosts_token_read(const hosts_parse *p, const char *path, char **ret) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return hosts_fail(p, "cannot read token-file \"%s\": %s", path, strerror(errno));
  char buf[HOSTS_MAX_TOKEN + 2];
  size_t n = 0;
  for (ssize_t r; n < sizeof buf - 1; n += (size_t)r)
    if ((r = rr_read(fd, buf + n, sizeof buf - 1 - n)) <= 0) {
      if (r < 0)
        return hosts_fail(p, "cannot read token-file \"%s\": %s", path, strerror(errno));
      break;
    }
  if (n > HOSTS_MAX_TOKEN)
    return hosts_fail(p, "token-file \"%s\" is over %d bytes", path, HOSTS_MAX_TOKEN);
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  if (n == 0)
    return hosts_fail(p, "token-file \"%s\" is empty", path);
  if (!(*ret = strdup(buf)))
    return hosts_fail(p, "out of memory");
  return 0;
}

/* KEY=VALUE (or allow-insecure) of a host line. */
static int hosts_option(const hosts_parse *p, fanout_host *h, char *tok) {
  if (!strcmp(tok, "allow-insecure")) {
    h->allow_insecure = true;
    return 0;
  }
  char *eq = strchr(tok, '=');
  if (!eq)
    return hosts_fail(p,
                      "unknown option \"%s\" (want ca=, cert=, key=, token-file=, "
                      "server-name=, name= or allow-insecure)",
                      tok);
  *eq = '\0';
  const char *k = tok, *v = eq + 1;
  if (!*v)
    return hosts_fail(p, "%s= needs a value", k);
  char **dst = !strcmp(k, "ca")            ? &h->ca
               : !strcmp(k, "cert")        ? &h->cert
               : !strcmp(k, "key")         ? &h->key
               : !strcmp(k, "server-name") ? &h->server_name
               : !strcmp(k, "token-file")  ? &h->token
                                           : NULL;
  if (!strcmp(k, "name")) {
    if (strlen(v) >= FANOUT_MAX_NAME)
      return hosts_fail(p, "name \"%.32s...\" is longer than %d characters", v,
                        FANOUT_MAX_NAME - 1);
    for (const char *c = v; *c; c++)
      if (!hosts_name_char(*c))
        return hosts_fail(p, "name \"%s\": only letters, digits and ._:@+- allowed", v);
    if (v[0] == '.')
      return hosts_fail(p, "name \"%s\" must not start with '.'", v);
    snprintf(h->name, sizeof h->name, "%s", v);
    h->named = true;
    return 0;
  }
  if (!dst)
    return hosts_fail(p,
                      "unknown option \"%s=\" (want ca=, cert=, key=, token-file=, "
                      "server-name=, name= or allow-insecure)",
                      k);
  if (*dst)
    return hosts_fail(p, "%s= given twice", k);
  if (dst == &h->token) {
    _cleanup_free_ char *path = NULL;
    return hosts_path(p, v, &path) < 0 ? -1 : hosts_token_read(p, path, dst);
  }
  if (dst == &h->server_name)
    return (*dst = strdup(v)) ? 0 : hosts_fail(p, "out of memory");
  return hosts_path(p, v, dst);
}

static void hosts_one_free(fanout_host *h) {
  free(h->addr);
  free(h->ca);
  free(h->cert);
  free(h->key);
  free(h->server_name);
  if (h->token)
    explicit_bzero(h->token, strlen(h->token));
  free(h->token);
}

void fanout_hosts_free(fanout_hosts *h) {
  for (size_t i = 0; i < h->n; i++)
    hosts_one_free(&h->v[i]);
  free(h->v);
  h->v = NULL;
  h->n = 0;
}

/* One host from its words (modified in place); appended to h. */
static int hosts_add(const hosts_parse *p, fanout_hosts *hs, size_t *cap, char **words,
                     size_t nwords) {
  fanout_host h = {0};
  rpc_address a;
  rr_err e = {0};
  if (rpc_address_parse(words[0], &a, &e) < 0) {
    hosts_fail(p, "%s", e.msg);
    return -1;
  }
  if (!(h.addr = strdup(words[0])))
    return hosts_fail(p, "out of memory");
  hosts_default_name(h.addr, h.name, sizeof h.name);
  for (size_t w = 1; w < nwords; w++)
    if (hosts_option(p, &h, words[w]) < 0) {
      hosts_one_free(&h);
      return -1;
    }
  if (!h.cert != !h.key) {
    hosts_one_free(&h);
    return hosts_fail(p, "cert= and key= go together (one without the other)");
  }
  for (size_t i = 0; i < hs->n; i++)
    if (!strcmp(hs->v[i].name, h.name)) {
      hosts_fail(p, "%s \"%s\" is also host %zu's%s", h.named ? "name" : "file name", h.name, i + 1,
                 h.named ? "" : ": give one of them name=");
      hosts_one_free(&h);
      return -1;
    }
  if (hs->n >= FANOUT_MAX_HOSTS) {
    hosts_one_free(&h);
    return hosts_fail(p, "more than %d hosts", FANOUT_MAX_HOSTS);
  }
  if (hs->n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    fanout_host *v = realloc(hs->v, ncap * sizeof *v);
    if (!v) {
      hosts_one_free(&h);
      return hosts_fail(p, "out of memory");
    }
    hs->v = v;
    *cap = ncap;
  }
  hs->v[hs->n++] = h;
  return 0;
}

/* Words of a line, '#' to its end a comment; 0 words: a blank line. */
static size_t hosts_split(char *line, char **words, size_t max, bool *too_many) {
  size_t n = 0;
  *too_many = false;
  char *c = line;
  for (;;) {
    while (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n')
      c++;
    if (!*c || *c == '#')
      return n;
    if (n == max) {
      *too_many = true;
      return n;
    }
    words[n++] = c;
    while (*c && *c != ' ' && *c != '\t' && *c != '\r' && *c != '\n')
      c++;
    if (*c)
      *c++ = '\0';
  }
}

static int hosts_load_file(FILE *f, hosts_parse *p, fanout_hosts *hs) {
  size_t cap = 0;
  char buf[HOSTS_MAX_LINE + 2];
  while (fgets(buf, sizeof buf, f)) {
    p->line++;
    size_t len = strlen(buf);
    if (len > HOSTS_MAX_LINE || (len == sizeof buf - 1 && buf[len - 1] != '\n'))
      return hosts_fail(p, "line longer than %d bytes", HOSTS_MAX_LINE);
    if (memchr(buf, '\0', len) != NULL || strlen(buf) != len)
      return hosts_fail(p, "NUL byte in the line");
    char *words[16];
    bool too_many;
    size_t n = hosts_split(buf, words, 16, &too_many);
    if (too_many)
      return hosts_fail(p, "more than %d words", 16);
    if (n && hosts_add(p, hs, &cap, words, n) < 0)
      return -1;
  }
  if (ferror(f))
    return hosts_fail(p, "read error: %s", strerror(errno));
  return 0;
}

int fanout_hosts_load(const char *spec, fanout_hosts *ret, char *msg, size_t msglen) {
  *ret = (fanout_hosts){0};
  hosts_parse p = {.dir = "", .msg = msg, .msglen = msglen};
  struct stat st;
  /* every address has a ':': a word without one is a file, even a missing one */
  bool is_file =
      !strcmp(spec, "-") || (stat(spec, &st) == 0 && !S_ISDIR(st.st_mode)) || !strchr(spec, ':');
  int rc;
  if (is_file) {
    bool is_stdin = !strcmp(spec, "-");
    FILE *f = is_stdin ? stdin : fopen(spec, "re");
    if (!f) {
      snprintf(msg, msglen, "--hosts: cannot read \"%s\": %s", spec, strerror(errno));
      return -1;
    }
    _cleanup_free_ char *copy = strdup(spec);
    p.file = is_stdin ? "<stdin>" : spec;
    p.dir = is_stdin || !copy ? "" : dirname(copy);
    rc = hosts_load_file(f, &p, ret);
    if (!is_stdin)
      fclose(f);
  } else {
    _cleanup_free_ char *list = strdup(spec);
    if (!list) {
      snprintf(msg, msglen, "out of memory");
      return -1;
    }
    size_t cap = 0;
    rc = 0;
    char *save = NULL;
    for (char *w = strtok_r(list, ",", &save); w && rc == 0; w = strtok_r(NULL, ",", &save)) {
      p.line++;
      rc = hosts_add(&p, ret, &cap, &w, 1);
    }
  }
  if (rc == 0 && ret->n == 0) {
    snprintf(msg, msglen, "--hosts: no hosts in \"%s\"", spec);
    rc = -1;
  }
  if (rc < 0)
    fanout_hosts_free(ret);
  return rc;
}

static int hosts_id_set(fanout_host *h, const char *id, const char *where, char *msg,
                        size_t msglen) {
  if (!runrpc_job_id_valid(id)) {
    snprintf(msg, msglen, "%s: invalid job id \"%.64s\" for host %s", where, id,
             fanout_host_label(h));
    return -1;
  }
  memcpy(h->job_id, id, RUNRPC_JOB_ID_SIZE - 1); /* valid: exactly 26 characters */
  h->job_id[RUNRPC_JOB_ID_SIZE - 1] = '\0';
  return 0;
}

/* @FILE: "NAME: ID" lines (start's output under --hosts); other lines skipped. */
static int hosts_ids_file(fanout_hosts *hs, const char *path, char *msg, size_t msglen) {
  FILE *f = fopen(path, "re");
  if (!f) {
    snprintf(msg, msglen, "cannot read job ids from \"%s\": %s", path, strerror(errno));
    return -1;
  }
  char buf[HOSTS_MAX_LINE];
  int rc = 0;
  while (rc == 0 && fgets(buf, sizeof buf, f)) {
    char *sep = strstr(buf, ": ");
    if (!sep)
      continue;
    *sep = '\0';
    char *id = sep + 2;
    id[strcspn(id, " \t\r\n")] = '\0';
    for (size_t i = 0; i < hs->n; i++)
      if (!strcmp(fanout_host_label(&hs->v[i]), buf))
        rc = hosts_id_set(&hs->v[i], id, path, msg, msglen);
  }
  fclose(f);
  return rc;
}

/* @DIR: the first word of DIR/NAME.stdout (start --out-dir). */
static int hosts_ids_dir(fanout_hosts *hs, const char *dir, char *msg, size_t msglen) {
  for (size_t i = 0; i < hs->n; i++) {
    char path[4096], buf[64];
    snprintf(path, sizeof path, "%s/%s.stdout", dir, hs->v[i].name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue; /* that host then fails with "no job id" */
    bool got = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!got)
      continue;
    buf[strcspn(buf, " \t\r\n")] = '\0';
    if (hosts_id_set(&hs->v[i], buf, path, msg, msglen) < 0)
      return -1;
  }
  return 0;
}

int fanout_hosts_job_ids(fanout_hosts *hs, const char *spec, char *msg, size_t msglen) {
  if (spec[0] != '@') {
    for (size_t i = 0; i < hs->n; i++)
      if (hosts_id_set(&hs->v[i], spec, "job id", msg, msglen) < 0)
        return -1;
    return 0;
  }
  struct stat st;
  if (stat(spec + 1, &st) == 0 && S_ISDIR(st.st_mode))
    return hosts_ids_dir(hs, spec + 1, msg, msglen);
  return hosts_ids_file(hs, spec + 1, msg, msglen);
}
