/* librunrpc: C client for runrpc's runrpc.v1.Jobs service (rund).
 *
 * Every function returning int returns 0 on success and -1 on failure, with
 * *err (may be NULL) holding a gRPC status code and a message. A client is a
 * single HTTP/2 connection carrying any number of calls; use it from one
 * thread at a time. Strings in results are owned by the result and released
 * by its *_free function. */
#ifndef RUNRPC_CLIENT_H
#define RUNRPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* gRPC status codes, as found in runrpc_error.code. */
enum {
  RUNRPC_OK = 0,
  RUNRPC_CANCELLED = 1,
  RUNRPC_UNKNOWN = 2,
  RUNRPC_INVALID_ARGUMENT = 3,
  RUNRPC_DEADLINE_EXCEEDED = 4,
  RUNRPC_NOT_FOUND = 5,
  RUNRPC_ALREADY_EXISTS = 6,
  RUNRPC_PERMISSION_DENIED = 7,
  RUNRPC_RESOURCE_EXHAUSTED = 8,
  RUNRPC_FAILED_PRECONDITION = 9,
  RUNRPC_ABORTED = 10,
  RUNRPC_OUT_OF_RANGE = 11,
  RUNRPC_UNIMPLEMENTED = 12,
  RUNRPC_INTERNAL = 13,
  RUNRPC_UNAVAILABLE = 14,
  RUNRPC_DATA_LOSS = 15,
  RUNRPC_UNAUTHENTICATED = 16,
};

#define RUNRPC_ERROR_MAX 512
#define RUNRPC_JOB_ID_SIZE 27 /* 26-char ULID + NUL */

typedef struct runrpc_error {
  int code;                       /* RUNRPC_* status code; RUNRPC_OK if none */
  int sys_errno;                  /* local errno behind it (e.g. EPIPE writing output), else 0 */
  char message[RUNRPC_ERROR_MAX]; /* what failed and why (server message for server errors) */
} runrpc_error;

typedef struct runrpc_client runrpc_client;

typedef struct runrpc_options {
  uint64_t connect_timeout_ms; /* 0: 10 s */
  uint64_t call_timeout_ms;    /* deadline of short calls (start, status, list, signal); 0: 30 s */
  size_t max_recv_message_bytes; /* 0: 4 MiB */
  /* TLS (addresses HOST:PORT, [V6]:PORT): the server is verified against
   * tls_ca_file and its name (the address's host, or tls_server_name); the
   * client presents tls_cert_file/tls_key_file (both or neither). Only the
   * files given are used: no CA is INVALID_ARGUMENT, no certificate means
   * none is presented (the library never picks up files on its own; runctl
   * has defaults of its own). unix: and h2c:HOST:PORT are plaintext. */
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
  /* Bearer token sent as "authorization: Bearer TOKEN" on every call; on a
   * plaintext address connect fails (INVALID_ARGUMENT) unless allow_insecure. */
  const char *token;
  bool allow_insecure;
  const char *tls_server_name; /* name to verify instead of the address's host */
  /* Directory where TLS sessions are kept between processes so the next
   * connect resumes (about 6x cheaper than a full handshake): made 0700,
   * one 0600 file per address, server name and files; files not owned by us
   * or open to others are ignored, and cache problems never fail a call.
   * NULL: off (sessions are still reused within the process). */
  const char *tls_session_cache_dir;
  /* Sandbox profile of requests that name none ("host", "default",
   * "strict"); NULL: rund's --default-profile. */
  const char *profile;
  /* gzip request messages of 1 KiB or more and ask rund to gzip its answers
   * (grpc-encoding / grpc-accept-encoding). Off by default: it costs CPU on
   * both sides, which a unix socket or a fast network does not win back,
   * and under TLS compressing secrets next to data an attacker chooses is
   * what CRIME/BREACH exploit. Compressed answers are read either way. */
  bool compress;
} runrpc_options;

/* Where rund keeps its embedded-default TLS files (STATE/tls/...); runctl's
 * default TLS files, never the library's. */
#define RUNRPC_DEFAULT_STATE_DIR "/var/lib/runrpc"

