/* runctl logs ID [-f|--follow] [--stdout|--stderr] [--tail N] [--offset N|OUT,ERR]
 *                [-t|--timestamps] [--since TIME] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runctl.h"

#define LOGS_TAIL_WINDOW (64u * 1024u)
#define LOGS_TAIL_WINDOW_MAX (64u * 1024u * 1024u)
#define LOGS_STAMP_LEN 31 /* "2006-01-02T15:04:05.000000000Z " */

typedef struct logs_state {
  const char *what;    /* "logs ID" */
  bool timestamps;     /* each line starts with its time */
  bool bol[2];         /* the stream is at the start of a line */
  bool seen[2];        /* a chunk of that stream came already */
  uint64_t skipped[2]; /* bytes the cap took after reading had begun */
  uint64_t lost[2];    /* bytes the keeper could not store */
  char *buf;           /* a chunk with its lines' times */
  size_t cap;
} logs_state;

static const char *stream_name(runrpc_stream s) {
  return s == RUNRPC_STREAM_STDERR ? "stderr" : "stdout";
}

/* RFC 3339, UTC, nanoseconds, as docker prints them; unknown (0): the zero
 * time, as docker prints that. */
static void logs_stamp(char out[LOGS_STAMP_LEN + 1], int64_t ns) {
  struct tm tm;
  time_t sec = (time_t)(ns / 1000000000);
  if (ns <= 0 || !gmtime_r(&sec, &tm)) {
    memcpy(out, "0001-01-01T00:00:00.000000000Z ", LOGS_STAMP_LEN + 1);
    return;
  }
  char date[24];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, LOGS_STAMP_LEN + 1, "%.19s.%09lldZ ", date, (long long)(ns % 1000000000));
}

/* Data of stream i with each line's time first: a line gets the time of
 * the chunk holding its first byte. */
static void logs_write_stamped(logs_state *st, int i, const runrpc_log_chunk *ch) {
  const char *p = ch->data, *end = p + ch->len;
  size_t lines = 1;
  for (const char *q = p; q < end; q++)
    lines += *q == '\n';
  size_t need = ch->len + lines * LOGS_STAMP_LEN;
  if (need > st->cap) {
    char *b = realloc(st->buf, need);
    if (!b) {
      fprintf(stderr, "runctl: %s: out of memory\n", st->what);
      exit(RUNCTL_EXIT_FAILURE);
    }
    st->buf = b;
    st->cap = need;
  }
  char stamp[LOGS_STAMP_LEN + 1];
  logs_stamp(stamp, ch->time_unix_ns);
  char *o = st->buf;
  while (p < end) {
    if (st->bol[i]) {
      memcpy(o, stamp, LOGS_STAMP_LEN);
      o += LOGS_STAMP_LEN;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl + 1 : end;
    memcpy(o, p, (size_t)(stop - p));
    o += stop - p;
    p = stop;
    st->bol[i] = nl != NULL;
  }
  runctl_write_or_die(i ? STDERR_FILENO : STDOUT_FILENO, st->buf, (size_t)(o - st->buf));
}

static int logs_chunk(const runrpc_log_chunk *ch, void *ud) {
  logs_state *st = ud;
  int i = ch->stream == RUNRPC_STREAM_STDERR;
  if (ch->dropped) {
    fprintf(stderr,
            "runctl: logs: %llu bytes of %s were dropped by the log size cap before offset %llu\n",
            (unsigned long long)ch->dropped, stream_name(ch->stream),
            (unsigned long long)ch->offset);
    /* dropped before the first chunk is history; later, this reader missed them */
    if (st->seen[i])
      st->skipped[i] += ch->dropped;
  }
  if (ch->lost) {
    fprintf(stderr,
            "runctl: logs: %llu bytes of %s are missing at offset %llu: the job's keeper could "
            "not store them (disk full)\n",
            (unsigned long long)ch->lost, stream_name(ch->stream), (unsigned long long)ch->offset);
    st->lost[i] += ch->lost;
  }
  st->seen[i] = true;
  if (!ch->len)
    return 0;
  if (st->timestamps)
    logs_write_stamped(st, i, ch);
  else
    runctl_write_or_die(i ? STDERR_FILENO : STDOUT_FILENO, ch->data, ch->len);
  return 0;
}

/* One stream's bytes [from, to) into memory (a window for --tail). */
typedef struct logs_window {
  char *buf;
  size_t len, want;
  uint64_t start; /* offset of buf[0] */
  bool started;
} logs_window;

static int window_chunk(runrpc_stream stream, uint64_t offset, const void *data, size_t len,
                        uint64_t dropped, void *ud) {
  logs_window *w = ud;
  if (!w->started) {
    w->start = offset;
    w->started = true;
  }
  size_t take = len < w->want - w->len ? len : w->want - w->len;
  memcpy(w->buf + w->len, data, take);
  w->len += take;
  /* read on to the end (what the job wrote since is ignored): a call
   * cancelled here could cost the next call on the connection its first
   * response */
  return 0;
}

/* Offset in buf where its last n lines start (a last line without its
 * newline counts); -1 when buf holds fewer. */
static long tail_start(const char *buf, size_t len, uint64_t n) {
  size_t i = len;
  if (i && buf[i - 1] == '\n')
    i--;
  for (uint64_t lines = 0; i > 0; i--) {
    if (buf[i - 1] == '\n' && ++lines == n)
      return (long)i;
  }
  return -1;
}

/* Where the last n lines of stream s (size bytes now) start, in *ret: reads
 * a window from the end, growing it until it has n lines (or is the whole
 * kept log). */
static int logs_tail_offset(runctl_ctx *ctx, const char *id, runrpc_stream s, uint64_t size,
                            uint64_t n, const char *what, uint64_t *ret) {
  *ret = size;
  if (n == 0)
    return 0;
  for (size_t win = LOGS_TAIL_WINDOW;; win *= 4) {
    uint64_t from = size > win ? size - win : 0;
    logs_window w = {.want = (size_t)(size - from)};
    if (!w.want)
      return 0;
    if (!(w.buf = malloc(w.want))) {
      fprintf(stderr, "runctl: %s: out of memory for a %zu-byte window\n", what, w.want);
      return RUNCTL_EXIT_FAILURE;
    }
    runrpc_logs_request req = {.job_id = id,
                               .stream = s,
                               .stdout_offset = s == RUNRPC_STREAM_STDOUT ? from : 0,
                               .stderr_offset = s == RUNRPC_STREAM_STDERR ? from : 0};
    runrpc_error err;
    if (runrpc_logs(ctx->client, &req, window_chunk, &w, &err) < 0 &&
        !(err.code == RUNRPC_CANCELLED && w.len == w.want)) {
      free(w.buf);
      return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
    }
    long at = tail_start(w.buf, w.len, n);
    free(w.buf);
    /* the whole (kept) log is in the window: print what there is */
    bool whole = from == 0 || (w.started && w.start > from) || win >= LOGS_TAIL_WINDOW_MAX;
    if (at >= 0 || whole) {
      *ret = (w.started ? w.start : from) + (at >= 0 ? (uint64_t)at : 0);
      return 0;
    }
  }
}

/* n decimal digits at *p (advanced); -1 if not there. */
static int since_digits(const char **p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (**p < '0' || **p > '9')
      return -1;
    v = v * 10 + (**p - '0');
  }
  return v;
}

