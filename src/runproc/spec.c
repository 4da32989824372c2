/* runproc spec [--bundle DIR] [--rootless]: a config.json like runc's
 * default (sh in ./rootfs, the usual namespaces, mounts, masked and
 * read-only paths, runc's capabilities), but without a terminal (runproc
 * cannot give one yet), a cgroup mount or a devices rule (not acted on). With --rootless: a user
 * namespace mapping root inside onto our ids, /sys bound from the host, devpts without gid=5. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

static const char runproc_default_spec[] =
    "{\"ociVersion\":\"" RUNPROC_OCI_VERSION "\","
    "\"process\":{\"terminal\":false,\"user\":{\"uid\":0,\"gid\":0},\"args\":[\"sh\"],"
    "\"env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
    "\"TERM=xterm\"],\"cwd\":\"/\","
    "\"capabilities\":{"
    "\"bounding\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"effective\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"permitted\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"]},"
    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":1024}],"
    "\"noNewPrivileges\":true},"
    "\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
    "\"hostname\":\"runproc\","
    "\"mounts\":["
    "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
    "\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]},"
    "{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\","
    "\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\","
    "\"gid=5\"]},"
    "{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\",\"size=65536k\"]},"
    "{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\",\"source\":\"mqueue\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},"
    "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}],"
    "\"linux\":{"
    "\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},"
    "{\"type\":\"uts\"},{\"type\":\"mount\"},{\"type\":\"cgroup\"}],"
    "\"maskedPaths\":[\"/proc/acpi\",\"/proc/asound\",\"/proc/kcore\",\"/proc/keys\","
    "\"/proc/latency_stats\",\"/proc/timer_list\",\"/proc/timer_stats\",\"/proc/sched_debug\","
    "\"/sys/firmware\",\"/proc/scsi\"],"
    "\"readonlyPaths\":[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\","
    "\"/proc/sysrq-trigger\"]}}";

/* runc's --rootless changes, on the parsed default. */
static void runproc_spec_rootless(json_object *o) {
  json_object *linux_o, *ns, *mounts;
  json_object_object_get_ex(o, "linux", &linux_o);
  json_object_object_get_ex(linux_o, "namespaces", &ns);
  json_object *user = json_object_new_object();
  json_object_object_add(user, "type", json_object_new_string("user"));
  json_object_array_add(ns, user);
  const char *keys[] = {"uidMappings", "gidMappings"};
  unsigned ids[] = {getuid(), getgid()};
  for (int i = 0; i < 2; i++) {
    json_object *a = json_object_new_array(), *m = json_object_new_object();
    json_object_object_add(m, "containerID", json_object_new_int64(0));
    json_object_object_add(m, "hostID", json_object_new_int64(ids[i]));
    json_object_object_add(m, "size", json_object_new_int64(1));
    json_object_array_add(a, m);
    json_object_object_add(linux_o, keys[i], a);
  }
  json_object_object_get_ex(o, "mounts", &mounts);
  json_object *keep = json_object_new_array();
  for (size_t i = 0; i < json_object_array_length(mounts); i++) {
    json_object *m = json_object_array_get_idx(mounts, i), *d, *opts;
    json_object_object_get_ex(m, "destination", &d);
    const char *dest = json_object_get_string(d);
    if (strcmp(dest, "/sys") == 0) {
      m = json_tokener_parse("{\"destination\":\"/sys\",\"type\":\"none\",\"source\":\"/sys\","
                             "\"options\":[\"rbind\",\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}");
      json_object_array_add(keep, m);
      continue;
    }
    if (strcmp(dest, "/dev/pts") == 0 && json_object_object_get_ex(m, "options", &opts)) {
      json_object *o2 = json_object_new_array();
      for (size_t k = 0; k < json_object_array_length(opts); k++) {
        json_object *x = json_object_array_get_idx(opts, k);
        if (strcmp(json_object_get_string(x), "gid=5") != 0)
          json_object_array_add(o2, json_object_get(x));
      }
      json_object_object_add(m, "options", o2);
    }
    json_object_array_add(keep, json_object_get(m));
  }
  json_object_object_add(o, "mounts", keep);
}

static int cmd_spec(runproc_ctx *ctx, int argc, char **argv) {
  const char *bundle = ".";
  bool rootless = ctx->rootless;
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int r = runproc_opt(argc, argv, &i, "bundle", 'b', &v);
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", argv[i]);
    if (r > 0)
      bundle = v;
    else if (runproc_flag(argv[i], "rootless", 0))
      rootless = true;
    else
      return runproc_fail(ctx, "unexpected argument \"%s\"", argv[i]);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", bundle);
  if (access(path, F_OK) == 0)
    return runproc_fail(ctx, "\"%s\" already exists: remove it first", path);
  json_object *o = json_tokener_parse(runproc_default_spec);
  if (!o)
    return runproc_fail(ctx, "internal error: the default config does not parse");
  if (rootless)
    runproc_spec_rootless(o);
  const char *s = json_object_to_json_string_ext(
      o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
  rr_err e = {0};
  int rc = 0;
  _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 || rr_write_all(fd, s, strlen(s)) < 0 || rr_write_all(fd, "\n", 1) < 0) {
    rr_err_sys(&e, RR_INTERNAL, errno, "cannot write \"%s\"", path);
    rc = runproc_fail_err(ctx, &e);
  }
  json_object_put(o);
  return rc;
}

const runproc_command runproc_cmd_spec = {"spec", "spec [--bundle DIR] [--rootless]", cmd_spec};