/* Facts about the connection of a client. */
typedef struct runrpc_conn_info {
  bool tls;              /* TLS 1.3, server verified */
  bool resumed;          /* TLS session resumed (ticket from an earlier connection) */
  uint64_t handshake_us; /* TLS handshake time in microseconds (0 without TLS) */
} runrpc_conn_info;

typedef enum runrpc_job_state {
  RUNRPC_JOB_UNSPECIFIED = 0,
  RUNRPC_JOB_RUNNING = 1,
  RUNRPC_JOB_EXITED = 2,
  RUNRPC_JOB_KILLED = 3,
  RUNRPC_JOB_FAILED = 4,
} runrpc_job_state;

typedef enum runrpc_stream {
  RUNRPC_STREAM_BOTH = 0,
  RUNRPC_STREAM_STDOUT = 1,
  RUNRPC_STREAM_STDERR = 2,
} runrpc_stream;

/* What to run (input). path is looked up in PATH by rund if it has no slash. */
typedef struct runrpc_command {
  const char *path;
  const char *const *args; /* argv[1..] */
  size_t nargs;
  const char *const *env; /* "KEY=VALUE" entries */
  size_t nenv;
  const char *workdir; /* NULL: "/" */
} runrpc_command;

#define RUNRPC_MAX_IO_LIMITS 16 /* devices per job */
#define RUNRPC_DEFAULT_CPU_PERIOD_US 100000u

/* io.max for one block device; 0 = no limit on that one (one must be set). */
typedef struct runrpc_io_limit {
  /* "/dev/sda", "8:0", or any path on the device; NULL or "": the device of
   * the job's working directory. In a status: the resolved "MAJ:MIN". */
  const char *device;
  uint64_t rbps, wbps;   /* bytes per second read, written */
  uint64_t riops, wiops; /* operations per second read, written */
} runrpc_io_limit;

/* Resource limits enforced by the kernel through a cgroup of the job's own
 * (cgroup v2 names; rund maps them on cgroup v1 hosts). All zero: none. */
typedef struct runrpc_limits {
  bool has_cpu;       /* cpu.max: quota_us of CPU time per period_us */
  uint64_t quota_us;  /* >= 1000 */
  uint64_t period_us; /* 1000..1000000; 0: RUNRPC_DEFAULT_CPU_PERIOD_US */
  bool has_memory_max;
  uint64_t memory_max; /* bytes, >= 1 MiB */
  bool has_pids_max;
  uint64_t pids_max; /* >= 1 */
  const runrpc_io_limit *io;
  size_t nio; /* at most RUNRPC_MAX_IO_LIMITS */
} runrpc_limits;

/* What a job's cgroup counted (fields as runrpc.v1.Usage). */
typedef struct runrpc_usage {
  uint64_t cpu_usec; /* user + system */
  uint64_t cpu_user_usec;
  uint64_t cpu_system_usec;
  uint64_t memory_current; /* bytes now (0 once ended) */
  uint64_t memory_peak;    /* bytes, high-water mark */
  uint64_t io_read_bytes;
  uint64_t io_write_bytes;
  uint64_t io_read_ops;
  uint64_t io_write_ops;
  uint64_t pids_current;       /* 0 once ended */
  uint64_t oom_kills;          /* processes the OOM killer ended in the job */
  uint64_t cpu_throttled_usec; /* time held back by cpu.max */
  uint64_t pids_refused;       /* forks refused by pids.max */
} runrpc_usage;

typedef enum runrpc_net {
  RUNRPC_NET_DEFAULT = 0, /* the profile's (default: host, strict: none) */
  RUNRPC_NET_NONE = 1,    /* a network namespace of its own: only lo */
  RUNRPC_NET_HOST = 2,    /* the host's network (clamped to none under strict) */
} runrpc_net;

/* A host path made visible inside the sandbox; rund allows only sources
 * below the directories it was given with --bind-allow. */
typedef struct runrpc_bind {
  const char *source;      /* absolute host path */
  const char *destination; /* absolute path inside */
  bool readonly;
} runrpc_bind;

#define RUNRPC_MAX_BINDS 64

/* How a command is confined. All zero: the client's options.profile (or
 * rund's --default-profile), nothing added. rund raises a profile weaker
 * than its --min-profile to it (never refuses). */
