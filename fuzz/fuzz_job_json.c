/* job.json as rund reads it at start-up (logstore_json_parse, then
 * job_load_fields): a damaged file must be refused with a reason, never
 * crash; what loads must write back to a form that loads again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job_internal.h"
#include "jobs/logstore.h"
#include "jobs/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  job_table t;
  memset(&t, 0, sizeof t);
  t.jobs_dir = (char *)"/nonexistent/jobs";
  t.inotify_fd = -1;
  job *j = job_alloc(&t, "01HZX3NDEKTSV4RRFFQ69G5FAV");
  if (!j)
    abort();
  json_object *o = NULL;
  rr_err e = {0};
  if (logstore_json_parse((const char *)data, size, "job.json", &o, &e) == 0) {
    if (job_load_fields(j, o, &e) == 0) {
      json_object *again = job_request_to_json(&j->req);
      job_request r;
      memset(&r, 0, sizeof r);
      rr_err e2 = {0};
      if (!again || job_request_from_json(again, &r, &e2) < 0) {
        fprintf(stderr, "a loaded request does not load again: %s\n", e2.msg);
        abort();
      }
      job_request_free(&r);
      json_object_put(again);
    } else if (!e.code || !e.msg[0]) {
      abort(); /* refused without saying why */
    }
    json_object_put(o);
  }
  job_free(j);
  return 0;
}
