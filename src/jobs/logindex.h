/* The read side of a job's order index: the records its keeper appends to
 * STATE/jobs/<ID>/exit after the exit and lost lines (format and writer:
 * src/waiter/relay.h), one per chunk of stdout or stderr it moved, in the
 * order it moved them, with the time. A job stored before the index existed
 * (or whose keeper has not moved anything yet) has none. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct logindex_rec {
  int stream; /* LOG_STDOUT or LOG_STDERR */
  bool lost;  /* len bytes the keeper could not store (not in the log) */
  uint32_t len;
  int64_t time_ns; /* wall clock when moved */
} logindex_rec;

/* Open the job's exit file for reading the index; -1 with NOT_FOUND if
 * there is none (a job started without a keeper). */
int logindex_open(const char *dir, rr_err *e);
/* The index was begun (its magic is there). */
bool logindex_present(int fd);
/* Up to n records from record number first on; how many (0: none yet). */
ssize_t logindex_read(int fd, uint64_t first, logindex_rec *out, size_t n, rr_err *e);