typedef struct runrpc_sandbox {
  const char *profile; /* "host", "default", "strict"; NULL: see above */
  const char *rootfs;  /* host directory as the root; NULL: the host's, read-only */
  const runrpc_bind *binds;
  size_t nbinds; /* at most RUNRPC_MAX_BINDS */
  runrpc_net net;
  const char *hostname; /* NULL: "runrpc" */
  bool has_user;        /* ids inside the sandbox; else the caller's */
  uint32_t uid, gid;
  const char *image; /* an image of rund's store as the root (NAME[:TAG]); NULL: none */
} runrpc_sandbox;

typedef struct runrpc_start_request {
  runrpc_command command;
  const char *const *tags;
  size_t ntags;
  bool has_timeout; /* job timeout enforced by rund (not an RPC deadline) */
  uint64_t timeout_ms;
  runrpc_limits limits; /* all zero: no limits (and no cgroup) */
  runrpc_sandbox sandbox;
  uint32_t timeout_grace_ms; /* SIGTERM to SIGKILL when the timeout fires; 0: rund's 10 s */
  /* Keep the job's stdin open for later writers (attach/send); tty: a
   * pseudo-terminal (implies stdin) of rows x cols (0: 24 x 80), TERM term
   * (NULL: "xterm"). */
  bool stdin_open;
  bool tty;
  unsigned rows, cols;
  const char *term;
} runrpc_start_request;

/* A job's status (output; strings owned, free with runrpc_job_status_free). */
typedef struct runrpc_job_status {
  char job_id[RUNRPC_JOB_ID_SIZE];
  runrpc_job_state state;
  int pid;
  int exit_code;
  int signal;
  char *reason; /* "exited", "signaled", "stopped", "timeout", "oom-killed", "lost", "corrupt" */
  char *detail; /* "" or more for a person (e.g. why a job is "corrupt") */
  int64_t start_time_unix_ns;
  int64_t end_time_unix_ns; /* 0 while running */
  char *path;               /* command as started */
  char **args;
  size_t nargs;
  char **env; /* "KEY=VALUE" */
  size_t nenv;
  char *workdir;
  char **tags;
  size_t ntags;
  bool has_timeout;
  uint64_t timeout_ms;
  uint64_t stdout_bytes;
  uint64_t stderr_bytes;
  /* Limits in force (io devices resolved to "MAJ:MIN"; owned strings). */
  bool has_limits;
  runrpc_limits limits;
  bool has_usage; /* with a cgroup: its counters; without: cpu from the rusage, once ended */
  runrpc_usage usage;
  char *cgroup;            /* "v1" or "v2" when the job has a cgroup, else "" */
  char *profile;           /* the sandbox profile that applied */
  char *profile_requested; /* as asked ("" = none named) */
  char **owner;            /* principals of whoever started it ("uid:0", "token:ci", ...) */
  size_t nowner;
  uint32_t timeout_grace_ms; /* 0: rund's default (10 s) */
  char *kind;                /* "job", or "exec" for a running Exec command in a List */
  /* Bytes its keeper could not store (disk full...), not in *_bytes. */
  uint64_t stdout_lost_bytes;
  uint64_t stderr_lost_bytes;
  char *log_error; /* why ("stdout: No space left on device"), or "" */
} runrpc_job_status;

typedef struct runrpc_logs_request {
  const char *job_id;
  bool follow;          /* keep streaming until the job ends */
  runrpc_stream stream; /* one stream, or both */
  uint64_t stdout_offset;
  uint64_t stderr_offset;
  uint64_t timeout_ms; /* 0: no deadline */
} runrpc_logs_request;

/* One chunk of logs; dropped = bytes lost to the size cap just before offset.
 * Return 0 to go on, non-zero to stop (runrpc_logs then fails with CANCELLED). */
typedef int (*runrpc_logs_fn)(runrpc_stream stream, uint64_t offset, const void *data, size_t len,
                              uint64_t dropped, void *userdata);

/* One piece of a job's logs. Pieces come in the order the job wrote them
 * (stdout and stderr interleaved, as its keeper moved them); those of a job
 * stored before rund kept that order come stream by stream. */
