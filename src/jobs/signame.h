/* Signal names and numbers: "TERM", "SIGTERM", "term", "RTMIN+2", "9". */
#pragma once
#include "common/err.h"

#define SIGNAME_MAX_NUMBER 64

/* Parse a name (any case, optional SIG prefix) or a decimal number;
 * INVALID_ARGUMENT naming field when unknown. */
int signame_parse(const char *name, const char *field, int *ret, rr_err *e);
/* Check a signal number is 1..64; INVALID_ARGUMENT naming field if not. */
int signame_check_number(int sig, const char *field, rr_err *e);
/* "TERM", "RTMIN+3", or "?" . */
const char *signame_name(int sig, char *buf, unsigned long size);
