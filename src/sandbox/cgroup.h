/* Per-job cgroups behind one interface, on cgroup v2 (unified hierarchy) or
 * cgroup v1 (one hierarchy per controller). rund gets a subtree below its own
 * cgroup (never writes elsewhere in the hierarchy); each job gets a child of
 * it, which the job's first process enters before it runs any of its own
 * code, and which is removed when the job ends. A job without limits has no
 * limit file written, and on v1 a cgroup only in the freezer and cpuacct
 * hierarchies (its kill and its usage: cpu, and pids from the freezer's
 * tasks; memory and io read 0); a job with limits also in the hierarchy of
 * each limit it sets. v1 cgroups come from a pool made ahead of need.
 *
 * Limits use v2 names and units (a memory limit also sets memory.swap.max
 * to 0: no swap); on v1 they map to cpu.cfs_quota_us / cpu.cfs_period_us,
 * memory.limit_in_bytes (+ memory.memsw.limit_in_bytes when present, the
 * same value), blkio.throttle.{read,write}_{bps,iops}_device, pids.max. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum cg_version { CG_NONE = 0, CG_V1 = 1, CG_V2 = 2 } cg_version;

#define CG_MAX_IO 16
#define CG_DEFAULT_CPU_PERIOD_US 100000u
#define CG_MIN_CPU_PERIOD_US 1000u
#define CG_MAX_CPU_PERIOD_US 1000000u
#define CG_MIN_CPU_QUOTA_US 1000u
#define CG_MIN_MEMORY_MAX (1024u * 1024u)
#define CG_MAX_MEMORY_MAX (1ull << 60) /* 1 EiB: anything more is a typo */
#define CG_MAX_CPUS 4096u              /* quota / period must stay below this many CPUs */
#define CG_MAX_PIDS_MAX 4194304u       /* the kernel's PID_MAX_LIMIT */

typedef struct cg_io_limit {
  unsigned major, minor;             /* a whole disk (not a partition) */
  uint64_t rbps, wbps, riops, wiops; /* 0 = no limit on that one */
} cg_io_limit;

typedef struct cg_limits {
  bool has_cpu;
  uint64_t cpu_quota_us, cpu_period_us; /* period 0 = CG_DEFAULT_CPU_PERIOD_US */
  bool has_memory;
  uint64_t memory_max; /* bytes */
  bool has_pids;
  uint64_t pids_max;
  size_t nio;
  cg_io_limit io[CG_MAX_IO];
} cg_limits;

/* Counters of a job's cgroup (fields as runrpc.v1.Usage). */
typedef struct cg_usage {
  uint64_t cpu_usec, cpu_user_usec, cpu_system_usec;
  uint64_t memory_current, memory_peak;
  uint64_t io_read_bytes, io_write_bytes, io_read_ops, io_write_ops;
  uint64_t pids_current;
  uint64_t oom_kills;
  uint64_t cpu_throttled_usec;
  uint64_t pids_refused;
  /* Times usage hit the memory limit (v2 memory.events max; v1
   * memory.failcnt + memory.memsw.failcnt, or 1 when those stay 0 but
   * memory.max_usage_in_bytes reached the limit). */
  uint64_t memory_limit_hits;
  /* True when the kernel gives no OOM-kill count (v1 before Linux 4.13, no
   * oom_kill line in memory.oom_control): oom_kills is then 0 and a job
   * killed by SIGKILL with memory_limit_hits > 0 is best reported as
   * oom-killed. */
  bool oom_kills_unknown;
} cg_usage;

/* True when any limit is set. */
bool cg_limits_any(const cg_limits *l);
/* Range checks (no device lookup): INVALID_ARGUMENT naming the field
 * ("limits.cpu.quota_us", "limits.memory_max", "limits.io[1].wbps", ...) and
 * the value. */
int cg_limits_validate(const cg_limits *l, rr_err *e);
/* A device for io limits: "MAJ:MIN", a block device node, or any other path
 * (the device of the filesystem it is on). Partitions resolve to their disk.
 * INVALID_ARGUMENT naming field and spec when it is no block device. */
