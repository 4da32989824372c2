/* Prometheus metrics on an opt-in listener (--metrics HOST:PORT): plain
 * HTTP/1.1, GET /metrics answered in the text exposition format (version
 * 0.0.4), then the connection is closed. Everything is counted on the loop
 * thread; the page is built when asked for (jobs by state are counted from
 * the table then, not tracked).
 *
 * The listener has no authentication: it is meant for loopback or a
 * network that only the scraper reaches (rund warns otherwise). It says
 * how many jobs and calls there are, never who made them or what they run. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "rund.h"

/* Upper bounds (seconds) of the latency histograms' buckets. */
static const double metrics_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
#define NBOUNDS (sizeof metrics_bounds / sizeof metrics_bounds[0])
enum {
  METRICS_MAX_METHODS = 64, /* registered methods; more are counted as "other" */
  METRICS_MAX_CONNS = 8,    /* scrapes at once; more are closed at accept */
  METRICS_REQ_MAX = 4096,   /* request head */
  METRICS_TIMEOUT_MS = 10000,
  METRICS_CODES = 17,
};

typedef struct histogram {
  uint64_t bucket[NBOUNDS + 1]; /* non-cumulative; the last is +Inf */
  uint64_t count, sum_us;
} histogram;

typedef struct method_stats {
  char *path;
  uint64_t codes[METRICS_CODES];
  histogram latency;
} method_stats;

typedef struct scrape {
  struct rund_metrics *m;
  int fd;
  char in[METRICS_REQ_MAX];
  size_t inlen;
  char *out;
  size_t outlen, outoff;
  bool draining; /* answered; reading until the client closes */
  uint64_t timer;
} scrape;

struct rund_metrics {
  rund_ctx *ctx;
  int fd;
  char addr[96];
  method_stats methods[METRICS_MAX_METHODS + 1]; /* [n]: "other" */
  size_t nmethods;
  histogram spawn;
  uint64_t tls_refused, conns_refused, scrapes;
  scrape *conns[METRICS_MAX_CONNS];
};

static void histogram_observe(histogram *h, uint64_t us) {
  size_t i = 0;
  while (i < NBOUNDS && (double)us > metrics_bounds[i] * 1e6)
    i++;
  h->bucket[i]++;
  h->count++;
  h->sum_us += us;
}

static method_stats *method_find(rund_metrics *m, const char *path) {
  for (size_t i = 0; i < m->nmethods; i++)
    if (!strcmp(m->methods[i].path, path))
      return &m->methods[i];
  /* only registered methods get a row of their own: a client cannot make
   * up label values */
  if (m->nmethods < METRICS_MAX_METHODS && rpc_server_has_method(m->ctx->server, path)) {
    char *p = strdup(path);
    if (p) {
      m->methods[m->nmethods].path = p;
      return &m->methods[m->nmethods++];
    }
  }
  if (!m->methods[METRICS_MAX_METHODS].path)
    m->methods[METRICS_MAX_METHODS].path = "other";
  return &m->methods[METRICS_MAX_METHODS];
}

void rund_metrics_call_end(rund_ctx *ctx, const rpc_call *c, int code, uint64_t us) {
  rund_metrics *m = ctx->metrics;
  method_stats *s = method_find(m, rpc_call_path(c));
  s->codes[code >= 0 && code < METRICS_CODES ? code : RR_UNKNOWN]++;
  histogram_observe(&s->latency, us);
}

void rund_metrics_spawned(rund_ctx *ctx, uint64_t us) {
  if (ctx->metrics)
    histogram_observe(&ctx->metrics->spawn, us);
}

void rund_metrics_conn_event(rund_ctx *ctx, bool tls_refused) {
  if (!ctx->metrics)
    return;
  if (tls_refused)
    ctx->metrics->tls_refused++;
  else
    ctx->metrics->conns_refused++;
}

/* The page, appended to a growing buffer. */
typedef struct page {
  char *buf;
  size_t len, cap;
  bool oom;
} page;

static void __attribute__((format(printf, 2, 3))) put(page *p, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = p->oom ? 0 : vsnprintf(p->buf ? p->buf + p->len : NULL, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (p->oom || n < 0)
      return;
    if ((size_t)n < p->cap - p->len) {
      p->len += (size_t)n;
      return;
    }
    size_t cap = p->cap * 2 + (size_t)n;
    char *b = realloc(p->buf, cap);
    if (!b) {
      p->oom = true;
      return;
    }
    p->buf = b;
    p->cap = cap;
  }
}