typedef struct runrpc_log_chunk {
  runrpc_stream stream;
  uint64_t offset; /* of data within its stream */
  const void *data;
  size_t len;
  uint64_t dropped;     /* bytes the size cap dropped just before offset */
  uint64_t lost;        /* bytes the keeper could not store (disk full): missing before offset */
  int64_t time_unix_ns; /* when the keeper moved data, ns since the epoch; 0: unknown */
} runrpc_log_chunk;
typedef int (*runrpc_log_chunk_fn)(const runrpc_log_chunk *chunk, void *userdata);

typedef struct runrpc_logs_times {
  bool timestamps;       /* one piece per chunk the keeper moved, each with its time */
  int64_t since_unix_ns; /* only what the keeper moved at or after this time; 0: all */
} runrpc_logs_times;

/* Output of runrpc_exec: return non-zero to stop (the call is cancelled and
 * the command killed). */
typedef int (*runrpc_output_fn)(const void *data, size_t len, void *userdata);

typedef struct runrpc_exec_request {
  runrpc_command command;
  bool has_timeout; /* job timeout enforced by rund */
  uint64_t timeout_ms;
  int stdin_fd;  /* read until EOF, then the command's stdin is closed; -1: empty stdin */
  int stdout_fd; /* used when on_stdout is NULL; -1: discard */
  int stderr_fd; /* used when on_stderr is NULL; -1: discard */
  runrpc_output_fn on_stdout;
  runrpc_output_fn on_stderr;
  void *userdata;
  void (*on_started)(int pid, void *userdata); /* optional */
  uint64_t deadline_ms;                        /* RPC deadline for the whole exec; 0: none */
  /* Forward SIGINT, SIGTERM, SIGHUP and SIGQUIT received during the call to
   * the command's process group (as ExecRequest.signal), like a local
   * foreground command: the library installs its own handlers (a self-pipe;
   * signals this process ignores stay ignored and are not forwarded) and
   * restores the previous ones before returning. The command's exit status
   * tells what the signal did. Stdin EOF then goes out as close_stdin while
   * the stream stays open (for later signals) until the server's status.
   * One such call per process at a time
   * (another fails with FAILED_PRECONDITION). Needs a rund that knows
   * ExecRequest.signal. */
  bool forward_signals;
  runrpc_limits limits;      /* as in runrpc_start_request */
  runrpc_sandbox sandbox;    /* as in runrpc_start_request */
  uint32_t timeout_grace_ms; /* as in runrpc_start_request */
  /* Run the command on a pseudo-terminal (ExecStart.tty, like ssh -t):
   * stdin bytes are typed into it, all its output comes as stdout, stdin
   * EOF sends the terminal's EOF character. The caller sets its own
   * terminal's mode (raw) if it has one. */
  bool tty;
  /* The initial window; 0: from tty_size_fd if set, else rund's 24 x 80. */
  unsigned tty_rows, tty_cols;
  /* A terminal whose window the command's follows: read at the start
   * (unless tty_rows/tty_cols) and after each SIGWINCH, which the library
   * catches during the call (as forward_signals does, and with it the one
   * such call per process); -1 (or tty off): none. */
  int tty_size_fd;
  const char *tty_term; /* TERM for the command; NULL or "": "xterm" */
  /* Run inside this running job (ExecStart.job_id, like docker exec): its
   * namespaces, root, cgroup, profile and uid; limits and sandbox must be
   * unset (the client's default profile is not sent). NULL or "": no. */
  const char *job_id;
} runrpc_exec_request;

typedef struct runrpc_exit_status {
  int exit_code;   /* when exited normally */
  int signal;      /* when killed by a signal, else 0 */
  char reason[32]; /* "exited", "signaled", "timeout", "oom-killed" */
  bool has_usage;  /* the cgroup's counters; without limits cpu from the rusage */
  runrpc_usage usage;
  char profile[16];           /* the sandbox profile that applied */
  char profile_requested[16]; /* as asked ("" = none named) */
} runrpc_exit_status;

