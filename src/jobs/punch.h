/* Hole punching off the event loop. fallocate(PUNCH_HOLE) takes the inode's
 * lock, which a writer throttled by dirty-page writeback holds for as long as
 * the disk makes it wait (seconds under load): done on the loop, a job
 * writing flat out would freeze rund. One worker thread takes the punches
 * from a bounded queue; it only calls openat, fallocate and close (no allocation,
 * no locks shared with anything else, every signal blocked), so it is safe
 * beside rund's vfork-style spawns. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct punch_queue punch_queue;

/* Longest name punch_queue_add takes (bytes, with the NUL). */
#define PUNCH_NAME_MAX 48

/* Start the worker; names are relative to dir_fd (the queue keeps its own
 * duplicate). No file stays open between punches: the worker opens each one
 * for its punch only, so a running job's logs cost rund no fd. */
int punch_queue_new(punch_queue **ret, int dir_fd, rr_err *e);
/* Queue punching [off, off+len) of the file name (below dir_fd). false when
 * the queue is full or name too long: nothing queued, ask again later. A
 * file gone by then (its job deleted) is no error. */
bool punch_queue_add(punch_queue *q, const char *name, uint64_t off, uint64_t len);
/* Errors the worker met since the last call (0: none) and the last errno. */
uint64_t punch_queue_errors(punch_queue *q, int *last_errno);
/* Punches queued or running now. */
unsigned punch_queue_pending(punch_queue *q);
/* Let the worker finish what is queued for at most wait_ms, then stop it
 * (a worker stuck in the kernel is left behind, the process is ending). */
void punch_queue_free(punch_queue *q, unsigned wait_ms);
