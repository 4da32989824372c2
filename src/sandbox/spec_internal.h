/* Shared by spec*.c and profile*.c: typed JSON getters that name the field
 * on error, string checks, the mount option parser and the enum tables. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "sandbox/spec.h"

#define SB_PATH_MAX 4096          /* any path in a config (PATH_MAX) */
#define SB_ARG_MAX 131072         /* one arg or env entry (MAX_ARG_STRLEN) */
#define SB_NAME_MAX 256           /* names: syscalls, capabilities, sysctl keys... */
#define SB_MAX_OPTIONS 64         /* options of one mount */
#define SB_MAX_SYSCALL_NAMES 1024 /* names of one seccomp rule */
#define SB_MAX_SYSCALL_ARGS 6
#define SB_HOSTNAME_MAX 64 /* HOST_NAME_MAX */

/* A field path for messages: "process.rlimits[0]" + ".type". */
typedef struct sj_path {
  char s[256];
} sj_path;
/* parent + "." + key (or just key when parent is empty). */
sj_path sj_key(const char *parent, const char *key);
/* parent + "[i]". */
sj_path sj_index(const char *parent, size_t i);
/* s quoted for a message: at most 64 bytes, control bytes escaped. */
const char *sj_quote(const char *s, char *buf, size_t size);
#define SJ_QUOTE(s) sj_quote((s), (char[96]){0}, 96)

/* Member key of o (JSON null counts as absent): 1 present and of type t
 * (ret set), 0 absent, -1 wrong type (INVALID_ARGUMENT naming path.key). */
int sj_member(json_object *o, const char *path, const char *key, json_type t, json_object **ret,
              rr_err *e);
/* v must be of type t: INVALID_ARGUMENT naming path otherwise. */
int sj_check_type(json_object *v, const char *path, json_type t, rr_err *e);
/* A string value at most max bytes without NUL, strdup'ed into *ret. */
int sj_string_value(json_object *v, const char *path, size_t max, char **ret, rr_err *e);
/* Optional member strings/booleans/integers; absent leaves *ret untouched. */
int sj_string(json_object *o, const char *path, const char *key, size_t max, char **ret, rr_err *e);
int sj_bool(json_object *o, const char *path, const char *key, bool *ret, rr_err *e);
int sj_u64_value(json_object *v, const char *path, uint64_t max, uint64_t *ret, rr_err *e);
int sj_i64_value(json_object *v, const char *path, int64_t min, int64_t max, int64_t *ret,
                 rr_err *e);
/* 1 present (ret set), 0 absent, -1 error. */
int sj_u64(json_object *o, const char *path, const char *key, uint64_t max, uint64_t *ret,
           rr_err *e);
int sj_i64(json_object *o, const char *path, const char *key, int64_t min, int64_t max,
           int64_t *ret, rr_err *e);
/* An array of at most max strings of at most maxlen bytes each. */
int sj_strings(json_object *o, const char *path, const char *key, size_t max, size_t maxlen,
               char ***ret, size_t *n, rr_err *e);
void sj_strings_free(char **v, size_t n);
char **sj_strings_dup(const char *const *v, size_t n);

/* What a config may set, as runc: 1..64 printable bytes, no space or '/'. */
int sb_hostname_check_lax(const char *h, const char *path, rr_err *e);

/* Fill m's flags, propagation, data, bind and readonly from its options
 * (kept in m->options); unknown options are filesystem data. */
int sb_mount_options_parse(sb_mount *m, const char *path, rr_err *e);
int sb_mounts_from_json(json_object *a, const char *path, const char *bundle_dir, sb_spec *s,
                        rr_err *e);
void sb_mount_clear(sb_mount *m);
/* "rprivate" etc. to MS_* | MS_REC; 0 if unknown. */
unsigned long sb_propagation_from_name(const char *name);
const char *sb_propagation_name(unsigned long flags);

int sb_linux_from_json(json_object *l, const char *bundle_dir, sb_spec *s, rr_err *e);
int sb_seccomp_from_json(json_object *o, const char *path, sb_seccomp **ret, rr_err *e);
void sb_seccomp_free(sb_seccomp *s);
json_object *sb_seccomp_to_json(const sb_seccomp *s);
const char *sb_seccomp_action_name(sb_seccomp_action a);
const char *sb_seccomp_op_name(sb_seccomp_op op);

/* Capability names: "CAP_CHOWN" for 0; NULL past the table. */
const char *sb_cap_name(int cap);
/* "RLIMIT_NOFILE" <-> RLIMIT_NOFILE; -1 / NULL if unknown. */
int sb_rlimit_from_name(const char *name);
const char *sb_rlimit_name(int resource);

/* The seccomp rule set of the default (strict false) or strict profile. */
int sb_profile_seccomp(bool strict, sb_seccomp **ret, rr_err *e);