/* An image of rund's store (runrpc.v1.Images). */
typedef struct runrpc_image_layer {
  char digest[72]; /* "sha256:HEX" */
  uint64_t size;
} runrpc_image_layer;
typedef struct runrpc_image {
  char id[72];  /* "sha256:HEX": the digest of its config */
  char **names; /* "NAME:TAG" */
  size_t nnames;
  char *created, *format;
  runrpc_image_layer *layers; /* bottom first */
  size_t nlayers;
  uint64_t size;     /* of the layers as imported */
  char *config_json; /* the image's OCI config */
} runrpc_image;
typedef struct runrpc_image_import_request {
  int fd;               /* the archive, read to EOF (a file, a pipe, stdin) */
  const char *name;     /* NAME[:TAG], or NULL: the archive's names */
  const char *format;   /* NULL/"auto", "oci-archive", "docker-archive", "rootfs" */
  uint64_t deadline_ms; /* 0: none (a large import takes long) */
} runrpc_image_import_request;

/* Default options (all zero: defaults). */
void runrpc_options_init(runrpc_options *opts);
/* Connect to addr: "unix:PATH", "h2c:HOST:PORT" (plaintext), "HOST:PORT" or
 * "[V6]:PORT" (TLS); opts may be NULL. A failed TLS handshake is UNAVAILABLE
 * "TLS handshake with ADDR failed: REASON". */
int runrpc_connect(const char *addr, const runrpc_options *opts, runrpc_client **ret_client,
                   runrpc_error *err);
/* Fill *info about client's connection. */
void runrpc_conn_info_get(const runrpc_client *client, runrpc_conn_info *info);
/* Close the connection and free the client (NULL ok). */
void runrpc_close(runrpc_client *client);

/* Start a background job; fills job_id (and *ret_pid if not NULL). */
int runrpc_start(runrpc_client *client, const runrpc_start_request *req,
                 char job_id[RUNRPC_JOB_ID_SIZE], int *ret_pid, runrpc_error *err);
/* SIGTERM, grace_ms (negative: rund's default, 10 s), SIGKILL; returns the final status. */
int runrpc_stop(runrpc_client *client, const char *job_id, int64_t grace_ms,
                runrpc_job_status *ret_status, runrpc_error *err);
/* Current status of a job. */
int runrpc_status(runrpc_client *client, const char *job_id, runrpc_job_status *ret_status,
                  runrpc_error *err);
/* Stream a job's logs, one callback per chunk. */
int runrpc_logs(runrpc_client *client, const runrpc_logs_request *req, runrpc_logs_fn fn,
                void *userdata, runrpc_error *err);
/* Stream a job's logs, one callback per piece, with times (may be NULL).
 * A job stored without times fails FAILED_PRECONDITION if times asks for
 * any. runrpc_logs is this without times, lost pieces left out. */
int runrpc_logs_chunks(runrpc_client *client, const runrpc_logs_request *req,
                       const runrpc_logs_times *times, runrpc_log_chunk_fn fn, void *userdata,
                       runrpc_error *err);
/* Stream a job's logs into fds (-1: skip that stream); dropped bytes are not reported. */
int runrpc_logs_to_fds(runrpc_client *client, const runrpc_logs_request *req, int stdout_fd,
                       int stderr_fd, runrpc_error *err);
/* Jobs, filtered by state (UNSPECIFIED: any) and tag (NULL/"": any), in id
 * (start) order, every page fetched; free with runrpc_job_list_free. */
int runrpc_list(runrpc_client *client, runrpc_job_state state, const char *tag,
                runrpc_job_status **ret_jobs, size_t *ret_count, runrpc_error *err);
#define RUNRPC_PAGE_TOKEN_SIZE 64
/* One page of runrpc_list: at most page_size jobs (0: the server's default,
 * 1000; at most 5000) after page_token (NULL/"": from the first). next_token
 * gets the token of the next page, "" after the last one. */
int runrpc_list_page(runrpc_client *client, runrpc_job_state state, const char *tag,
                     uint32_t page_size, const char *page_token, runrpc_job_status **ret_jobs,
                     size_t *ret_count, char next_token[RUNRPC_PAGE_TOKEN_SIZE], runrpc_error *err);
/* runrpc_list_page with every option: newest_first pages from the newest
 * job back (needs a rund that knows ListRequest.newest_first). */
