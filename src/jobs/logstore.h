/* On-disk state of jobs: STATE/jobs/<ULID>/{job.json,stdout,stderr}.
 * job.json is replaced atomically (tmp + fsync + rename + fsync dir; without
 * sync, a later version of a small file is one in-place pwrite). The
 * log files are written by the job's keeper (src/waiter/relay.c), which
 * copies the job's output pipes into them; the size cap punches
 * the oldest bytes out (offsets stay absolute) and readers are told how many
 * bytes they missed. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

enum { LOG_STDOUT = 0, LOG_STDERR = 1 };

/* "stdout" / "stderr". */
const char *logstore_stream_name(int stream);
/* Create the job's directory (must not exist). */
int logstore_job_dir_create(const char *dir, rr_err *e);
/* Open (create) a stream file for appending; the fd goes to the job. */
int logstore_stream_open_append(const char *dir, int stream, rr_err *e);
/* Create a stream file for the job's keeper, which writes it from offset 0
 * (splice refuses O_APPEND files). */
int logstore_stream_create(const char *dir, int stream, rr_err *e);
/* Open a stream file for reading; -1 with NOT_FOUND if missing. */
int logstore_stream_open_read(const char *dir, int stream, rr_err *e);
/* Atomically replace dir/job.json with obj (tmp + rename). With sync, the
 * data and the rename are flushed to disk too (power loss, not just a crash
 * of rund; costs a few ms per write on a real disk). Without sync, an existing
 * job.json of at most a page is overwritten in place by one pwrite (atomic
 * against a crash of rund, padded with spaces) when the new text fits too. */
int logstore_json_write(const char *dir, json_object *obj, bool sync, rr_err *e);
/* Write obj as the first text of fd, a job.json just created empty, in
 * place: no temp file and rename (a new inode and a directory change per
 * start). Safe against a crash of rund because nothing reads the file
 * before this returns (Start answers after it) and the text lands in the
 * page cache whole or, killed meanwhile, the job never started for anyone:
 * a short or empty job.json then loads as failed/"corrupt" with why, as a
 * missing one did. With sync, the data and then dir_fd (whose entry, the
 * job's directory, was just renamed) are flushed to disk too. */
int logstore_json_write_fresh(int fd, int dir_fd, json_object *obj, bool sync, rr_err *e);
/* Parse dir/job.json. */
int logstore_json_read(const char *dir, json_object **ret, rr_err *e);
/* Parse job.json's text (len bytes; origin names it in errors): DATA_LOSS
 * unless it is one JSON object. */
int logstore_json_parse(const char *buf, size_t len, const char *origin, json_object **ret,
                        rr_err *e);
/* First byte still stored (after punched holes); size if everything is gone. */
uint64_t logstore_first_kept(int fd, uint64_t size);
/* Where the kept part of a file of the given size starts under cap: true
 * with *to past kept_from (block-aligned, at least cap bytes stay) when
 * bytes from kept_from up to *to must go. */
bool logstore_cap_plan(uint64_t size, uint64_t cap, uint64_t kept_from, uint64_t *to);
/* Enforce cap on a file of the given size whose bytes before *kept_from are
 * already gone: punch (here, synchronously) what logstore_cap_plan says.
 * Updates *kept_from. */
int logstore_enforce_cap(int fd, uint64_t size, uint64_t cap, uint64_t *kept_from, rr_err *e);
/* Read from a stream at *offset: skips (and counts in *dropped) bytes before
 * kept_from, then reads up to len bytes. Returns bytes read (0 at EOF) and
 * advances *offset. */
ssize_t logstore_stream_read(int fd, uint64_t kept_from, uint64_t *offset, void *buf, size_t len,
                             uint64_t *dropped, rr_err *e);