/* ".123" (up to 9 digits kept, more ignored) at *p, as nanoseconds; 0 if
 * none. -1: a dot without digits. */
static int64_t since_fraction(const char **p) {
  if (**p != '.')
    return 0;
  (*p)++;
  int64_t ns = 0, scale = 100000000;
  const char *start = *p;
  for (; **p >= '0' && **p <= '9'; (*p)++, scale /= 10)
    ns += scale ? (**p - '0') * scale : 0;
  return *p == start ? -1 : ns;
}

/* RFC 3339: 2006-01-02T15:04:05[.frac](Z|+07:00); ns since the epoch. */
static int since_rfc3339(const char *s, int64_t *ret) {
  const char *p = s;
  struct tm tm = {0};
  int y = since_digits(&p, 4), mo, d, h, mi, sec;
  if (y < 0 || *p++ != '-' || (mo = since_digits(&p, 2)) < 0 || *p++ != '-' ||
      (d = since_digits(&p, 2)) < 0 || !strchr("Tt ", *p) || !*p++ ||
      (h = since_digits(&p, 2)) < 0 || *p++ != ':' || (mi = since_digits(&p, 2)) < 0 ||
      *p++ != ':' || (sec = since_digits(&p, 2)) < 0)
    return -1;
  int64_t frac = since_fraction(&p);
  int off = 0;
  if (frac < 0)
    return -1;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if ((oh = since_digits(&p, 2)) < 0 || *p++ != ':' || (om = since_digits(&p, 2)) < 0 ||
        oh > 23 || om > 59)
      return -1;
    off = sign * (oh * 3600 + om * 60);
  } else {
    return -1;
  }
  if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return -1;
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
  tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec == 60 ? 59 : sec; /* a leap second */
  time_t t = timegm(&tm);
  if (tm.tm_mday != d || tm.tm_mon != mo - 1) /* e.g. February 30 */
    return -1;
  *ret = ((int64_t)t - off) * 1000000000 + frac;
  return 0;
}

