/* rund image import|ls|inspect|rm|gc [--state-dir DIR]: the image store
 * on this host, without a running rund (an admin's tool; rund also runs
 * `rund image import` as a child for the Images service, so that the slow
 * unpacking never holds its event loop). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "images/images.h"
#include "rund/opts.h"

#define HELP "rund image --help"

static void image_usage(FILE *f) {
  fprintf(f, "Usage: rund image import PATH [--name NAME[:TAG]] [--format F] [--json]\n"
             "       rund image ls [--json]\n"
             "       rund image inspect REF\n"
             "       rund image rm REF\n"
             "       rund image gc\n"
             "Every verb takes --state-dir DIR (default " RUND_DEFAULT_STATE ").\n"
             "\n"
             "import reads an OCI image layout directory, an oci-archive or docker-archive\n"
             "tar, or a root filesystem tar (needs --name); F: auto (default), oci,\n"
             "oci-archive, docker-archive, rootfs. It prints the id of each image.\n"
             "REF is NAME[:TAG] (TAG defaults to latest), sha256:HEX or NAME@sha256:HEX.\n"
             "rm of a name untags it (the image goes with its last name); layers no image\n"
             "uses are removed (gc does only that).\n");
}

typedef struct image_args {
  const char *state, *name, *format;
  bool json;
} image_args;

static int image_flags(int argc, char **argv, image_args *a) {
  const struct option longs[] = {{"state-dir", required_argument, NULL, 's'},
                                 {"name", required_argument, NULL, 'n'},
                                 {"format", required_argument, NULL, 'f'},
                                 {"json", no_argument, NULL, 'j'},
                                 {"help", no_argument, NULL, 'h'},
                                 {NULL, 0, NULL, 0}};
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    switch (c) {
    case 's':
      a->state = optarg;
      break;
    case 'n':
      a->name = optarg;
      break;
    case 'f':
      a->format = optarg;
      break;
    case 'j':
      a->json = true;
      break;
    case 'h':
      image_usage(stdout);
      return -1;
    case ':':
      return rund_bad_flag(HELP, "%s needs a value", argv[optind - 1]);
    default:
      return rund_bad_flag(HELP, "unknown flag \"%s\"", argv[optind - 1]);
    }
  }
  return 0;
}

static int image_fail(const rr_err *e) {
  fprintf(stderr, "rund: image: %s: %s\n", rr_code_name(e->code), e->msg);
  return 1;
}

static int image_import(img_store *s, const image_args *a, const char *path) {
  img_import_opts o = {.name = a->name};
  if (a->format && img_format_parse(a->format, &o.format) < 0)
    return rund_bad_flag(HELP, "unknown --format \"%s\"", a->format);
  img_import_result res;
  rr_err e = {0};
  if (img_import(s, path, &o, &res, &e) < 0)
    return image_fail(&e);
  if (a->json) {
    printf("{\"ids\":[");
    for (size_t i = 0; i < res.nids; i++)
      printf("%s\"%s\"", i ? "," : "", res.ids[i]);
    printf("],\"layers_unpacked\":%llu,\"devices_skipped\":%u}\n",
           (unsigned long long)res.layers_unpacked, res.devices_skipped);
  } else {
    for (size_t i = 0; i < res.nids; i++)
      printf("%s\n", res.ids[i]);
    if (res.devices_skipped)
      fprintf(stderr, "rund: image: %u device nodes not made (rund is not root)\n",
              res.devices_skipped);
  }
  img_import_result_free(&res);
  return 0;
}

static void image_print_row(const img_record *r) {
  json_object *o = json_tokener_parse(r->json);
  json_object *names = o ? json_object_object_get(o, "names") : NULL;
  size_t n = names ? json_object_array_length(names) : 0;
  printf("%-19.19s ", r->id + 7);
  for (size_t i = 0; i < n; i++)
    printf("%s%s", i ? "," : "", json_object_get_string(json_object_array_get_idx(names, i)));
  printf("%s\n", n ? "" : "<none>");
  json_object_put(o);
}

static int image_ls(img_store *s, const image_args *a) {
  img_record *recs;
  size_t n;
  rr_err e = {0};
  if (img_store_list(s, &recs, &n, &e) < 0)
    return image_fail(&e);
  if (a->json) {
    printf("[");
    for (size_t i = 0; i < n; i++)
      printf("%s%s", i ? "," : "", recs[i].json);
    printf("]\n");
  } else
    for (size_t i = 0; i < n; i++)
      image_print_row(&recs[i]);
  img_records_free(recs, n);
  return 0;
}

static int image_verb(img_store *s, const image_args *a, int argc, char **argv) {
  const char *verb = argv[0];
  rr_err e = {0};
  if (!strcmp(verb, "ls") && argc == 1)
    return image_ls(s, a);
  if (!strcmp(verb, "gc") && argc == 1) {
    unsigned removed;
    bool busy;
    if (img_store_gc(s, &removed, &busy, &e) < 0)
      return image_fail(&e);
    printf(busy ? "an import is running: nothing collected\n" : "%u layers removed\n", removed);
    return 0;
  }
  if (argc != 2)
    return rund_bad_flag(HELP, "\"%s\": wrong number of arguments", verb);
  if (!strcmp(verb, "import"))
    return image_import(s, a, argv[1]);
  if (!strcmp(verb, "root-copy")) { /* rund's own: the reason on stdout, for rund */
    if (img_root_copy_named(s, argv[1], &e) < 0) {
      printf("%s: %s\n", rr_code_name(e.code), e.msg);
      return 1;
    }
    return 0;
  }
  if (!strcmp(verb, "inspect")) {
    img_record r;
    if (img_store_find(s, argv[1], &r, &e) < 0)
      return image_fail(&e);
    printf("%s\n", r.json);
    free(r.json);
    return 0;
  }
  if (!strcmp(verb, "rm")) {
    char id[IMG_DIGEST_LEN + 1];
    bool removed, busy;
    unsigned n;
    if (img_store_remove(s, argv[1], id, &removed, &e) < 0)
      return image_fail(&e);
    printf("%s %s\n", removed ? "removed" : "untagged", id);
    if (img_store_gc(s, &n, &busy, &e) < 0)
      return image_fail(&e);
    return 0;
  }
  return rund_bad_flag(HELP, "unknown verb \"%s\"", verb);
}

int rund_cmd_image(int argc, char **argv) {
  image_args a = {.state = RUND_DEFAULT_STATE};
  int rc = image_flags(argc, argv, &a);
  if (rc)
    return rc < 0 ? 0 : rc;
  if (optind >= argc) {
    fprintf(stderr, "rund: image: missing verb (import, ls, inspect, rm, gc) (see %s)\n", HELP);
    return 2;
  }
  img_store *s;
  rr_err e = {0};
  if (img_store_open(a.state, &s, &e) < 0)
    return image_fail(&e);
  rc = image_verb(s, &a, argc - optind, argv + optind);
  img_store_free(s);
  return rc;
}
