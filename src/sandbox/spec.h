/* What the sandbox engine runs: the parts of an OCI runtime-spec config
 * (config.json of a bundle, runtime-spec 1.x) that the engine acts on,
 * parsed and written with json-c. rund builds one from a request and a
 * profile (sandbox/profile.h); runproc reads one from a bundle. Parsing
 * refuses what it does not understand with the field named:
 *   linux.namespaces[2].type: unknown namespace "pdi"
 * Fields the engine does not act on (annotations, hooks, apparmor, ...)
 * are ignored by the parser, as runc ignores what its platform lacks. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "sandbox/cgroup.h"

#define SB_MAX_MOUNTS 1024
#define SB_MAX_ID_MAPS 340 /* the kernel's limit per map file */
#define SB_MAX_PATHS 1024  /* masked, readonly paths; sysctls */
#define SB_MAX_RLIMITS 16
#define SB_MAX_SYSCALL_RULES 4096
#define SB_MAX_GROUPS 256
#define SB_MAX_ARGS 65536 /* process.args, and process.env */

typedef enum sb_ns_type {
  SB_NS_PID,
  SB_NS_MOUNT,
  SB_NS_IPC,
  SB_NS_UTS,
  SB_NS_CGROUP,
  SB_NS_NET,
  SB_NS_USER,
  SB_NS_TIME,
  SB_NS_COUNT
} sb_ns_type;

typedef struct sb_namespace {
  bool enabled; /* listed in linux.namespaces */
  char *path;   /* NULL: a new one; else join this one (setns) */
} sb_namespace;

typedef struct sb_id_map {
  uint32_t container_id, host_id, size;
} sb_id_map;

typedef struct sb_mount {
  char *destination; /* absolute, inside the root */
  char *type;        /* "proc", "tmpfs", "bind", ...; NULL for a bind */
  char *source;
  char **options; /* as given, for writing back */
  size_t noptions;
  /* Parsed from options: mount(2) flags, propagation flags (MS_PRIVATE,
   * MS_SLAVE, MS_SHARED, MS_UNBINDABLE, | MS_REC), and the rest as data
   * ("mode=755,size=65536k"; NULL if none). */
  unsigned long flags;
  unsigned long propagation;
  char *data;
  bool bind;     /* "bind" or "rbind" in options, or type "bind" */
  bool readonly; /* "ro": a bind is remounted read-only after */
  /* A bind of this O_PATH fd (the source as checked; not owned) rather than
   * of source looked up again; not part of the config file. */
  bool has_source_fd;
  int source_fd;
} sb_mount;

typedef struct sb_rlimit {
  int resource; /* RLIMIT_* */
  uint64_t soft, hard;
} sb_rlimit;

/* Capability sets as bit masks of CAP_* numbers (1ull << CAP_X). */
typedef struct sb_caps {
  uint64_t bounding, effective, permitted, inheritable, ambient;
} sb_caps;

typedef enum sb_seccomp_action {
  SB_SECCOMP_KILL,         /* SCMP_ACT_KILL (thread) */
  SB_SECCOMP_KILL_PROCESS, /* SCMP_ACT_KILL_PROCESS */
  SB_SECCOMP_TRAP,
  SB_SECCOMP_ERRNO, /* with errno_ret */
  SB_SECCOMP_TRACE,
  SB_SECCOMP_ALLOW,
  SB_SECCOMP_LOG,
} sb_seccomp_action;

typedef enum sb_seccomp_op {
  SB_OP_NE = 1,
  SB_OP_LT,
  SB_OP_LE,
  SB_OP_EQ,
  SB_OP_GE,
  SB_OP_GT,
  SB_OP_MASKED_EQ,
} sb_seccomp_op;

typedef struct sb_seccomp_arg {
  unsigned index;
  uint64_t value, value_two;
  sb_seccomp_op op;
} sb_seccomp_arg;

typedef struct sb_seccomp_rule {
  char **names; /* syscall names; unknown ones on this arch are skipped */
  size_t nnames;
  sb_seccomp_action action;
  uint32_t errno_ret; /* for SB_SECCOMP_ERRNO; 0 = EPERM */
  sb_seccomp_arg *args;
  size_t nargs;
} sb_seccomp_rule;

typedef struct sb_seccomp {
  sb_seccomp_action default_action;
  uint32_t default_errno; /* for SB_SECCOMP_ERRNO; 0 = EPERM */
  uint32_t *archs;        /* SCMP_ARCH_* values; none = native only */
  size_t narchs;
  sb_seccomp_rule *rules;
  size_t nrules;
} sb_seccomp;

