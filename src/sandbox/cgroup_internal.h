/* Internals shared by cgroup.c (the manager), cgroup_job.c,
 * cgroup_limits.c, cgroup_freeze.c and the two backends (cgroup_v1.c,
 * cgroup_v2.c): the manager and job objects, the backend ops struct, file
 * helpers, and the pure parsers of kernel text (unit-tested on sample text). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/cgroup.h"

/* Controllers we use, as a bit mask (v1 "cpu"/"cpuacct" are two; v2 "io" is
 * v1 "blkio"). */
enum {
  CG_CTRL_CPU = 1u << 0,
  CG_CTRL_CPUACCT = 1u << 1,
  CG_CTRL_MEMORY = 1u << 2,
  CG_CTRL_IO = 1u << 3,
  CG_CTRL_PIDS = 1u << 4,
  CG_CTRL_FREEZER = 1u << 5,
};

#define CG_MAX_HIER 6    /* v1: one per controller at most; v2: 1 */
#define CG_MAX_MOUNTS 32 /* cgroup mounts looked at in mountinfo */
#define CG_PATH_MAX 512  /* longer cgroup paths are refused, not truncated */

typedef struct cg_mount {
  char path[CG_PATH_MAX]; /* mount point, unescaped */
  char root[CG_PATH_MAX]; /* root of the mount within its hierarchy */
  bool v2;                /* cgroup2 (else cgroup v1) */
  unsigned controllers;   /* v1: CG_CTRL_* named in the super options */
} cg_mount;

/* Where each hierarchy we use lives, as found by cg_detect. */
typedef struct cg_detection {
  cg_version version;
  size_t nhier;
  struct {
    char own_dir[CG_PATH_MAX]; /* mount point + our own cgroup path */
    unsigned controllers;
  } hier[CG_MAX_HIER];
  bool own_is_root;      /* v2: we are in the root cgroup of the hierarchy */
  char own[CG_PATH_MAX]; /* v2: our cgroup path ("/" for the root) */
} cg_detection;

typedef struct cg_ops cg_ops;
typedef struct cg_pool cg_pool;

struct cg_manager {
  cg_version version;
  const cg_ops *ops;
  char *name;
  unsigned controllers; /* usable controllers, CG_CTRL_* */
  size_t nhier;         /* v1: hierarchies used; v2: 1 */
  /* Hierarchies (bit i: hier[i]) of a job without limits: those that kill
   * it whole and count it (v1: freezer, cpuacct), not all; 0 (a
   * manager of given paths, cgroup_path.c): every hierarchy. */
  unsigned plain_hiers;
  struct {
    char *parent; /* directory job cgroups are made in */
    unsigned controllers;
  } hier[CG_MAX_HIER];
  /* v2 only: see the layout comment in cgroup_v2.c. */
  char *v2_own;            /* our cgroup as found at start */
  char *v2_subtree;        /* <own>/<name> */
  char *v2_supervisor;     /* <own>/<name>/supervisor, NULL when not moved */
  unsigned v2_enabled_own; /* controllers we enabled in <own> */
  int v1_memsw;            /* v1: memory.memsw.* exist (swap accounting): 1, -1 not, 0 unknown */
  cg_pool *pool;           /* v1 of cg_manager_new: cgroups made ahead (cgroup_pool.c) */
  bool pool_failed;        /* its thread could not start: jobs mkdir */
  char describe[768];
};

struct cg_job {
  cg_manager *m;
  char *id;
  unsigned hiers;            /* bit i: the job has a cgroup in m->hier[i] */
  char *dir[CG_MAX_HIER];    /* job cgroup, one per hierarchy (of hiers) */
  bool removed[CG_MAX_HIER]; /* rmdir done (cg_job_remove), or not in hiers */
  int procs_fd[CG_MAX_HIER]; /* cgroup.procs of each of hiers, the first nprocs */
  size_t nprocs;
  int dir_fd;                /* v2: for clone3(CLONE_INTO_CGROUP), else -1 */
  uint64_t memory_peak_seen; /* v2 without memory.peak: max of samples */
  bool final;                /* the usage read at the end: no live counters */
  bool fresh;                /* made by cg_job_create: every limit at its default */
  uint64_t memory_max;       /* v1: the memory limit written, 0 unknown */
  cg_manager *own_m;         /* cg_path_*: the manager made for j, freed with it */
  bool nested;               /* cg_job_create_child: v2 gives it no controllers of its own */
  pid_t spare;               /* cg_job_spare: kills leave it alone */
};

struct cg_ops {
  /* Make the subtree below the detected own cgroups; fill m->hier. */
  int (*manager_setup)(cg_manager *m, const cg_detection *d, rr_err *e);
  /* Remove the subtree if empty (and undo a v2 move). */
  void (*manager_teardown)(cg_manager *m);
  int (*job_apply)(cg_job *j, const cg_limits *l, rr_err *e);
  int (*job_usage)(cg_job *j, cg_usage *u, rr_err *e);
  int (*job_kill)(cg_job *j, rr_err *e);
  bool (*job_empty)(cg_job *j);
};

extern const cg_ops cg_v1_ops;
extern const cg_ops cg_v2_ops;

/* Index of the job's hierarchy holding controller bit, or -1 (not used by
 * this job, or not mounted). */
int cg_job_hier_of(const cg_job *j, unsigned bit);
/* Index of the job's first hierarchy (any lists all its processes). */
int cg_job_hier_first(const cg_job *j);

