#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/logstore.h"
#include "jobs/punch.h"
#include "jobs/request.h"

static char dir[64];

static int setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/logstore_test_XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd);
}

static void test_json_atomic_roundtrip(void **state) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "state", json_object_new_string("running"));
  assert_int_equal(logstore_json_write(dir, o, true, NULL), 0);
  json_object_put(o);
  json_object *back = NULL;
  assert_int_equal(logstore_json_read(dir, &back, NULL), 0);
  json_object *v;
  assert_true(json_object_object_get_ex(back, "state", &v));
  assert_string_equal(json_object_get_string(v), "running");
  json_object_put(back);
  char p[128];
  snprintf(p, sizeof p, "%s/job.json.tmp", dir);
  assert_int_equal(access(p, F_OK), -1); /* renamed away */
  /* garbage is reported, not crashed on */
  snprintf(p, sizeof p, "%s/job.json", dir);
  FILE *f = fopen(p, "w");
  fputs("{\"state\": ", f);
  fclose(f);
  rr_err e = {0};
  assert_int_equal(logstore_json_read(dir, &back, &e), -1);
  assert_int_equal(e.code, RR_DATA_LOSS);
}

static ino_t json_ino(void) {
  char p[128];
  struct stat st;
  snprintf(p, sizeof p, "%s/job.json", dir);
  assert_int_equal(stat(p, &st), 0);
  return st.st_ino;
}

static const char *json_state(void) {
  static char buf[64];
  json_object *back = NULL, *v;
  assert_int_equal(logstore_json_read(dir, &back, NULL), 0);
  assert_true(json_object_object_get_ex(back, "state", &v));
  snprintf(buf, sizeof buf, "%s", json_object_get_string(v));
  json_object_put(back);
  return buf;
}

/* Without sync a small job.json is rewritten in place (same inode), a
 * shorter version is padded, and a version over a page goes through rename. */
static void test_json_overwrite_in_place(void **state) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "state", json_object_new_string("running-and-quite-long"));
  assert_int_equal(logstore_json_write(dir, o, false, NULL), 0);
  ino_t ino = json_ino();
  assert_string_equal(json_state(), "running-and-quite-long");
  json_object_object_add(o, "state", json_object_new_string("x"));
  assert_int_equal(logstore_json_write(dir, o, false, NULL), 0);
  assert_int_equal(json_ino(), ino);
  assert_string_equal(json_state(), "x");
  json_object_object_add(o, "state",
                         json_object_new_string("exited-with-a-longer-state-than-before"));
  assert_int_equal(logstore_json_write(dir, o, false, NULL), 0);
  assert_int_equal(json_ino(), ino);
  assert_string_equal(json_state(), "exited-with-a-longer-state-than-before");
  static char big[5000];
  memset(big, 'b', sizeof big - 1);
  json_object_object_add(o, "big", json_object_new_string(big));
  assert_int_equal(logstore_json_write(dir, o, false, NULL), 0);
  assert_int_not_equal(json_ino(), ino); /* replaced: too large to write in one piece */
  assert_string_equal(json_state(), "exited-with-a-longer-state-than-before");
  json_object_put(o);
  char p[128];
  snprintf(p, sizeof p, "%s/job.json.tmp", dir);
  assert_int_equal(access(p, F_OK), -1);
}

static void test_append_read_and_cap(void **state) {
  int w = logstore_stream_open_append(dir, LOG_STDOUT, NULL);
  assert_true(w >= 0);
  /* 40 KiB of a counting pattern */
  static unsigned char data[40960];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(i * 7 + i / 256);
  assert_int_equal(write(w, data, sizeof data), (ssize_t)sizeof data);
  uint64_t kept = 0;
  /* cap 10000: punch whole blocks, keep at least 10000 bytes */
  assert_int_equal(logstore_enforce_cap(w, sizeof data, 10000, &kept, NULL), 0);
  assert_int_equal(kept, 28672); /* floor((40960-10000)/4096)*4096 */
  assert_true(sizeof data - kept >= 10000);
  int r = logstore_stream_open_read(dir, LOG_STDOUT, NULL);
  assert_true(r >= 0);
  assert_int_equal(logstore_first_kept(r, sizeof data), kept);
  /* a reader from 0 is told what it missed and continues at the first kept byte */
  uint64_t off = 0, dropped = 0;
  unsigned char buf[65536];
  ssize_t n = logstore_stream_read(r, kept, &off, buf, sizeof buf, &dropped, NULL);
  assert_int_equal(dropped, kept);
  assert_int_equal(n, sizeof data - kept);
  assert_memory_equal(buf, data + kept, (size_t)n);
  assert_int_equal(off, sizeof data);
  n = logstore_stream_read(r, kept, &off, buf, sizeof buf, &dropped, NULL);
  assert_int_equal(n, 0);
  assert_int_equal(dropped, 0);
  /* cap not exceeded: nothing happens */
  assert_int_equal(logstore_enforce_cap(w, sizeof data, 1 << 20, &kept, NULL), 0);
  assert_int_equal(kept, 28672);
  /* disk usage really went down (holes) */
  struct stat st;
  assert_int_equal(fstat(r, &st), 0);
  assert_int_equal(st.st_size, sizeof data);
  assert_true((uint64_t)st.st_blocks * 512 <= sizeof data - 28672 + 4096);
  close(r);
  close(w);
  assert_int_equal(logstore_stream_open_read(dir, LOG_STDERR, NULL), -1);
}

