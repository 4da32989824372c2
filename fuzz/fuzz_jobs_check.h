/* The checks rund applies to each runrpc.v1.Jobs request before touching a
 * job (convert.c, request.c, signame.c, ulid.c), for the fuzz targets: no
 * job table, nothing is run. */
#pragma once
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"

/* The request descriptor (rund_wire.proto) of method index i (0..n-1),
 * its path in *path; NULL past the end. */
const ProtobufCMessageDescriptor *fuzz_jobs_method(unsigned i, const char **path);
/* Check msg (a decoded request of method index i) as rund does; a Start or
 * ExecStart that passes is also written to job.json form and read back,
 * which must succeed (abort otherwise: the fuzzer reports it). */
int fuzz_jobs_check(unsigned i, const ProtobufCMessage *msg, rr_err *e);