/* A duration as docker takes them (Go's): 10m, 1h30m, 1.5h, 90s, 250ms. */
static int since_duration(const char *s, int64_t *ret) {
  static const struct {
    const char *unit;
    int64_t ns;
  } units[] = {{"ns", 1},         {"us", 1000},       {"\u00b5s", 1000},   {"ms", 1000000},
               {"s", 1000000000}, {"m", 60000000000}, {"h", 3600000000000}};
  const char *p = s;
  long double total = 0;
  if (!*p)
    return -1;
  while (*p) {
    const char *num = p;
    while ((*p >= '0' && *p <= '9') || *p == '.')
      p++;
    char *end;
    errno = 0;
    long double v = strtold(num, &end);
    if (p == num || end != p || errno) /* digits and one dot only (no 1e3, 0x10) */
      return -1;
    size_t i = 0;
    for (; i < sizeof units / sizeof *units; i++) {
      size_t n = strlen(units[i].unit);
      /* "m" must not take the m of "ms" */
      if (strncmp(p, units[i].unit, n) == 0 && !(n == 1 && *p == 'm' && p[1] == 's'))
        break;
    }
    if (i == sizeof units / sizeof *units)
      return -1;
    total += v * (long double)units[i].ns;
    p += strlen(units[i].unit);
  }
  if (total > (long double)INT64_MAX)
    return -1;
  *ret = (int64_t)total;
  return 0;
}

/* --since TIME: RFC 3339, Unix seconds, or a duration back from now. */
static int logs_parse_since(const runctl_ctx *ctx, const char *s, int64_t *ret) {
  int64_t v;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  const char *p = s;
  while (*p >= '0' && *p <= '9')
    p++;
  if (p > s && p - s <= 11 && (*p == '.' || !*p)) { /* Unix seconds */
    int64_t frac = since_fraction(&p);
    if (frac >= 0 && !*p) {
      *ret = strtoll(s, NULL, 10) * 1000000000 + frac;
      return 0;
    }
  }
  if (since_rfc3339(s, &v) == 0) {
    if (v < 0)
      return runctl_usage_error(ctx, "invalid --since \"%s\" (before 1970)", s);
    *ret = v;
    return 0;
  }
  if (since_duration(s, &v) == 0) {
    *ret = v < now_ns ? now_ns - v : 0;
    return 0;
  }
  return runctl_usage_error(ctx,
                            "invalid --since \"%s\" (want an RFC 3339 time like "
                            "2006-01-02T15:04:05Z, Unix seconds, or a duration like 10m or 1h30m)",
                            s);
}

/* --offset N (one stream) or OUT,ERR (both). */
static int parse_offsets(const runctl_ctx *ctx, const char *arg, uint64_t ret[2], bool *pair) {
  char *end;
  errno = 0;
  unsigned long long a = strtoull(arg, &end, 10), b = 0;
  *pair = *end == ',';
  if (*pair)
    b = strtoull(end + 1, &end, 10);
  if (!*arg || *arg == '-' || strchr(arg, '-') || errno || *end || (*pair && end[-1] == ','))
    return runctl_usage_error(
        ctx, "invalid --offset \"%s\" (want BYTES, or OUT,ERR for both streams)", arg);
  ret[0] = a;
  ret[1] = *pair ? b : a;
  return 0;
}

/* The last line when bytes are missing from what was printed. */
static bool logs_say_incomplete(const char *what, const char *how, const uint64_t n[2],
                                const char *why) {
  if (!n[0] && !n[1])
    return false;
  fprintf(stderr,
          "runctl: %s: output is incomplete: %s %llu bytes of stdout and %llu of stderr%s\n", what,
          how, (unsigned long long)n[0], (unsigned long long)n[1], why);
  return true;
}

