/* An OCI config.json as runproc and rund read it (sb_spec_parse, the text
 * step of sb_spec_load): a config from anyone must be refused with a
 * reason, never crash; what loads must write (sb_spec_to_json) to text
 * that loads again and writes the same; sb_spec_validate must not crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *spec_text(const sb_spec *s) {
  json_object *o = sb_spec_to_json(s);
  if (!o)
    abort();
  char *t = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  if (!t)
    abort();
  json_object_put(o);
  return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a copy of exactly size bytes: ASan sees any read past the end */
  char *text = malloc(size ? size : 1);
  if (!text)
    abort();
  memcpy(text, data, size);
  sb_spec *s = NULL;
  rr_err e = {0};
  if (sb_spec_parse(text, size, "/bundle", &s, &e) < 0) {
    if (!e.code || !e.msg[0] || s)
      abort(); /* refused without saying why, or half a result */
    free(text);
    return 0;
  }
  rr_err ve = {0};
  if (sb_spec_validate(s, &ve) < 0 && (!ve.code || !ve.msg[0]))
    abort();
  char *t1 = spec_text(s);
  sb_spec *again = NULL;
  rr_err e2 = {0};
  if (sb_spec_parse(t1, strlen(t1), "/bundle", &again, &e2) < 0) {
    fprintf(stderr, "a loaded config does not load again: %s\n%s\n", e2.msg, t1);
    abort();
  }
  char *t2 = spec_text(again);
  if (strcmp(t1, t2) != 0) {
    fprintf(stderr, "a loaded config writes differently the second time:\n%s\n%s\n", t1, t2);
    abort();
  }
  /* the written form validates as the parsed one did */
  rr_err ve2 = {0};
  if ((sb_spec_validate(again, &ve2) < 0) != (ve.code != 0)) {
    fprintf(stderr, "validation differs after writing: \"%s\" then \"%s\"\n", ve.msg, ve2.msg);
    abort();
  }
  free(t2);
  free(t1);
  sb_spec_free(again);
  sb_spec_free(s);
  free(text);
  return 0;
}
