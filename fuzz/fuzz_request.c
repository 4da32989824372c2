/* Each runrpc.v1.Jobs request message through rund's decoding (protobuf-c,
 * rund_wire.proto) and checks (convert.c, request.c, signame.c): the first
 * byte picks the method, the rest is the message. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_jobs_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const char *path;
  const ProtobufCMessageDescriptor *d = fuzz_jobs_method(data[0] % 8u, &path);
  ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
  if (!msg)
    return 0;
  rr_err e = {0};
  if (fuzz_jobs_check(data[0] % 8u, msg, &e) < 0 && (e.code == 0 || !e.msg[0]))
    abort(); /* every refusal must say why */
  /* (no re-encoding check: rund never packs a request again, and
   * protobuf-c 1.4 writes some unknown fields back in a form it refuses) */
  protobuf_c_message_free_unpacked(msg, NULL);
  return 0;
}
