/* runctl's value parsers: sizes, counts, CPU limits, every limit flag
 * (runctl_limits_apply) and the duration parser of src/common (--grace,
 * --timeout, rund --retention). The first byte picks the parser, the rest
 * is the value (cut at a NUL, as argv would be). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runctl/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const flag_names[] = {"--max-cpu",   "-max_cpu_bandwidth", "--max-memory",
                                         "--max-pids",  "--max-rbps",         "--max-wbps",
                                         "--max-riops", "--max-wiops"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096)
    return 0;
  char *s = malloc(size);
  if (!s)
    abort();
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';
  const char *why = NULL;
  uint64_t a = 0, b = 0;
  char buf[128];
  switch (data[0] % 5u) {
  case 0:
    if (runctl_parse_size(s, &a, &why) == 0)
      runctl_format_bytes(a, buf, sizeof buf);
    else if (!why)
      abort();
    break;
  case 1:
    if (runctl_parse_count(s, &a, &why) < 0 && !why)
      abort();
    break;
  case 2:
    if (runctl_parse_cpu(s, &a, &b, &why) == 0)
      runctl_format_cpu(a, b, buf, sizeof buf);
    else if (!why)
      abort();
    break;
  case 3:
    if (rr_parse_duration_ms(s, &a) == 0 && a > 1000000000000000ull)
      abort(); /* documented bound: 10^15 ms */
    break;
  default: {
    /* a few flags in a row, as on a command line; "\x01" separates values */
    runctl_limits l;
    memset(&l, 0, sizeof l);
    char msg[512];
    unsigned k = data[0] / 5u;
    char *save = NULL;
    for (char *v = strtok_r(s, "\x01", &save); v; v = strtok_r(NULL, "\x01", &save), k++) {
      runctl_limit_flag f = (runctl_limit_flag)(k % 8u);
      msg[0] = '\0';
      if (runctl_limits_apply(&l, f, flag_names[f], v, msg, sizeof msg) < 0 && !msg[0])
        abort(); /* a refusal says why */
    }
    if (l.limits.nio > RUNRPC_MAX_IO_LIMITS)
      abort();
  }
  }
  free(s);
  return 0;
}