typedef struct runrpc_list_request {
  runrpc_job_state state; /* UNSPECIFIED: any */
  const char *tag;        /* NULL/"": any */
  uint32_t page_size;     /* 0: the server's default */
  const char *page_token; /* NULL/"": from the first (or newest) */
  bool newest_first;
} runrpc_list_request;
int runrpc_list_query(runrpc_client *client, const runrpc_list_request *req,
                      runrpc_job_status **ret_jobs, size_t *ret_count,
                      char next_token[RUNRPC_PAGE_TOKEN_SIZE], runrpc_error *err);
/* Wait until the job ends (timeout_ms 0: no deadline); returns its final status. */
int runrpc_wait(runrpc_client *client, const char *job_id, uint64_t timeout_ms,
                runrpc_job_status *ret_status, runrpc_error *err);
/* Send a signal by number (name NULL) or by name ("TERM", "SIGTERM", "kill"). */
int runrpc_signal(runrpc_client *client, const char *job_id, int number, const char *name,
                  runrpc_error *err);
/* Run a command to completion, streaming stdin in and stdout/stderr out; fills *ret_exit. */
int runrpc_exec(runrpc_client *client, const runrpc_exec_request *req, runrpc_exit_status *ret_exit,
                runrpc_error *err);

/* Fan-out: one piece of work done against many rund hosts at once, each on
 * a connection (and a thread) of its own, at most `parallel` at a time. One
 * slow or dead host never holds up the others: each host has a deadline
 * (host_timeout_ms, counted from when its turn comes) that bounds its
 * connect, its calls and, past it, closes its connection under them. */
typedef struct runrpc_fanout_host {
  const char *addr;              /* as for runrpc_connect */
  const runrpc_options *options; /* TLS files, token, ...; NULL: defaults */
} runrpc_fanout_host;

typedef struct runrpc_fanout_options {
  unsigned parallel;        /* hosts worked on at once; 0: RUNRPC_FANOUT_DEFAULT_PARALLEL */
  uint64_t host_timeout_ms; /* per host, connect included; 0: none */
} runrpc_fanout_options;

#define RUNRPC_FANOUT_DEFAULT_PARALLEL 32
#define RUNRPC_FANOUT_MAX_PARALLEL 1024

/* The work for one connected host, called on a worker thread (so it must
 * only share userdata state under a lock of its own). deadline_ms: the
 * time left of the host's deadline, for the calls it makes (0: none).
 * Return 0 on success, -1 with *err filled on failure. */
typedef int (*runrpc_fanout_fn)(size_t index, runrpc_client *client, uint64_t deadline_ms,
                                void *userdata, runrpc_error *err);

typedef struct runrpc_fanout_result {
  int rc;              /* 0: fn succeeded; -1: connect or fn failed (err) */
  bool connected;      /* the connection was made (fn ran) */
  bool timed_out;      /* its deadline passed (err is DEADLINE_EXCEEDED) */
  runrpc_error err;    /* why it failed */
  uint64_t elapsed_us; /* from its turn to its end */
} runrpc_fanout_result;

/* Run fn for each of nhosts hosts (opts may be NULL: defaults) and fill
 * results[i] for hosts[i]. Returns how many hosts failed (0: all
 * succeeded), or -1 with *err when the fan-out itself could not run (bad
 * arguments, no threads). */
int runrpc_fanout(const runrpc_fanout_host *hosts, size_t nhosts, const runrpc_fanout_options *opts,
                  runrpc_fanout_fn fn, void *userdata, runrpc_fanout_result *results,
                  runrpc_error *err);

/* Upload an image archive from req->fd to rund, streamed in chunks (needs
 * an admin); the images imported into *ret_images (runrpc_image_list_free). */
int runrpc_image_import(runrpc_client *client, const runrpc_image_import_request *req,
                        runrpc_image **ret_images, size_t *ret_count, runrpc_error *err);
/* Every image of rund's store (runrpc_image_list_free). */
int runrpc_image_list(runrpc_client *client, runrpc_image **ret_images, size_t *ret_count,
                      runrpc_error *err);
/* One image by ref: NAME[:TAG], sha256:HEX, HEX, NAME@sha256:HEX (NOT_FOUND). */
int runrpc_image_inspect(runrpc_client *client, const char *ref, runrpc_image *ret_image,
                         runrpc_error *err);
/* Untag a name (the image goes with its last one) or remove an image by id
 * (needs an admin); *ret_removed (may be NULL): the image went. */
