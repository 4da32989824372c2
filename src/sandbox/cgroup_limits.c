/* Limits of a job cgroup: validation, and block devices named by path or
 * MAJ:MIN resolved to the whole disk's numbers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

bool cg_limits_any(const cg_limits *l) {
  return l->has_cpu || l->has_memory || l->has_pids || l->nio > 0;
}

int cg_limits_validate(const cg_limits *l, rr_err *e) {
  if (l->has_cpu) {
    uint64_t period = l->cpu_period_us ? l->cpu_period_us : CG_DEFAULT_CPU_PERIOD_US;
    if (period < CG_MIN_CPU_PERIOD_US || period > CG_MAX_CPU_PERIOD_US)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.cpu.period_us: %" PRIu64 " out of range %u..%u", period,
                        CG_MIN_CPU_PERIOD_US, CG_MAX_CPU_PERIOD_US);
    if (l->cpu_quota_us < CG_MIN_CPU_QUOTA_US)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.cpu.quota_us: %" PRIu64 " is too small (at least %u us)",
                        l->cpu_quota_us, CG_MIN_CPU_QUOTA_US);
    if (l->cpu_quota_us > period * CG_MAX_CPUS)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.cpu.quota_us: %" PRIu64 " is too large (at most %u CPUs, i.e. "
                        "%" PRIu64 " us per period of %" PRIu64 " us)",
                        l->cpu_quota_us, CG_MAX_CPUS, period * CG_MAX_CPUS, period);
  }
  if (l->has_memory) {
    if (l->memory_max < CG_MIN_MEMORY_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.memory_max: %" PRIu64 " is too small (at least %u bytes)",
                        l->memory_max, CG_MIN_MEMORY_MAX);
    if (l->memory_max > CG_MAX_MEMORY_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.memory_max: %" PRIu64 " is too large (at most %" PRIu64 " bytes)",
                        l->memory_max, (uint64_t)CG_MAX_MEMORY_MAX);
  }
  if (l->has_pids && (l->pids_max < 1 || l->pids_max > CG_MAX_PIDS_MAX))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits.pids_max: %" PRIu64 " out of range 1..%u",
                      l->pids_max, CG_MAX_PIDS_MAX);
  if (l->nio > CG_MAX_IO)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits.io: %zu devices (at most %d)", l->nio,
                      CG_MAX_IO);
  for (size_t i = 0; i < l->nio; i++) {
    const cg_io_limit *io = &l->io[i];
    if (io->major == 0 || io->major >= (1u << 12) || io->minor >= (1u << 20))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.io[%zu].device: %u:%u is not a block device number", i, io->major,
                        io->minor);
    if (!io->rbps && !io->wbps && !io->riops && !io->wiops)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.io[%zu]: no limit set for %u:%u (want rbps, wbps, riops or wiops)",
                        i, io->major, io->minor);
    for (size_t k = 0; k < i; k++)
      if (l->io[k].major == io->major && l->io[k].minor == io->minor)
        return rr_err_set(e, RR_INVALID_ARGUMENT,
                          "limits.io[%zu].device: %u:%u is already limited by limits.io[%zu]", i,
                          io->major, io->minor, k);
  }
  return 0;
}

/* Strict "MAJ:MIN": digits only, in the kernel's dev_t ranges. */
static bool parse_majmin(const char *s, unsigned *major, unsigned *minor) {
  unsigned long v[2];
  const char *p = s;
  for (int i = 0; i < 2; i++) {
    if (*p < '0' || *p > '9')
      return false;
    v[i] = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
      v[i] = v[i] * 10 + (unsigned long)(*p - '0');
      if (v[i] >= (1ul << 20))
        return false;
    }
    if (i == 0 && *p++ != ':')
      return false;
  }
  if (*p || v[0] >= (1ul << 12))
    return false;
  *major = (unsigned)v[0];
  *minor = (unsigned)v[1];
  return true;
}

int cg_device_resolve(const char *spec, const char *field, unsigned *major, unsigned *minor,
                      rr_err *e) {
  unsigned maj, min;
  if (!spec || !*spec)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: empty device", field);
  if (spec[0] == '/') {
    struct stat st;
    if (stat(spec, &st) < 0)
      return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "%s: cannot stat \"%s\"", field, spec);
    dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
    if (S_ISCHR(st.st_mode))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" is a character device, not a block device", field, spec);
    maj = major(dev);
    min = minor(dev);
    char sys[64];
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", maj, min);
    if (maj == 0 || access(sys, F_OK) < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" is not on a block device (tmpfs?): name a device", field, spec);
  } else {
    size_t nd = strspn(spec, "0123456789");
    bool shape = nd > 0 && spec[nd] == ':' && spec[nd + 1] &&
                 strspn(spec + nd + 1, "0123456789") == strlen(spec + nd + 1);
    if (shape && !parse_majmin(spec, &maj, &min))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" out of range (want MAJ:MIN, major < 4096, minor < 1048576)",
                        field, spec);
    if (!parse_majmin(spec, &maj, &min))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" is neither MAJ:MIN nor an absolute path", field, spec);
    char sys[64];
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", maj, min);
    if (access(sys, F_OK) < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: unknown device %u:%u", field, maj, min);
  }
  /* Throttling applies to whole disks: map a partition to its disk. */
  char path[96], buf[32];
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/partition", maj, min);
  if (access(path, F_OK) == 0) {
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/../dev", maj, min);
    unsigned pmaj, pmin;
    if (cg_file_read(path, buf, sizeof buf, NULL) < 0 || sscanf(buf, "%u:%u", &pmaj, &pmin) != 2)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: cannot find the disk of partition %u:%u",
                        field, maj, min);
    maj = pmaj;
    min = pmin;
  }
  *major = maj;
  *minor = min;
  return 0;
}