static void put_histogram(page *p, const char *name, const char *labels, const histogram *h) {
  uint64_t cum = 0;
  const char *sep = *labels ? "," : "";
  for (size_t i = 0; i <= NBOUNDS; i++) {
    cum += h->bucket[i];
    if (i < NBOUNDS)
      put(p, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, metrics_bounds[i],
          (unsigned long long)cum);
    else
      put(p, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
  }
  put(p, "%s_sum{%s} %.6f\n", name, labels, (double)h->sum_us / 1e6);
  put(p, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static uint64_t proc_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "re");
  unsigned long long size = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void metrics_page(rund_metrics *m, page *p) {
  rund_ctx *ctx = m->ctx;
  put(p, "# HELP runrpc_rpc_requests_total gRPC calls that ended, by method and status code.\n"
         "# TYPE runrpc_rpc_requests_total counter\n");
  for (size_t i = 0; i <= METRICS_MAX_METHODS; i++) {
    const method_stats *s = &m->methods[i];
    if (!s->path) /* a slot not taken yet */
      continue;
    for (int code = 0; code < METRICS_CODES; code++)
      if (s->codes[code])
        put(p, "runrpc_rpc_requests_total{method=\"%s\",code=\"%s\"} %llu\n",
            s->path[0] == '/' ? s->path + 1 : s->path, rr_code_name(code),
            (unsigned long long)s->codes[code]);
  }
  put(p, "# HELP runrpc_rpc_duration_seconds How long gRPC calls lasted (streams: until they "
         "ended).\n# TYPE runrpc_rpc_duration_seconds histogram\n");
  for (size_t i = 0; i <= METRICS_MAX_METHODS; i++) {
    const method_stats *s = &m->methods[i];
    if (!s->path || !s->latency.count)
      continue;
    char labels[160];
    snprintf(labels, sizeof labels, "method=\"%s\"", s->path[0] == '/' ? s->path + 1 : s->path);
    put_histogram(p, "runrpc_rpc_duration_seconds", labels, &s->latency);
  }
  put(p,
      "# HELP runrpc_connections Client connections open now.\n"
      "# TYPE runrpc_connections gauge\nrunrpc_connections %zu\n",
      ctx->server ? rpc_server_connection_count(ctx->server) : 0);
  put(p,
      "# HELP runrpc_connections_refused_total Connections refused (limits, handshake "
      "timeouts), TLS handshakes apart.\n# TYPE runrpc_connections_refused_total counter\n"
      "runrpc_connections_refused_total %llu\n",
      (unsigned long long)m->conns_refused);
  put(p,
      "# HELP runrpc_tls_handshakes_refused_total TLS handshakes that failed (no or a bad "
      "client certificate, protocol errors).\n"
      "# TYPE runrpc_tls_handshakes_refused_total counter\n"
      "runrpc_tls_handshakes_refused_total %llu\n",
      (unsigned long long)m->tls_refused);
  put(p, "# HELP runrpc_job_spawn_seconds From a Start or Exec request to its command "
         "running.\n# TYPE runrpc_job_spawn_seconds histogram\n");
  put_histogram(p, "runrpc_job_spawn_seconds", "", &m->spawn);
  /* jobs held now, by state and reason; their log bytes */
  static const char *const reasons[] = {"",        "exited",     "signaled", "stopped",
                                        "timeout", "oom-killed", "lost",     "corrupt"};
  uint64_t by[5][RR_ARRAY_SIZE(reasons) + 1];
  uint64_t written[2] = {0, 0}, dropped[2] = {0, 0};
  memset(by, 0, sizeof by);
  job **v = NULL;
  size_t n = 0;
  rr_err e = {0};
  if (ctx->jobs && job_table_list(ctx->jobs, (job_state)0, NULL, &v, &n, &e) == 0) {
    for (size_t i = 0; i < n; i++) {
      const job *j = v[i];
      size_t r = 0;
      while (r < RR_ARRAY_SIZE(reasons) && strcmp(reasons[r], j->reason))
        r++;
      by[j->state >= 1 && j->state <= 4 ? j->state : 0][r]++;
      for (int s = 0; s < 2; s++) {
        written[s] += j->size[s];
        dropped[s] += j->kept_from[s];
      }
    }
  }
  free(v);
  put(p, "# HELP runrpc_jobs Jobs held now (running and finished, until retention deletes "
         "them), by state and reason.\n# TYPE runrpc_jobs gauge\n");
  for (int st = 1; st <= 4; st++)
    for (size_t r = 0; r <= RR_ARRAY_SIZE(reasons); r++)
      if (by[st][r] || (r == 0 && st == JOB_RUNNING))
        put(p, "runrpc_jobs{state=\"%s\",reason=\"%s\"} %llu\n", job_state_name((job_state)st),
            r < RR_ARRAY_SIZE(reasons) ? reasons[r] : "other", (unsigned long long)by[st][r]);
  put(p,
      "# HELP runrpc_job_log_bytes Output bytes written by the jobs held now, by stream.\n"
      "# TYPE runrpc_job_log_bytes gauge\n"
      "runrpc_job_log_bytes{stream=\"stdout\"} %llu\nrunrpc_job_log_bytes{stream=\"stderr\"} "
      "%llu\n",
      (unsigned long long)written[0], (unsigned long long)written[1]);
  put(p,
      "# HELP runrpc_job_log_dropped_bytes Of those, bytes dropped by the log size cap.\n"
      "# TYPE runrpc_job_log_dropped_bytes gauge\n"
      "runrpc_job_log_dropped_bytes{stream=\"stdout\"} %llu\n"
      "runrpc_job_log_dropped_bytes{stream=\"stderr\"} %llu\n",
      (unsigned long long)dropped[0], (unsigned long long)dropped[1]);
  put(p,
      "# HELP runrpc_state_dir_full Whether the state dir was found full at the last "
      "write (1: new jobs are refused).\n# TYPE runrpc_state_dir_full gauge\n"
      "runrpc_state_dir_full %d\n",
      ctx->jobs && job_table_disk_full(ctx->jobs) ? 1 : 0);
  put(p,
      "# HELP process_resident_memory_bytes Resident memory of rund.\n"
      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
      (unsigned long long)proc_rss_bytes());
  put(p,
      "# HELP runrpc_metrics_scrapes_total Pages served by this listener.\n"
      "# TYPE runrpc_metrics_scrapes_total counter\nrunrpc_metrics_scrapes_total %llu\n",
      (unsigned long long)++m->scrapes);
}

static void scrape_close(scrape *s) {
  rund_metrics *m = s->m;
  for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
    if (m->conns[i] == s)
      m->conns[i] = NULL;
  loop_fd_del(m->ctx->l, s->fd);
  close(s->fd);
  if (s->timer)
    loop_timer_cancel(m->ctx->l, s->timer);
  free(s->out);
  free(s);
}

static void scrape_timeout(loop *l, void *data) {
  (void)l;
  scrape *s = data;
  s->timer = 0;
  scrape_close(s);
}

/* A whole response with a text body. */
static void scrape_respond(scrape *s, const char *status, const char *ctype, const char *body,
                           size_t blen) {
  page p = {.buf = NULL};
  put(&p,
      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
      "\r\n",
      status, ctype, blen);
  if (!p.oom && blen) {
    char *b = realloc(p.buf, p.len + blen);
    if (b) {
      memcpy(b + p.len, body, blen);
      p.buf = b;
      p.len += blen;
    } else {
      p.oom = true;
    }
  }
  if (p.oom) {
    free(p.buf);
    scrape_close(s);
    return;
  }
  s->out = p.buf;
  s->outlen = p.len;
  rr_err e = {0};
  if (loop_fd_mod(s->m->ctx->l, s->fd, EPOLLOUT, &e) < 0)
    scrape_close(s);
}

static void scrape_request(scrape *s) {
  char *eol = memchr(s->in, '\n', s->inlen);
  size_t linelen = eol ? (size_t)(eol - s->in) : s->inlen;
  char line[256];
  snprintf(line, sizeof line, "%.*s", (int)(linelen < sizeof line ? linelen : sizeof line - 1),
           s->in);
  char method[16] = "", target[200] = "";
  if (sscanf(line, "%15s %199s HTTP/1.%*c", method, target) != 2) {
    static const char bad[] = "bad request\n";
    scrape_respond(s, "400 Bad Request", "text/plain", bad, sizeof bad - 1);
    return;
  }
  char *q = strchr(target, '?');
  if (q)
    *q = '\0';
  if (strcmp(target, "/metrics") != 0) {
    static const char nf[] = "not found: GET /metrics\n";
    scrape_respond(s, "404 Not Found", "text/plain", nf, sizeof nf - 1);
    return;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char na[] = "only GET\n";
    scrape_respond(s, "405 Method Not Allowed", "text/plain", na, sizeof na - 1);
    return;
  }
  page p = {.buf = NULL};
  metrics_page(s->m, &p);
  if (p.oom) {
    free(p.buf);
    scrape_close(s);
    return;
  }
  scrape_respond(s, "200 OK", "text/plain; version=0.0.4; charset=utf-8", p.buf,
                 strcmp(method, "HEAD") ? p.len : 0);
  free(p.buf);
}

static void scrape_on_io(loop *l, int fd, uint32_t events, void *data) {
  (void)l;
  scrape *s = data;
  if (s->draining) {
    /* what the client still sends after our answer: read and dropped until
     * it closes (or the timeout), so that closing does not reset the
     * connection under the answer it has not read yet */
    char sink[4096];
    ssize_t n = recv(fd, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      scrape_close(s);
    return;
  }
  if (s->out) {
    while (s->outoff < s->outlen) {
      ssize_t n = send(fd, s->out + s->outoff, s->outlen - s->outoff, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0)
        break;
      s->outoff += (size_t)n;
    }
    rr_err e = {0};
    if (s->outoff < s->outlen || shutdown(fd, SHUT_WR) < 0 ||
        loop_fd_mod(s->m->ctx->l, fd, EPOLLIN, &e) < 0) {
      scrape_close(s);
      return;
    }
    s->draining = true;
    return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  ssize_t n = recv(fd, s->in + s->inlen, sizeof s->in - s->inlen, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    scrape_close(s);
    return;
  }
  s->inlen += (size_t)n;
  if (memmem(s->in, s->inlen, "\r\n\r\n", 4) || memmem(s->in, s->inlen, "\n\n", 2)) {
    scrape_request(s);
  } else if (s->inlen == sizeof s->in) {
    static const char big[] = "request head too large\n";
    scrape_respond(s, "431 Request Header Fields Too Large", "text/plain", big, sizeof big - 1);
  }
}

static void metrics_on_accept(loop *l, int fd, uint32_t events, void *data) {
  (void)events;
  rund_metrics *m = data;
  for (int k = 0; k < 16; k++) {
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
      return;
    size_t slot = 0;
    while (slot < METRICS_MAX_CONNS && m->conns[slot])
      slot++;
    scrape *s = slot < METRICS_MAX_CONNS ? calloc(1, sizeof *s) : NULL;
    rr_err e = {0};
    if (!s) {
      close(cfd);
      continue;
    }
    s->m = m;
    s->fd = cfd;
    if (loop_fd_add(l, cfd, EPOLLIN, "metrics", scrape_on_io, s, &e) < 0) {
      close(cfd);
      free(s);
      continue;
    }
    m->conns[slot] = s;
    s->timer = loop_timer_add(l, METRICS_TIMEOUT_MS, scrape_timeout, s);
    if (!s->timer)
      scrape_close(s);
  }
}

int rund_metrics_open(rund_ctx *ctx, const char *addr, rr_err *e) {
  char host[256];
  const char *port;
  if (rr_host_port_split(addr, host, sizeof host, &port) < 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--metrics \"%s\": want HOST:PORT or [V6]:PORT",
                      addr);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST};
  struct addrinfo *res = NULL;
  int r = *port ? getaddrinfo(*host ? host : NULL, port, &hints, &res) : EAI_NONAME;
  if (r != 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--metrics \"%s\": %s", addr,
                      *port ? gai_strerror(r) : "missing port");
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    freeaddrinfo(res);
    return rr_err_sys(e, RR_FAILED_PRECONDITION, saved, "--metrics: cannot listen on \"%s\"", addr);
  }
  bool loopback = rr_sockaddr_is_loopback(res->ai_addr);
  freeaddrinfo(res);
  rund_metrics *m = calloc(1, sizeof *m);
  if (!m || loop_fd_add(ctx->l, fd, EPOLLIN, "metrics listener", metrics_on_accept, m, e) < 0) {
    close(fd);
    free(m);
    return m ? -1 : rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  m->ctx = ctx;
  m->fd = fd;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[64] = "?";
  unsigned p = 0;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
      getnameinfo((struct sockaddr *)&ss, len, ip, sizeof ip, NULL, 0, NI_NUMERICHOST) == 0)
    p = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
  snprintf(m->addr, sizeof m->addr, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, p);
  ctx->metrics = m;
  char q[256];
  rr_info("metrics", "addr=%s path=/metrics", rr_log_quote(q, sizeof q, m->addr));
  if (!loopback)
    rr_warn("metrics listener is not on loopback: anyone who reaches it reads job counts and "
            "call rates (it has no authentication)",
            "addr=%s", q);
  return 0;
}

void rund_metrics_free(rund_ctx *ctx) {
  rund_metrics *m = ctx->metrics;
  if (!m)
    return;
  for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
    if (m->conns[i])
      scrape_close(m->conns[i]);
  loop_fd_del(ctx->l, m->fd);
  close(m->fd);
  for (size_t i = 0; i < m->nmethods; i++)
    free(m->methods[i].path);
  free(m);
  ctx->metrics = NULL;
}