int runrpc_image_remove(runrpc_client *client, const char *ref, bool *ret_removed,
                        runrpc_error *err);
/* Release an image's strings (the struct is the caller's). */
void runrpc_image_free(runrpc_image *image);
/* Free an array of images. */
void runrpc_image_list_free(runrpc_image *images, size_t count);

/* Attach to a running job (runrpc.v1.Jobs/Attach, like docker attach): its
 * output to stdout_fd/stderr_fd live until it ends or the caller detaches;
 * with want_stdin, and when the server makes this call the job's writer
 * (the first attached call asking, until it ends; others only watch), bytes
 * read from stdin_fd go to the job's stdin. Added in 0.1 (ABI: new symbols
 * and structs only; none of the structs above changed). */
typedef struct runrpc_attach_info {
  bool writer;                /* this call types into the job's stdin */
  bool tty;                   /* the job runs on a terminal */
  bool stdin_open;            /* the job's stdin can still be written */
  char read_only_reason[256]; /* asked for stdin and not the writer: why ("" else) */
  uint64_t stdout_offset;     /* where the output given begins */
  uint64_t stderr_offset;
} runrpc_attach_info;

typedef struct runrpc_attach_request {
  const char *job_id;
  bool want_stdin; /* ask to be the writer */
  int stdin_fd;    /* read while the writer (EOF: reading stops, the job's stdin
                    * stays open unless close_on_eof); -1: none */
  bool close_on_eof;
  int stdout_fd; /* -1: discard */
  int stderr_fd; /* -1: discard */
  /* bytes of each stream's end replayed first; has_replay false: the
   * server's default (4096 for a tty job, 0 without) */
  bool has_replay;
  uint64_t replay_bytes;
  /* A terminal whose window the job's follows while this call is the
   * writer of a tty job: sent on attach and after each SIGWINCH (caught
   * during the call; one such call per process); -1: none. */
  int tty_size_fd;
  /* Detach when these bytes come in a row on stdin_fd (they are not sent;
   * a partial match is sent once it breaks); NULL or 0: no detach keys. */
  const unsigned char *detach_keys;
  size_t detach_keys_len;
  /* Called once attached, before any output (may be NULL): e.g. to put the
   * local terminal in raw mode when info->writer && info->tty. */
  void (*on_attached)(const runrpc_attach_info *info, void *userdata);
  void *userdata;
} runrpc_attach_request;

typedef struct runrpc_attach_result {
  runrpc_attach_info info;
  bool detached;            /* the detach keys came: the job runs on */
  bool ended;               /* the job ended: status holds its final status */
  runrpc_job_status status; /* free with runrpc_job_status_free when ended */
} runrpc_attach_result;

/* Attach until the job ends (0, ret->ended) or the detach keys come (0,
 * ret->detached). An ended job: FAILED_PRECONDITION; another identity's:
 * NOT_FOUND. */
int runrpc_attach(runrpc_client *client, const runrpc_attach_request *req,
                  runrpc_attach_result *ret, runrpc_error *err);
/* Copy fd (until EOF; -1: nothing) into a running job's stdin
 * (runrpc.v1.Jobs/Send), then close its stdin if close_stdin; *ret_bytes
 * (may be NULL): bytes the server queued for the job. A job without open
 * stdin: FAILED_PRECONDITION. */
int runrpc_send(runrpc_client *client, const char *job_id, int fd, bool close_stdin,
                uint64_t *ret_bytes, runrpc_error *err);

/* Release the strings of a status (the struct itself is the caller's). */
void runrpc_job_status_free(runrpc_job_status *status);
/* Free an array returned by runrpc_list. */
void runrpc_job_list_free(runrpc_job_status *jobs, size_t count);
/* Canonical name of a status code ("NOT_FOUND"). */
const char *runrpc_code_name(int code);
/* Name of a job state ("running", "exited", "killed", "failed", "unspecified"). */
const char *runrpc_job_state_name(runrpc_job_state state);
/* True if s is a syntactically valid job id (26 Crockford base32 chars, ULID). */
bool runrpc_job_id_valid(const char *s);
/* Library version string ("0.1.0"). */
const char *runrpc_version(void);

#ifdef __cplusplus
}
#endif
#endif