typedef struct sb_process {
  bool terminal;
  bool has_console_size; /* consoleSize: the terminal's window, in characters */
  uint32_t console_height, console_width;
  uint32_t uid, gid; /* inside the user namespace, if any */
  uint32_t additional_gids[SB_MAX_GROUPS];
  size_t ngids;
  uint32_t umask;
  bool has_umask;
  char **args; /* args[0] is the executable (a name is looked up in PATH) */
  size_t nargs;
  char **env; /* "K=V" */
  size_t nenv;
  char *cwd; /* absolute, inside the root */
  bool has_caps;
  sb_caps caps;
  bool no_new_privileges;
  sb_rlimit rlimits[SB_MAX_RLIMITS];
  size_t nrlimits;
  bool has_oom_score_adj;
  int oom_score_adj;
} sb_process;

typedef struct sb_spec {
  char *oci_version;
  sb_process process;
  char *root_path; /* NULL: no root change (host's root, as in the host profile) */
  bool root_readonly;
  bool has_root_fd; /* root_path's object as checked (O_PATH, not owned): bound instead */
  int root_fd;
  bool root_fd_is_tree; /* root_fd is a detached mount (fsmount): moved in, not copied */
  char *hostname;
  char *domainname;
  sb_mount *mounts;
  size_t nmounts;
  sb_namespace ns[SB_NS_COUNT];
  sb_id_map *uid_maps, *gid_maps;
  size_t nuid_maps, ngid_maps;
  cg_limits *resources; /* linux.resources (the subset we enforce); NULL: none */
  char *cgroups_path;
  sb_seccomp *seccomp; /* NULL: none */
  char **masked_paths, **readonly_paths;
  size_t nmasked_paths, nreadonly_paths;
  char **sysctl_keys, **sysctl_values;
  size_t nsysctls;
  unsigned long rootfs_propagation; /* MS_* | MS_REC; 0 = MS_PRIVATE | MS_REC */
} sb_spec;

sb_spec *sb_spec_new(void);
void sb_spec_free(sb_spec *s);
/* Parse a config object; INVALID_ARGUMENT naming the field on anything
 * malformed, out of range or unknown. Relative root.path is taken relative
 * to bundle_dir (NULL: kept as is). */
int sb_spec_from_json(json_object *o, const char *bundle_dir, sb_spec **ret, rr_err *e);
/* Parse config.json's text (LEN bytes, no NUL needed), as sb_spec_load does. */
int sb_spec_parse(const char *text, size_t len, const char *bundle_dir, sb_spec **ret, rr_err *e);
/* The linux.resources object res (fields named "linux.resources.*"): the
 * subset the engine enforces into *ret (zeroed first), range-checked;
 * fields it does not enforce are ignored. A cpu.period without a quota is
 * kept in cpu_period_us (has_cpu false). */
int sb_resources_from_json(json_object *res, cg_limits *ret, rr_err *e);
/* Read and parse PATH (a bundle's config.json). */
int sb_spec_load(const char *path, const char *bundle_dir, sb_spec **ret, rr_err *e);
/* sb_spec_load, and *ret_json the whole parsed object (for the members the
 * spec does not keep: hooks, annotations), not read twice. */
int sb_spec_load_json(const char *path, const char *bundle_dir, sb_spec **ret,
                      json_object **ret_json, rr_err *e);
/* The host's root for s's process: no root.path, no mount namespace, no
 * mounts, masked or read-only paths (runproc's host mode). */
void sb_spec_host_root(sb_spec *s);
/* The config object back (what `runproc spec` prints, what rund stores). */
json_object *sb_spec_to_json(const sb_spec *s);
/* Cross-field checks that the parser cannot make alone (e.g. uid maps
 * without a user namespace, a hostname without a uts namespace). */
int sb_spec_validate(const sb_spec *s, rr_err *e);
/* "pid", "mount", ... as in the runtime spec; NULL for an invalid type. */
const char *sb_ns_name(sb_ns_type t);
/* -1 if name is no namespace type. */
int sb_ns_from_name(const char *name);
/* An absolute path without "." or ".." components, at most 4096 bytes:
 * INVALID_ARGUMENT naming path (the field) otherwise. */
int sb_path_check(const char *p, const char *path, rr_err *e);
/* RFC 1123 host name label rules, 1..64 bytes (what a request may ask). */
int sb_hostname_check(const char *h, const char *path, rr_err *e);
/* CAP_* number of "CAP_SYS_ADMIN"; -1 if unknown (or unknown to this kernel's libcap). */
int sb_cap_from_name(const char *name);