static int logs_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"follow", no_argument, NULL, 'f'},
      {"stdout", no_argument, NULL, 'o'},
      {"stderr", no_argument, NULL, 'e'},
      {"tail", required_argument, NULL, 'n'},
      {"offset", required_argument, NULL, 'O'},
      {"timestamps", no_argument, NULL, 't'},
      {"since", required_argument, NULL, 'S'},
      {"help", no_argument, NULL, 'h'},
      {0},
  };
  runrpc_logs_request req = {0};
  runrpc_logs_times times = {0};
  bool out = false, err_only = false, has_offset = false, pair = false, has_tail = false;
  uint64_t tail = 0, offsets[2] = {0, 0};
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":fth", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      req.follow = true;
      break;
    case 'o':
      out = true;
      break;
    case 'e':
      err_only = true;
      break;
    case 't':
      times.timestamps = true;
      break;
    case 'S':
      if (logs_parse_since(ctx, optarg, &times.since_unix_ns) != 0)
        return RUNCTL_EXIT_USAGE;
      break;
    case 'n': {
      char *end;
      errno = 0;
      unsigned long long v = strtoull(optarg, &end, 10);
      if (!*optarg || *optarg == '-' || *end || errno || v > 100000000ull)
        return runctl_usage_error(ctx, "invalid --tail \"%s\" (want a number of lines)", optarg);
      tail = v;
      has_tail = true;
      break;
    }
    case 'O':
      if (parse_offsets(ctx, optarg, offsets, &pair) != 0)
        return RUNCTL_EXIT_USAGE;
      has_offset = true;
      break;
    case 'h':
      return runctl_print_help(&runctl_cmd_logs), 0;
    default:
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  if (out && err_only)
    return runctl_usage_error(ctx, "--stdout and --stderr exclude each other");
  if (has_offset && has_tail)
    return runctl_usage_error(ctx, "--offset and --tail exclude each other");
  if (has_offset && !pair && !out && !err_only)
    return runctl_usage_error(ctx, "--offset N needs --stdout or --stderr (or give OUT,ERR)");
  if (has_offset && pair && (out || err_only))
    return runctl_usage_error(ctx, "--offset OUT,ERR is for both streams: drop --stdout/--stderr");
  req.stream = out ? RUNRPC_STREAM_STDOUT : err_only ? RUNRPC_STREAM_STDERR : RUNRPC_STREAM_BOTH;
  req.stdout_offset = offsets[0];
  req.stderr_offset = offsets[1];
  char id[RUNRPC_JOB_ID_SIZE];
  int rc = runctl_job_connect(ctx, argc, argv, 0, id, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  req.job_id = id;
  char what[64];
  snprintf(what, sizeof what, "logs %s", id);
  runrpc_error err;
  if (has_tail) { /* each stream's last lines, then on from there in the order written */
    runrpc_job_status st;
    if (runrpc_status(ctx->client, id, &st, &err) < 0)
      return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
    uint64_t size[2] = {st.stdout_bytes, st.stderr_bytes};
    runrpc_job_status_free(&st);
    if ((rc = logs_tail_offset(ctx, id, RUNRPC_STREAM_STDOUT, size[0], err_only ? 0 : tail, what,
                               &req.stdout_offset)) != 0 ||
        (rc = logs_tail_offset(ctx, id, RUNRPC_STREAM_STDERR, size[1], out ? 0 : tail, what,
                               &req.stderr_offset)) != 0)
      return rc;
  }
  logs_state ls = {.what = what,
                   .timestamps = times.timestamps,
                   .bol = {true, true},
                   .seen = {has_tail, has_tail}};
  rc = runrpc_logs_chunks(ctx->client, &req, &times, logs_chunk, &ls, &err);
  free(ls.buf);
  if (rc < 0)
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  bool skipped = logs_say_incomplete(what, "the log size cap dropped", ls.skipped,
                                     " before they were read (rund --max-log-bytes)");
  bool lost =
      logs_say_incomplete(what, "the job's keeper could not store", ls.lost, " (disk full)");
  if (skipped || lost)
    return RUNCTL_EXIT_FAILURE;
  return 0;
}

const runctl_command runctl_cmd_logs = {
    .name = "logs",
    .run = logs_run,
    .usage = "logs ID [-f|--follow] [--stdout|--stderr] [--tail N] [--offset N|OUT,ERR] "
             "[-t|--timestamps] [--since TIME]",
    .help = "Print a job's output from the beginning, in the order it was written: its stdout\n"
            "bytes to stdout and its stderr bytes to stderr, exactly, interleaved as the job's\n"
            "keeper moved them (jobs stored by a rund older than that order come stream by\n"
            "stream). Bytes dropped by the log size cap and bytes the keeper could not store\n"
            "(disk full) are reported on stderr with their stream, offset and count.\n"
            "\n"
            "Exit status: 0; 1 if the printed output is incomplete (bytes the keeper could\n"
            "not store, or bytes the cap dropped while this runctl was reading: a follower\n"
            "that fell behind) or on failure; 2 for bad usage.\n"
            "\n"
            "Options:\n"
            "  -f, --follow        keep printing until the job ends\n"
            "  --stdout            only the job's stdout\n"
            "  --stderr            only the job's stderr\n"
            "  --tail N            start at the last N lines of each stream (then what\n"
            "                      follows with -f)\n"
            "  --offset N|OUT,ERR  start at byte N of the one stream chosen, or at OUT of\n"
            "                      stdout and ERR of stderr (a reader reconnecting where\n"
            "                      it stopped)\n"
            "  -t, --timestamps    start each line with the time its first byte was written\n"
            "                      (RFC 3339, UTC, nanoseconds: 2006-01-02T15:04:05.000000000Z)\n"
            "  --since TIME        only output written at or after TIME: RFC 3339\n"
            "                      (2006-01-02T15:04:05Z, fraction and offset allowed), Unix\n"
            "                      seconds (1700000000.5), or a duration back from now (10m,\n"
            "                      1h30m, 90s, 1.5h)\n",
};
