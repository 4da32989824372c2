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
};

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
  char *buf; /* RELAY_BUF bytes */
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