int cg_device_resolve(const char *spec, const char *field, unsigned *major, unsigned *minor,
                      rr_err *e);

typedef struct cg_manager cg_manager;
typedef struct cg_job cg_job;

/* Detect the version under root ("/sys/fs/cgroup"), find our own cgroup
 * (/proc/self/cgroup) and make our subtree NAME below it (on v2, moving this
 * process into a leaf of its own first: no internal processes). NAME must be
 * stable for a given state dir, so that a restarted rund finds its jobs'
 * cgroups. With no usable cgroup support, *ret is a manager of version
 * CG_NONE (jobs with limits then fail with FAILED_PRECONDITION). */
int cg_manager_new(const char *root, const char *name, cg_manager **ret, rr_err *e);
cg_version cg_manager_version(const cg_manager *m);
/* One line for the start-up log: version, where, which controllers. */
const char *cg_manager_describe(const cg_manager *m);
/* FAILED_PRECONDITION naming the missing controller when l needs one we lack. */
int cg_manager_check(const cg_manager *m, const cg_limits *l, rr_err *e);
/* Kill the processes in and remove every job cgroup of our subtree that
 * keep(name) does not claim (left by a crash of rund: finished or lost jobs,
 * Exec commands whose stream died with it); *ret_removed counts them. */
int cg_manager_sweep(cg_manager *m, bool (*keep)(const char *name, void *data), void *data,
                     size_t *ret_removed, rr_err *e);
/* Remove our subtree when no job cgroup is left in it (shutdown). */
void cg_manager_free(cg_manager *m);

/* Create the job's cgroup (named id) and write its limits (none: only the
 * hierarchies a job without limits gets); on failure nothing is left
 * behind. */
int cg_job_create(cg_manager *m, const char *id, const cg_limits *l, cg_job **ret, rr_err *e);
/* Open the existing cgroup of job id (rund restarted), in the hierarchies
 * where it exists; NOT_FOUND if none. */
int cg_job_open(cg_manager *m, const char *id, cg_job **ret, rr_err *e);
cg_version cg_job_version(const cg_job *j);
/* A cgroup named name below the job's, in each of its hierarchies, with no
 * limits of its own (exec --in: what runs there counts to the job, the
 * job's limits hold, a kill of the job reaches it); the cg_job_* calls work
 * on it as on a job's. The job's cgroup cannot be removed while it exists. */
int cg_job_create_child(cg_job *parent, const char *name, cg_job **ret, rr_err *e);
/* v2: an O_DIRECTORY fd of the job's cgroup for clone3(CLONE_INTO_CGROUP);
 * -1 on v1. */
int cg_job_clone_fd(const cg_job *j);
/* fds a single-threaded child writes "0" to before exec to join the job's
 * cgroups (async-signal-safe): v1 the "tasks" file of each of its
 * hierarchies (the way in on v1), v2 the one cgroup.procs (where clone3
 * cannot place it). */
size_t cg_job_procs_fds(const cg_job *j, const int **ret);
/* Close the fds of cg_job_clone_fd and cg_job_procs_fds once the command
 * runs: a live job holds no fd of its cgroup. */
void cg_job_close_fds(cg_job *j);
/* Read the counters now (zeros for what this host does not count). */
int cg_job_usage(cg_job *j, cg_usage *ret, rr_err *e);
/* The counters at the job's end: memory_current and pids_current are 0 and
 * not read (the kernel may still count exiting tasks). */
int cg_job_usage_final(cg_job *j, cg_usage *ret, rr_err *e);
/* SIGKILL every process in the cgroup (v2: cgroup.kill when present; v1 and
 * old v2: freeze, kill each pid listed, thaw), including double-forked
 * descendants that left the process group. Waits ~20 ms at most: a task
 * that could not be frozen in time (or forked meanwhile) may be left for
 * the next call. */
