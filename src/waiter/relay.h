/* A background job's output relay, run by its keeper (rund-waiter, or a
 * sandbox's init in its place): the job writes into pipes, the keeper copies
 * them into STATE/jobs/<ID>/{stdout,stderr} (splice: pipe to file without a
 * copy through user space). Whatever the disk does, the job never blocks on
 * it nor sees an error: bytes that cannot be stored (ENOSPC, EDQUOT, EIO...)
 * are drained, counted per stream and said in the job's exit file, and each
 * later chunk is tried again, so storing resumes once space frees.
 * Written against sys.h's calls only: no allocation, no C library needed. */
#pragma once
#include <poll.h>
#include <stdbool.h>

enum {
  RELAY_STREAMS = 2,
  RELAY_BUF = 65536, /* the caller's scratch buffer for drained bytes */
  /* The exit file: the exit line at 0 ("exit N END_NS\n"), the lost line
   * at RELAY_LOST_AT (RELAY_LINE bytes, "lost OUT ERR OUT_ERRNO ERR_ERRNO",
   * space padded, '\n' last); RELAY_FILE_SIZE bytes are allocated up front
   * so that both fit on a full disk. */
  RELAY_LOST_AT = 64,
  RELAY_LINE = 64,
  RELAY_FILE_SIZE = RELAY_LOST_AT + RELAY_LINE,
  RELAY_SAY_MS = 100, /* the lost line is rewritten at most this often */
  /* The order index, after the lines: RELAY_INDEX_MAGIC, then one relay_rec
   * per chunk moved (or lost), appended in the order the keeper moved them:
   * how stdout and stderr interleaved, and when. Written with the first
   * chunk only (a job without output has none), in one pwrite per round;
   * the first RELAY_PREALLOC bytes of the file are allocated up front (the
   * same one block the lines take) so that ~240 records fit on a full disk. */
  RELAY_INDEX_AT = RELAY_FILE_SIZE,
  RELAY_REC_SIZE = 16,
  RELAY_PREALLOC = 4096,
  RELAY_PEND = 64, /* records held while the file refuses them */
  /* relay_rec.kind */
  RELAY_REC_STDERR = 1, /* else stdout */
  RELAY_REC_LOST = 2,   /* len bytes the file refused: not in the log */
};
#define RELAY_INDEX_MAGIC "runrpc-index-v1\n" /* RELAY_REC_SIZE bytes, no NUL */

/* One record of the index, native byte order: len bytes of a stream, at the
 * stream's current end (a stream's records add up to its log's size, plus
 * what was lost), moved at time_ns (wall clock, never going back). */
typedef struct relay_rec {
  unsigned long long time_ns;
  unsigned int len;
  unsigned int kind;
} relay_rec;

typedef struct relay_stream {
  int in;  /* the pipe's read end; -1 once at EOF */
  int out; /* the log file (not O_APPEND: splice refuses those) */
  unsigned long long lost;
  int err; /* errno of the last failure to store; 0: none yet */
  bool no_splice;
} relay_stream;

typedef struct relay {
  relay_stream s[RELAY_STREAMS];
  int status_fd; /* the exit file; -1: none (losses are only counted) */
  bool lost_dirty;
  long long lost_said_ms;
  char *buf;                  /* RELAY_BUF bytes */
  relay_rec pend[RELAY_PEND]; /* index records not written yet */
  unsigned npend;
  long long index_end;                  /* where the next record goes; 0: magic not written yet */
  bool index_off;                       /* no index (no exit file), or it fell too far behind */
  unsigned long long round_ns, last_ns; /* this round's time (0: not taken) */
} relay;

/* in[i] -> out[i] for stdout and stderr (in[i] < 0: none); makes the
 * pipes non-blocking and allocates the exit file's records. */
void relay_init(relay *r, const int in[RELAY_STREAMS], const int out[RELAY_STREAMS], int status_fd,
                char *buf);
/* A stream is not at EOF yet. */
bool relay_open(const relay *r);
enum { RELAY_MAX_EXTRA = 4 };
/* Wait at most timeout_ms (< 0: no limit) for output or for one of the n
 * (<= RELAY_MAX_EXTRA) extra pollfds, relay what came; the extra ones get
 * their revents. */
void relay_wait(relay *r, struct pollfd *extra, unsigned long n, int timeout_ms);
/* What is in the pipes now, without waiting (the writers may live on). */
void relay_drain(relay *r);
/* Say the lost counts now if they changed since last said. */
void relay_flush(relay *r);
/* The exit line: "exit N END_NS\n" or "signal N END_NS\n" (END_NS: wall
 * clock, ns since the epoch), one write at offset 0. */
void relay_record_exit(int status_fd, bool signaled, int n);