static void test_first_kept_all_holes(void **state) {
  int w = logstore_stream_open_append(dir, LOG_STDERR, NULL);
  static char z[8192];
  memset(z, 'x', sizeof z);
  assert_int_equal(write(w, z, sizeof z), (ssize_t)sizeof z);
  uint64_t kept = 0;
  assert_int_equal(logstore_enforce_cap(w, sizeof z, 1, &kept, NULL), 0);
  assert_int_equal(kept, 4096);
  close(w);
}

/* The worker punches the files it is named (opening each for its punch
 * only), takes a file gone meanwhile as nothing to do, and counts what
 * fails. */
static void test_punch_queue(void **state) {
  int w = logstore_stream_open_append(dir, LOG_STDOUT, NULL);
  static char z[64 * 1024];
  memset(z, 'y', sizeof z);
  assert_int_equal(write(w, z, sizeof z), (ssize_t)sizeof z);
  close(w);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(dfd >= 0);
  punch_queue *q;
  assert_int_equal(punch_queue_new(&q, dfd, NULL), 0);
  close(dfd); /* the queue has its own */
  uint64_t to;
  assert_false(logstore_cap_plan(sizeof z, 1 << 20, 0, &to));
  assert_true(logstore_cap_plan(sizeof z, 10000, 0, &to));
  assert_int_equal(to, 53248);
  assert_false(logstore_cap_plan(sizeof z, 10000, to, &to));
  assert_true(punch_queue_add(q, "stdout", 0, 53248));
  assert_true(punch_queue_add(q, "gone", 0, 4096));
  for (int i = 0; i < 500 && punch_queue_pending(q); i++)
    usleep(2000);
  assert_int_equal(punch_queue_pending(q), 0);
  int r = logstore_stream_open_read(dir, LOG_STDOUT, NULL);
  assert_int_equal(logstore_first_kept(r, sizeof z), 53248);
  close(r);
  int err = 0;
  assert_int_equal(punch_queue_errors(q, &err), 0);
  /* a directory cannot be opened for writing: counted, with its errno */
  assert_true(punch_queue_add(q, ".", 0, 4096));
  for (int i = 0; i < 500 && punch_queue_pending(q); i++)
    usleep(2000);
  assert_int_equal(punch_queue_errors(q, &err), 1);
  assert_int_equal(err, EISDIR);
  assert_int_equal(punch_queue_errors(q, &err), 0);
  /* a name longer than the queue keeps is refused, not cut */
  char longname[PUNCH_NAME_MAX + 1];
  memset(longname, 'n', PUNCH_NAME_MAX);
  longname[PUNCH_NAME_MAX] = '\0';
  assert_false(punch_queue_add(q, longname, 0, 4096));
  punch_queue_free(q, 1000);
}

static void test_request_strings(void **state) {
  char *s = NULL;
  rr_err e = {0};
  assert_int_equal(request_string_dup("a\0b", 3, "command.args[2]", &s, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_string_equal(e.msg, "command.args[2] contains a NUL byte");
  assert_int_equal(request_string_dup("\xff", 1, "command.path", &s, &e), -1);
  assert_non_null(strstr(e.msg, "UTF-8"));
  assert_int_equal(request_string_dup("\xe2\x98", 2, "x", &s, &e), -1);
  assert_int_equal(request_string_dup("\xed\xa0\x80", 3, "x", &s, &e), -1); /* surrogate */
  assert_int_equal(request_string_dup("\xc0\xaf", 2, "x", &s, &e), -1);     /* overlong */
  assert_int_equal(request_string_dup("h\xc3\xa9 \xe2\x98\xba \xf0\x9f\x98\x88", 12, "x", &s, &e),
                   0);
  assert_string_equal(s, "h\xc3\xa9 \xe2\x98\xba \xf0\x9f\x98\x88");
  free(s);
}

static void test_request_validate(void **state) {
  char *args[] = {"a"};
  char *ek[] = {"A=B"}, *ev[] = {"1"};
  char *tags[] = {"ok", "bad tag"};
  job_request r = {.path = "true"};
  rr_err e = {0};
  assert_int_equal(job_request_validate(&r, &e), 0);
  r.path = "";
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_string_equal(e.msg, "command.path is empty");
  r.path = "true";
  r.args = args;
  r.nargs = 5000;
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "command.args has 5000"));
  r.nargs = 1;
  r.env_keys = ek, r.env_values = ev, r.nenv = 1;
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "contains '='"));
  ek[0] = "";
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "empty name"));
  r.nenv = 0;
  r.workdir = "tmp";
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "not absolute"));
  r.workdir = "/no/such/dir";
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "command.workdir \"/no/such/dir\""));
  r.workdir = "/etc/passwd";
  assert_int_equal(job_request_validate(&r, &e), -1);
  r.workdir = "/tmp";
  r.tags = tags, r.ntags = 2;
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "tags[1] \"bad tag\""));
  r.ntags = 1;
  r.has_timeout = true;
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "timeout_ms 0"));
  r.timeout_ms = 1000;
  assert_int_equal(job_request_validate(&r, &e), 0);
  /* 9 args of 120 KiB: each fine, the total is not */
  char *big = malloc(120 * 1024);
  memset(big, 'x', 120 * 1024 - 1);
  big[120 * 1024 - 1] = '\0';
  char *bigv[9];
  for (int i = 0; i < 9; i++)
    bigv[i] = big;
  r.args = bigv, r.nargs = 9;
  assert_int_equal(job_request_validate(&r, &e), -1);
  assert_non_null(strstr(e.msg, "total"));
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_json_atomic_roundtrip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_overwrite_in_place, setup, teardown),
      cmocka_unit_test_setup_teardown(test_append_read_and_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_first_kept_all_holes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_punch_queue, setup, teardown),
      cmocka_unit_test(test_request_strings),
      cmocka_unit_test(test_request_validate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
