/* The audit log (--audit-log PATH|stderr, off by default): one logfmt line
 * per RPC as it ends, e.g.
 *   ts=2026-12-03T15:50:00.123Z audit=rpc method=/runrpc.v1.Jobs/Start
 *   identity="token:alice" peer="127.0.0.1:40112" job=01J... argv=["sh","-c","x"]
 *   code=OK duration_ms=1.234
 * What a call was about (its job id, the argv of Start and Exec) is noted on
 * the call from its first request message and from StartResponse, through
 * the server's message hook; the line is written from the call-end hook,
 * which this file also dispatches to the metrics. Never written: env values
 * (resolved secrets included), tokens, stdin or output. Every byte of a value
 * a client chose is escaped (quotes, backslashes, control bytes and bytes
 * that are not UTF-8), so a line is one line whatever argv holds.
 *
 * Off by default: an audit line per call is a second log that grows with
 * the call rate (a polling client makes thousands a minute), and where it
 * goes and how long it is kept is the operator's choice. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "rund.h"

/* argv bytes quoted into a note at most; the rest is counted, not shown */
#define AUDIT_ARGV_MAX (16u * 1024u)
#define AUDIT_WARN_EVERY_MS 60000

struct rund_audit {
  int fd;
  char *path; /* NULL: stderr */
  uint64_t lost, lost_warned_ms;
};

/* A growing line; oom makes every later append a no-op. */
typedef struct audit_buf {
  char *p;
  size_t len, cap;
  bool oom;
} audit_buf;

static void buf_add(audit_buf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->cap ? b->cap * 2 : 512) + n;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_str(audit_buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Length of the well-formed UTF-8 sequence at s (a non-ASCII lead byte), 0
 * if it is not one (overlong forms, surrogates and > U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  size_t k = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
  if (!k || k > n || s[0] > 0xf4)
    return 0;
  for (size_t i = 1; i < k; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
      (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
    return 0;
  return k;
}

/* "..." with \" \\ \n \t \r and \xNN for other control bytes, DEL and
 * bytes that are not UTF-8. */
static void rund_audit_quote(audit_buf *b, const void *data, size_t n) {
  const unsigned char *s = data;
  buf_add(b, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      buf_add(b, esc, 2);
    } else if (c == '\n' || c == '\t' || c == '\r') {
      esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
      buf_add(b, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\x%02x", c);
      buf_add(b, esc, 4);
    } else if (c >= 0x80) {
      size_t k = utf8_seq(s + i, n - i);
      if (k) {
        buf_add(b, (const char *)s + i, k);
        i += k;
        continue;
      }
      snprintf(esc, sizeof esc, "\\x%02x", c);
      buf_add(b, esc, 4);
    } else {
      buf_add(b, (const char *)&c, 1);
    }
    i++;
  }
  buf_add(b, "\"", 1);
}

/* --- reading request fields by name (rund decodes with rundwire's mirror
 * of the API, bytes for strings; the API's own messages have strings) */

static const ProtobufCFieldDescriptor *field_set(const ProtobufCMessage *m, const char *name) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
  if (!f || f->label == PROTOBUF_C_LABEL_REPEATED)
    return NULL;
  if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
      *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
    return NULL;
  return f;
}

/* A string or bytes field: its bytes (n 0 if unset or empty). */
static const void *field_bytes(const ProtobufCMessage *m, const char *name, size_t *n) {
  const ProtobufCFieldDescriptor *f = field_set(m, name);
  const char *at = f ? (const char *)m + f->offset : NULL;
  *n = 0;
  if (f && f->type == PROTOBUF_C_TYPE_STRING) {
    const char *s = *(char *const *)at;
    *n = s ? strlen(s) : 0;
    return s;
  }
  if (f && f->type == PROTOBUF_C_TYPE_BYTES) {
    const ProtobufCBinaryData *d = (const ProtobufCBinaryData *)at;
    *n = d->len;
    return d->data;
  }
  return NULL;
}

static const ProtobufCMessage *field_message(const ProtobufCMessage *m, const char *name) {
  const ProtobufCFieldDescriptor *f = field_set(m, name);
  if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
    return NULL;
  return *(ProtobufCMessage *const *)((const char *)m + f->offset);
}

static void note_argv(audit_buf *b, const ProtobufCMessage *cmd) {
  size_t n, shown = 0, total = 0;
  const void *path = field_bytes(cmd, "path", &n);
  const ProtobufCFieldDescriptor *af =
      protobuf_c_message_descriptor_get_field_by_name(cmd->descriptor, "args");
  size_t nargs = 0;
  const char *base = (const char *)cmd;
  if (af && af->label == PROTOBUF_C_LABEL_REPEATED &&
      (af->type == PROTOBUF_C_TYPE_STRING || af->type == PROTOBUF_C_TYPE_BYTES))
    nargs = *(const size_t *)(base + af->quantifier_offset);
  buf_str(b, " argv=[");
  for (size_t i = 0; i <= nargs; i++) {
    const void *arg = path;
    size_t len = n;
    if (i > 0) {
      const void *v = *(void *const *)(base + af->offset);
      if (af->type == PROTOBUF_C_TYPE_STRING) {
        arg = ((char *const *)v)[i - 1];
        len = arg ? strlen(arg) : 0;
      } else {
        const ProtobufCBinaryData *d = &((const ProtobufCBinaryData *)v)[i - 1];
        arg = d->data;
        len = d->len;
      }
    }
    total += len;
    if (shown + len > AUDIT_ARGV_MAX)
      continue;
    shown += len;
    if (i > 0)
      buf_add(b, ",", 1);
    rund_audit_quote(b, arg ? arg : "", len);
  }
  buf_add(b, "]", 1);
  if (total > shown) {
    char more[64];
    snprintf(more, sizeof more, " argv_bytes=%zu argv_shown=%zu", total, shown);
    buf_str(b, more);
  }
}

static void audit_on_message(void *data, rpc_call *c, const ProtobufCMessage *msg, bool response) {
  audit_buf b = {0};
  size_t n;
  const void *v;
  if (response) {
    /* the job a Start made */
    if (msg->descriptor != &runrpc__v1__start_response__descriptor)
      return;
    v = field_bytes(msg, "job_id", &n);
    if (!n)
      return;
    buf_str(&b, " job=");
    rund_audit_quote(&b, v, n);
  } else {
    if (rpc_call_note(c))
      return; /* the first request message says what the call is about */
    if ((v = field_bytes(msg, "job_id", &n)) && n) {
      buf_str(&b, " job=");
      rund_audit_quote(&b, v, n);
    }
    if ((v = field_bytes(msg, "ref", &n)) && n) {
      buf_str(&b, " image=");
      rund_audit_quote(&b, v, n);
    }
    const ProtobufCMessage *cmd = field_message(msg, "command");
    const ProtobufCMessage *start = cmd ? NULL : field_message(msg, "start");
    if (start)
      cmd = field_message(start, "command");
    if (cmd)
      note_argv(&b, cmd);
  }
  /* out of memory or past the note's bound: the line goes without it */
  if (!b.oom && rpc_call_note_append(c, b.p ? b.p : "", b.len) < 0)
    rpc_call_note_append(c, " note_dropped=true", 18);
  free(b.p);
}

static void audit_write(rund_audit *a, const char *line, size_t n) {
  int fd = a->fd;
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, line + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int err = w < 0 ? errno : ENOSPC;
      a->lost++;
      uint64_t now = rr_now_mono_ms();
      if (!a->lost_warned_ms || now - a->lost_warned_ms >= AUDIT_WARN_EVERY_MS) {
        char q[4200];
        a->lost_warned_ms = now;
        rr_warn("audit line not written", "path=%s error=%s lost=%llu",
                rr_log_quote(q, sizeof q, a->path ? a->path : "stderr"), strerror(err),
                (unsigned long long)a->lost);
      }
      return;
    }
    off += (size_t)w;
  }
}