int cg_job_kill(cg_job *j, rr_err *e);
/* Kills leave pid alone (0: nobody): a job's keeper, which copies what the
 * job wrote into its pipes to the log files and ends by itself once its
 * command is gone and the pipes are drained (killing it with the job would
 * lose what is still in them). v2 then kills pid by pid, not cgroup.kill. */
void cg_job_spare(cg_job *j, pid_t pid);
/* Whether the cgroup has no processes left. */
bool cg_job_empty(cg_job *j);
/* Kill what is left, remove the cgroup (retrying briefly while the kernel
 * still counts exiting tasks), free j. Never fails silently: returns -1 with
 * e set when the directory could not be removed (j is freed anyway). */
int cg_job_destroy(cg_job *j, rr_err *e);
/* Try to remove the cgroup without waiting: 1 when removed (j freed), 0
 * while it still has processes or exiting tasks (kill them, call again
 * later; j kept), -1 with e on another error (j freed). */
int cg_job_remove(cg_job *j, rr_err *e);
/* Close j's fds and free it, leaving the cgroup (rund shutting down while
 * the job runs on). */
void cg_job_free(cg_job *j);

/* Freeze (pause) or thaw the job's processes: v1 freezer.state, v2
 * cgroup.freeze; freezing waits up to ~1 s for the kernel to finish
 * (DEADLINE_EXCEEDED, thawed again, if it did not). FAILED_PRECONDITION
 * without a freezer. */
int cg_job_freeze(cg_job *j, bool frozen, rr_err *e);
/* Whether the job's cgroup is frozen (or being frozen). */
bool cg_job_frozen(cg_job *j);
/* The pids in the job's cgroup (malloc'd, *ret_n of them). */
int cg_job_pids(cg_job *j, int **ret, size_t *ret_n, rr_err *e);

/* A cgroup at an OCI linux.cgroupsPath (runproc), on cgroup v1 as runc
 * reads one: an absolute path from each hierarchy's root, a relative one
 * below our own cgroup in it. Missing parents are made; the cgroup itself
 * must not exist (ALREADY_EXISTS). The job's cg_job_* calls work as for
 * cg_job_create's (procs fds, kill, destroy: which removes the cgroup, not
 * the parents). INVALID_ARGUMENT naming linux.cgroupsPath for a path with
 * "." or ".." or odd names. On cgroup v2 the same (one hierarchy): the
 * parents are made from the top, each handing its controllers down
 * (FAILED_PRECONDITION when a parent has processes, as our own cgroup
 * does unless it is the root). */
int cg_path_create(const char *root, const char *path, const cg_limits *l, cg_job **ret, rr_err *e);
/* Open the cgroup at path (NOT_FOUND when gone). */
int cg_path_open(const char *root, const char *path, cg_job **ret, rr_err *e);
/* systemd's "slice:prefix:name" (runc --systemd-cgroup) as the cgroupfs
 * path systemd would give it: "/a.slice/a-b.slice/prefix-name.scope" (an
 * empty slice is system.slice, an empty prefix leaves name as it is);
 * INVALID_ARGUMENT naming linux.cgroupsPath otherwise. */
int cg_path_from_systemd(const char *spec, char *out, size_t len, rr_err *e);
/* Write new limits into an existing job's cgroup (runproc update): only
 * those l sets; FAILED_PRECONDITION naming a controller it lacks. */
int cg_job_update(cg_job *j, const cg_limits *l, rr_err *e);
/* Remove the job's memory (and swap), cpu quota or pids limit (runproc
 * update's -1); the cpu period stays. */
int cg_job_unlimit(cg_job *j, bool memory, bool cpu, bool pids, rr_err *e);
/* The limits the job's cgroup has now: has_* set for those that limit
 * (cpu_period_us is the period even without a quota; memory_max and
 * pids_max UINT64_MAX when unlimited). */
int cg_job_limits_read(cg_job *j, cg_limits *ret, rr_err *e);
