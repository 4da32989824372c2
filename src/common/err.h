/* Project-wide error object: a gRPC-style code plus a message. */
#pragma once
#include <stdarg.h>

/* gRPC status codes; used everywhere as the error code. */
enum {
  RR_OK = 0,
  RR_CANCELLED = 1,
  RR_UNKNOWN = 2,
  RR_INVALID_ARGUMENT = 3,
  RR_DEADLINE_EXCEEDED = 4,
  RR_NOT_FOUND = 5,
  RR_ALREADY_EXISTS = 6,
  RR_PERMISSION_DENIED = 7,
  RR_RESOURCE_EXHAUSTED = 8,
  RR_FAILED_PRECONDITION = 9,
  RR_ABORTED = 10,
  RR_OUT_OF_RANGE = 11,
  RR_UNIMPLEMENTED = 12,
  RR_INTERNAL = 13,
  RR_UNAVAILABLE = 14,
  RR_DATA_LOSS = 15,
  RR_UNAUTHENTICATED = 16,
};

#define RR_ERR_MSG_MAX 512

typedef struct rr_err {
  int code;                 /* RR_* status; RR_OK when no error */
  int sys_errno;            /* errno behind it, 0 if none */
  char msg[RR_ERR_MSG_MAX]; /* "what failed, on what, why" */
} rr_err;

/* Fill e (may be NULL) and return -1, so failing is one line:
 * return rr_err_set(e, RR_NOT_FOUND, "job %s not found", id); */
int rr_err_set(rr_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errnum)" and recording errnum. */
int rr_err_sys(rr_err *e, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix context to an existing error: "ctx: old message". Returns -1. */
int rr_err_wrap(rr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reset to RR_OK. */
void rr_err_clear(rr_err *e);
/* Canonical upper-case name of a code ("NOT_FOUND"), "UNKNOWN" if out of range. */
const char *rr_code_name(int code);
