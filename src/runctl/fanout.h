/* runctl --hosts: the hosts (fanout_hosts.c), the per-host output
 * (fanout_output.c) and the fan-out of a verb (fanout.c). */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "runctl.h"

#define FANOUT_MAX_HOSTS 100000
#define FANOUT_MAX_NAME 128

/* One host: its address and the options of its line (NULL: the global ones). */
typedef struct fanout_host {
  char *addr;
  char name[FANOUT_MAX_NAME]; /* --out-dir file stem: name=, else from addr */
  bool named;                 /* name= given: the label too */
  char *ca, *cert, *key, *server_name, *token;
  bool allow_insecure;
  runrpc_options options;          /* filled by fanout.c before the fan-out */
  char job_id[RUNRPC_JOB_ID_SIZE]; /* status/stop: this host's job ("" none) */
} fanout_host;

/* How output and rows name the host: its name=, else its address. */
static inline const char *fanout_host_label(const fanout_host *h) {
  return h->named ? h->name : h->addr;
}

typedef struct fanout_hosts {
  fanout_host *v;
  size_t n;
} fanout_hosts;

/* --hosts SPEC: a file (SPEC names an existing file, has no ':', or is
 * '-' for stdin) of one host a line, else ADDR,ADDR,... On failure -1 with
 * msg ("FILE:LINE: reason"). */
int fanout_hosts_load(const char *spec, fanout_hosts *ret, char *msg, size_t msglen);
void fanout_hosts_free(fanout_hosts *h);
/* Give each host its job id from SPEC: an id for all, or @FILE ("NAME: ID"
 * lines, as start prints them) or @DIR (DIR/NAME.stdout of start --out-dir).
 * Hosts not named keep "". -1 with msg on a bad id or unreadable file. */
int fanout_hosts_job_ids(fanout_hosts *h, const char *spec, char *msg, size_t msglen);

/* Where one stream of one host goes: prefixed whole lines to runctl's own
 * stdout/stderr (one writer at a time under lock), or a file of its own. */
typedef struct fanout_sink {
  pthread_mutex_t *lock; /* shared by every prefixing sink */
  const char *name;
  int fd;
  bool prefix;
  char *line; /* the partial line so far (prefix mode) */
  size_t len, cap;
  int write_errno; /* a file sink that failed */
} fanout_sink;

#define FANOUT_MAX_LINE (64 * 1024) /* a longer line is cut into lines of this */

void fanout_sink_init(fanout_sink *s, pthread_mutex_t *lock, const char *name, int fd, bool prefix);
/* Take bytes of output: 0, or -1 with errno when a file sink cannot be written
 * (runctl's own stdout/stderr closed: it dies of SIGPIPE as any command). */
int fanout_sink_write(fanout_sink *s, const void *data, size_t len);
/* The last line without a newline gets one. */
int fanout_sink_finish(fanout_sink *s);
void fanout_sink_free(fanout_sink *s);
