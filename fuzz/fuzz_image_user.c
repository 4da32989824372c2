/* An image config's User resolved against the image's own etc/passwd and
 * etc/group (img_user_resolve): both files come from the image, so from
 * anyone who can import one. Resolved with the groups podman gives (its gid
 * first, no repeats, at most IMG_USER_MAX_GROUPS) or refused with a code
 * and a reason; never a crash or a leak.
 *
 * Input: the User spec, "\n==\n", the passwd file, "\n==\n", the group file
 * (a file missing from the input is missing from the image). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/images.h"

#define SEP "\n==\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_at(int dirfd, const char *name, const uint8_t *p, size_t n) {
  unlinkat(dirfd, name, 0);
  if (!p)
    return;
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
    abort();
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char base[] = "/tmp/fuzz_image_user.XXXXXX";
  static int rootfd = -1, etcfd = -1;
  if (rootfd < 0) {
    if (!mkdtemp(base))
      abort();
    rootfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0 || mkdirat(rootfd, "etc", 0755) < 0)
      abort();
    etcfd = openat(rootfd, "etc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (etcfd < 0)
      abort();
  }
  if (size > (1u << 20))
    return 0;
  const uint8_t *part[3] = {data, NULL, NULL}, *end = data + size;
  size_t len[3] = {size, 0, 0};
  for (size_t i = 0; i < 2; i++) {
    const uint8_t *sep = memmem(part[i], len[i], SEP, strlen(SEP));
    if (!sep)
      break;
    len[i] = (size_t)(sep - part[i]);
    part[i + 1] = sep + strlen(SEP);
    len[i + 1] = (size_t)(end - part[i + 1]);
  }
  char *spec = strndup((const char *)part[0], len[0]); /* up to a NUL: a C string */
  if (!spec)
    abort();
  write_at(etcfd, "passwd", part[1], len[1]);
  write_at(etcfd, "group", part[2], len[2]);
  img_user u;
  rr_err e = {0};
  if (img_user_resolve(rootfd, spec, &u, &e) < 0) {
    if (!e.code || !e.msg[0])
      abort(); /* refused without saying why */
  } else {
    if (!u.ngroups || u.ngroups > IMG_USER_MAX_GROUPS || u.groups[0] != u.gid ||
        !memchr(u.name, 0, sizeof u.name) || !memchr(u.home, 0, sizeof u.home) ||
        !memchr(u.shell, 0, sizeof u.shell))
      abort();
    for (size_t i = 0; i < u.ngroups; i++)
      for (size_t j = i + 1; j < u.ngroups; j++)
        if (u.groups[i] == u.groups[j])
          abort(); /* a repeat */
  }
  free(spec);
  return 0;
}