static void audit_line(rund_ctx *ctx, const rpc_call *c, int code, uint64_t us) {
  audit_buf b = {0};
  char ts[96]; /* room for any int fields: gcc -O2 checks the worst case */
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  snprintf(ts, sizeof ts,
           "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ audit=rpc method=", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
  buf_str(&b, ts);
  const char *path = rpc_call_path(c);
  rund_audit_quote(&b, path, strlen(path));
  /* who: as the call was judged (the token's name, never the token) */
  authz_identity id = {0};
  rr_err e = {0};
  const rpc_peer *peer = rpc_call_peer(c);
  buf_str(&b, " identity=");
  if (authz_identify(&ctx->authz, peer, rpc_call_metadata(c, "authorization", NULL), &id, &e) ==
      0) {
    audit_buf who = {0};
    for (size_t i = 0; i < id.n; i++) {
      if (i)
        buf_add(&who, ",", 1);
      buf_str(&who, id.principals[i]);
    }
    rund_audit_quote(&b, who.p ? who.p : "", who.len);
    if (id.admin)
      buf_str(&b, " admin=true");
    free(who.p);
    authz_identity_clear(&id);
  } else {
    buf_str(&b, "-");
  }
  buf_str(&b, " peer=");
  rund_audit_quote(&b, peer->addr, strlen(peer->addr));
  const char *note = rpc_call_note(c);
  if (note)
    buf_str(&b, note);
  char tail[96];
  snprintf(tail, sizeof tail, " code=%s duration_ms=%llu.%03llu\n", rr_code_name(code),
           (unsigned long long)(us / 1000), (unsigned long long)(us % 1000));
  buf_str(&b, tail);
  if (b.oom) {
    ctx->audit->lost++;
  } else {
    audit_write(ctx->audit, b.p, b.len);
  }
  free(b.p);
}

void rund_call_end(void *data, const rpc_call *c, int code, uint64_t us) {
  rund_ctx *ctx = data;
  if (ctx->metrics)
    rund_metrics_call_end(ctx, c, code, us);
  if (ctx->audit)
    audit_line(ctx, c, code, us);
}

static int audit_open_fd(const char *path, rr_err *e) {
  if (!path)
    return STDERR_FILENO;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot open audit log \"%s\"", path);
  return fd;
}

int rund_audit_apply(rund_ctx *ctx, const char *where, rr_err *e) {
  const char *path = where && strcmp(where, "stderr") != 0 ? where : NULL;
  rund_audit *a = ctx->audit;
  if (!where) {
    if (a) {
      if (ctx->server)
        rpc_server_set_call_message(ctx->server, NULL, NULL);
      if (a->path)
        close(a->fd);
      free(a->path);
      free(a);
      ctx->audit = NULL;
    }
    return 0;
  }
  int fd = audit_open_fd(path, e);
  if (fd < 0)
    return -1; /* the old log, if any, stays */
  char *copy = path ? strdup(path) : NULL;
  if (path && !copy) {
    close(fd);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (!a && !(a = calloc(1, sizeof *a))) {
    if (path)
      close(fd);
    free(copy);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (ctx->audit && a->path)
    close(a->fd);
  free(a->path);
  a->fd = fd;
  a->path = copy;
  ctx->audit = a;
  rpc_server_set_call_message(ctx->server, audit_on_message, ctx);
  return 0;
}

void rund_audit_free(rund_ctx *ctx) {
  if (ctx->audit)
    rund_audit_apply(ctx, NULL, NULL);
}
