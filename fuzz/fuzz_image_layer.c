/* An image layer tar as the store unpacks it (img_layer_extract, any
 * compression): hostile names, links and whiteouts must be refused with a
 * reason or land inside the layer's directory, never crash. */
#include <archive.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "images/images_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char base[] = "/tmp/fuzz_image_layer.XXXXXX";
  static int basefd = -1;
  if (basefd < 0) {
    if (!mkdtemp(base))
      abort();
    basefd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  if (mkdirat(basefd, "root", 0700) < 0)
    abort();
  int rootfd = openat(basefd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct archive *a = archive_read_new();
  if (rootfd < 0 || !a)
    abort();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  img_layer_stats st = {0};
  rr_err e = {0};
  if (archive_read_open_memory(a, data, size) == ARCHIVE_OK &&
      img_layer_extract(a, rootfd, false, "layer", &st, &e) < 0 && (!e.code || !e.msg[0]))
    abort(); /* refused without saying why */
  archive_read_free(a);
  close(rootfd);
  if (img_rmtree_at(basefd, "root") < 0)
    abort();
  return 0;
}