/* ---- shared by the manager and the job cgroups ---- */
/* Names used as one path component: no "/", no dot names, bounded. */
int cg_check_name(const char *what, const char *s, rr_err *e);
/* A job object in the hierarchies of mask hiers (bit i: m->hier[i]), with
 * its paths; nothing made on disk. NULL on ENOMEM. */
cg_job *cg_job_alloc(cg_manager *m, const char *id, unsigned hiers);
/* The mask of every hierarchy of m. */
unsigned cg_all_hiers(const cg_manager *m);

/* ---- cgroups made ahead of need (cgroup_pool.c, v1) ---- */
/* Start the worker that keeps m's pool stocked; NULL if it cannot start. */
cg_pool *cg_pool_new(const cg_manager *m);
/* mkdir(dir) in hierarchy i, by renaming a pooled directory when there is
 * one (and asking for the next); -1 with errno as mkdir's (EEXIST: taken). */
int cg_pool_take(cg_pool *p, size_t i, const char *dir);
/* Stop the worker and remove the pooled directories. */
void cg_pool_free(cg_pool *p);

/* ---- file helpers (cgroup_util.c) ---- */
/* Read a small file into buf (NUL-terminated); -1 + e on error (errno kept). */
int cg_file_read(const char *path, char *buf, size_t len, rr_err *e);
/* Write value to DIR/FILE; EINVAL means the kernel refused the value, so
 * INVALID_ARGUMENT naming what (e.g. "limits.memory_max"); else INTERNAL. */
int cg_file_write(const char *dir, const char *file, const char *value, const char *what,
                  rr_err *e);
/* Read DIR/FILE as one unsigned number ("max" reads as UINT64_MAX). */
int cg_file_read_u64(const char *dir, const char *file, uint64_t *ret, rr_err *e);
/* Read DIR/FILE if it exists: 1 read, 0 absent (not counted here), -1 error. */
int cg_file_read_opt(const char *dir, const char *file, char *buf, size_t len, rr_err *e);
/* cg_file_write of a decimal number. */
int cg_file_write_u64(const char *dir, const char *file, uint64_t v, const char *what, rr_err *e);
/* Whether DIR/FILE exists. */
bool cg_file_exists(const char *dir, const char *file);
/* malloc'd "a/b"; NULL on ENOMEM. */
char *cg_path_join(const char *a, const char *b);
/* SIGKILL each pid listed in DIR/cgroup.procs and in those of the cgroups
 * below it (exec --in), but spare (0: none); *nlisted = how many others
 * were listed. */
int cg_procs_kill_all(const char *dir, pid_t spare, size_t *nlisted, rr_err *e);
/* How many tasks (threads) DIR/tasks lists (v1): pids.current of a job
 * outside the pids hierarchy. */
int cg_tasks_count(const char *dir, uint64_t *ret, rr_err *e);
/* Whether DIR/cgroup.procs lists no pid (true too when it cannot be read). */
bool cg_procs_empty(const char *dir);
/* Sleep ms milliseconds. */
void cg_sleep_ms(unsigned ms);
/* How long one kill may wait for a freeze or for processes to go (it runs
 * on rund's event loop; callers that need the cgroup empty call again). */
#define CG_KILL_WAIT_MS 20

/* ---- pure parsers (cgroup_util.c), tested on sample text ---- */
/* Value of KEY in a flat keyed file ("key value\n" lines). */
bool cg_parse_keyed(const char *text, const char *key, uint64_t *ret);
/* v1 cpuacct.usage_all ("cpu user system" then "N USER_NS SYS_NS" per CPU):
 * the sums over the CPUs in ns; false unless the text is whole and of
 * that shape. */
bool cg_parse_usage_all(const char *text, uint64_t *user_ns, uint64_t *sys_ns);
/* The cgroup2 mounts and v1 cgroup mounts of a /proc/self/mountinfo text;
 * returns how many were stored in out. */
size_t cg_parse_mountinfo(const char *text, cg_mount *out, size_t max);
/* Path of the /proc/self/cgroup line for controller (NULL: the "0::" v2
 * line; else a line whose controller list contains it). 0, or -1 if none. */
int cg_parse_proc_cgroup(const char *text, const char *controller, char *out, size_t len);
/* Decide the version and our own directory per hierarchy from the mounts
 * under root and our /proc/self/cgroup text. root_is_cgroup2: statfs says
 * root itself is a cgroup2 mount. v1 wins when any controller we use is
 * mounted per controller; else a cgroup2 mount under root gives CG_V2, which
 * the caller keeps only if its cgroup.controllers lists some (else the
 * controllers are on v1 or nowhere). */
int cg_detect(const char *root, bool root_is_cgroup2, const cg_mount *mounts, size_t nmounts,
              const char *proc_cgroup, cg_detection *d, rr_err *e);
/* v2 io.stat: sum rbytes/wbytes/rios/wios over devices. */
void cg_parse_io_stat(const char *text, cg_usage *u);
/* v1 blkio.throttle.io_service_bytes / io_serviced: sum of the per-device
 * Read and Write lines (Total lines skipped). */
void cg_parse_blkio(const char *text, uint64_t *read, uint64_t *write);
/* v2 cpu.stat into u (usage/user/system/throttled). */
void cg_parse_cpu_stat(const char *text, cg_usage *u);
/* Controller mask of a space-separated v2 list ("cpuset cpu io memory pids"). */
unsigned cg_parse_v2_controllers(const char *text);
/* Name of one controller bit as v2 spells it ("cpu", "io", ...). */
const char *cg_controller_name(unsigned bit, cg_version v);
