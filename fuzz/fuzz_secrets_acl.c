/* The secrets ACL parser (secrets_acl_parse): a file that loads formats to
 * text that loads to the same grants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/secrets_acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  secrets_acl a = {0}, b = {0};
  rr_err e = {0};
  if (secrets_acl_parse((const char *)data, size, "secrets.acl", &a, &e) < 0) {
    if (!e.code || !e.msg[0])
      abort();
    return 0;
  }
  char *text = NULL;
  size_t len = 0;
  if (secrets_acl_format(&a, &text, &len, &e) < 0)
    abort();
  if (secrets_acl_parse(text, len, "formatted", &b, &e) < 0 || b.n != a.n)
    abort();
  for (size_t i = 0; i < a.n; i++) {
    char *p = a.v[i].principal;
    if (!secrets_acl_allows(&b, a.v[i].name, &p, 1))
      abort();
  }
  if (a.n && !secrets_acl_remove(&b, a.v[0].name, a.v[0].principal))
    abort();
  free(text);
  secrets_acl_free(&a);
  secrets_acl_free(&b);
  return 0;
}
