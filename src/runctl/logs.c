/* runctl logs ID [-f|--follow] [--stdout|--stderr] [--tail N] [--offset N|OUT,ERR] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runctl.h"

#define LOGS_TAIL_WINDOW (64u * 1024u)
#define LOGS_TAIL_WINDOW_MAX (64u * 1024u * 1024u)

typedef struct logs_state {
  const char *what;    /* "logs ID" */
  bool seen[2];        /* a chunk of that stream came already */
  uint64_t skipped[2]; /* bytes the cap took after reading had begun */
} logs_state;

static const char *stream_name(runrpc_stream s) {
  return s == RUNRPC_STREAM_STDERR ? "stderr" : "stdout";
}

static int logs_chunk(runrpc_stream stream, uint64_t offset, const void *data, size_t len,
                      uint64_t dropped, void *ud) {
  logs_state *st = ud;
  int i = stream == RUNRPC_STREAM_STDERR;
  if (dropped) {
    fprintf(stderr,
            "runctl: logs: %llu bytes of %s were dropped by the log size cap before offset %llu\n",
            (unsigned long long)dropped, stream_name(stream), (unsigned long long)offset);
    /* dropped before the first chunk is history; later, this reader missed them */
    if (st->seen[i])
      st->skipped[i] += dropped;
  }
  st->seen[i] = true;
  if (len)
    runctl_write_or_die(i ? STDERR_FILENO : STDOUT_FILENO, data, len);
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
  return w->len == w->want; /* enough: stop (the job may write on) */
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

/* Print the last n lines of stream s, whose size is size; *ret_end = where
 * a follower goes on. Reads a window from the end, growing it until it has
 * n lines (or is the whole kept log). */
static int logs_tail_stream(runctl_ctx *ctx, const char *id, runrpc_stream s, uint64_t size,
                            uint64_t n, const char *what) {
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
    /* the whole (kept) log is in the window: print what there is */
    bool whole = from == 0 || (w.started && w.start > from) || win >= LOGS_TAIL_WINDOW_MAX;
    if (at >= 0 || whole) {
      size_t skip = at >= 0 ? (size_t)at : 0;
      runctl_write_or_die(s == RUNRPC_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO, w.buf + skip,
                          w.len - skip);
      free(w.buf);
      return 0;
    }
    free(w.buf);
  }
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

static int logs_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"follow", no_argument, NULL, 'f'},
      {"stdout", no_argument, NULL, 'o'},
      {"stderr", no_argument, NULL, 'e'},
      {"tail", required_argument, NULL, 'n'},
      {"offset", required_argument, NULL, 'O'},
      {"help", no_argument, NULL, 'h'},
      {0},
  };
  runrpc_logs_request req = {0};
  bool out = false, err_only = false, has_offset = false, pair = false, has_tail = false;
  uint64_t tail = 0, offsets[2] = {0, 0};
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
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
  int idrc = runctl_take_job_id(ctx, argc, argv, 0, id);
  if (idrc)
    return idrc;
  req.job_id = id;
  int rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  char what[64];
  snprintf(what, sizeof what, "logs %s", id);
  runrpc_error err;
  if (has_tail) {
    runrpc_job_status st;
    if (runrpc_status(ctx->client, id, &st, &err) < 0)
      return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
    req.stdout_offset = st.stdout_bytes;
    req.stderr_offset = st.stderr_bytes;
    runrpc_job_status_free(&st);
    if (!err_only &&
        (rc = logs_tail_stream(ctx, id, RUNRPC_STREAM_STDOUT, req.stdout_offset, tail, what)) != 0)
      return rc;
    if (!out &&
        (rc = logs_tail_stream(ctx, id, RUNRPC_STREAM_STDERR, req.stderr_offset, tail, what)) != 0)
      return rc;
    if (!req.follow)
      return 0;
  }
  logs_state ls = {.what = what, .seen = {has_tail, has_tail}};
  if (runrpc_logs(ctx->client, &req, logs_chunk, &ls, &err) < 0)
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  if (ls.skipped[0] || ls.skipped[1]) {
    fprintf(stderr,
            "runctl: %s: output is incomplete: the log size cap dropped %llu bytes of stdout and "
            "%llu of stderr before they were read (rund --max-log-bytes)\n",
            what, (unsigned long long)ls.skipped[0], (unsigned long long)ls.skipped[1]);
    return RUNCTL_EXIT_FAILURE;
  }
  return 0;
}

const runctl_command runctl_cmd_logs = {
    .name = "logs",
    .run = logs_run,
    .usage = "logs ID [-f|--follow] [--stdout|--stderr] [--tail N] [--offset N|OUT,ERR]",
    .help = "Print a job's output from the beginning: its stdout bytes to stdout and its\n"
            "stderr bytes to stderr, exactly. Bytes dropped by the log size cap are\n"
            "reported on stderr; bytes the cap dropped while this runctl was reading\n"
            "(a follower that fell behind) make it exit 1 at the end.\n"
            "\n"
            "Options:\n"
            "  -f, --follow        keep printing until the job ends\n"
            "  --stdout            only the job's stdout\n"
            "  --stderr            only the job's stderr\n"
            "  --tail N            only the last N lines of each stream (stdout's, then\n"
            "                      stderr's), then what follows with -f\n"
            "  --offset N|OUT,ERR  start at byte N of the one stream chosen, or at OUT of\n"
            "                      stdout and ERR of stderr (a reader reconnecting where\n"
            "                      it stopped)\n",
};
