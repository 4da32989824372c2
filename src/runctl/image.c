/* runctl image import FILE|- [--name NAME[:TAG]] [--format F] [--json],
 * image ls [--json], image inspect REF, image rm REF: rund's image store
 * (docs/dev/IMAGES.md). import streams the file (or stdin) to rund. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runctl.h"

static json_object *image_json(const runrpc_image *img) {
  json_object *o = json_object_new_object(), *names = json_object_new_array(),
              *layers = json_object_new_array();
  json_object_object_add(o, "id", json_object_new_string(img->id));
  for (size_t i = 0; i < img->nnames; i++)
    json_object_array_add(names, json_object_new_string(img->names[i]));
  json_object_object_add(o, "names", names);
  json_object_object_add(o, "created", json_object_new_string(img->created));
  json_object_object_add(o, "format", json_object_new_string(img->format));
  for (size_t i = 0; i < img->nlayers; i++) {
    json_object *l = json_object_new_object();
    json_object_object_add(l, "digest", json_object_new_string(img->layers[i].digest));
    json_object_object_add(l, "size", json_object_new_int64((int64_t)img->layers[i].size));
    json_object_array_add(layers, l);
  }
  json_object_object_add(o, "layers", layers);
  json_object_object_add(o, "size", json_object_new_int64((int64_t)img->size));
  json_object *config = json_tokener_parse(img->config_json);
  json_object_object_add(o, "config", config ? config : json_object_new_object());
  return o;
}

static void image_print_json(json_object *o) {
  printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
}

static void image_print_row(const runrpc_image *img) {
  printf("%-19.19s  %10llu  %-20.20s  ", img->id + (strncmp(img->id, "sha256:", 7) ? 0 : 7),
         (unsigned long long)img->size, img->created);
  for (size_t i = 0; i < img->nnames; i++)
    printf("%s%s", i ? "," : "", img->names[i]);
  printf("%s\n", img->nnames ? "" : "<none>");
}

static void image_print_list(const runrpc_image *v, size_t n, bool json) {
  if (json) {
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++)
      json_object_array_add(arr, image_json(&v[i]));
    image_print_json(arr);
    return;
  }
  printf("%-19s  %10s  %-20s  %s\n", "ID", "SIZE", "CREATED", "NAMES");
  for (size_t i = 0; i < n; i++)
    image_print_row(&v[i]);
}

static int image_import(runctl_ctx *ctx, const char *file, const char *name, const char *format,
                        bool json) {
  int fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY) : 0;
  if (fd < 0) {
    runrpc_error err = {.code = RUNRPC_NOT_FOUND, .sys_errno = errno};
    snprintf(err.message, sizeof err.message, "cannot open \"%s\": %s", file, strerror(errno));
    return runctl_fail("image import", &err, RUNCTL_EXIT_FAILURE);
  }
  int rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc) {
    if (fd)
      close(fd);
    return rc;
  }
  runrpc_image_import_request req = {.fd = fd, .name = name, .format = format};
  runrpc_image *v;
  size_t n;
  runrpc_error err;
  int r = runrpc_image_import(ctx->client, &req, &v, &n, &err);
  if (fd)
    close(fd);
  if (r < 0)
    return runctl_fail("image import", &err, RUNCTL_EXIT_FAILURE);
  if (json)
    image_print_list(v, n, true);
  else
    for (size_t i = 0; i < n; i++)
      printf("%s\n", v[i].id);
  runrpc_image_list_free(v, n);
  return 0;
}

static int image_verb(runctl_ctx *ctx, const char *verb, const char *arg, const char *name,
                      const char *format, bool json) {
  if (!strcmp(verb, "import"))
    return image_import(ctx, arg, name, format, json);
  int rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  runrpc_error err;
  if (!strcmp(verb, "ls")) {
    runrpc_image *v;
    size_t n;
    if (runrpc_image_list(ctx->client, &v, &n, &err) < 0)
      return runctl_fail("image ls", &err, RUNCTL_EXIT_FAILURE);
    image_print_list(v, n, json);
    runrpc_image_list_free(v, n);
    return 0;
  }
  if (!strcmp(verb, "inspect")) {
    runrpc_image img;
    if (runrpc_image_inspect(ctx->client, arg, &img, &err) < 0)
      return runctl_fail("image inspect", &err, RUNCTL_EXIT_FAILURE);
    image_print_json(image_json(&img));
    runrpc_image_free(&img);
    return 0;
  }
  bool removed;
  if (runrpc_image_remove(ctx->client, arg, &removed, &err) < 0)
    return runctl_fail("image rm", &err, RUNCTL_EXIT_FAILURE);
  printf("%s %s\n", removed ? "removed" : "untagged", arg);
  return 0;
}

static int image_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"name", required_argument, NULL, 'n'},
      {"format", required_argument, NULL, 'f'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {0},
  };
  const char *name = NULL, *format = NULL;
  bool json = false;
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
    case 'n':
      name = optarg;
      break;
    case 'f':
      format = optarg;
      break;
    case 'j':
      json = true;
      break;
    case 'h':
      return runctl_print_help(&runctl_cmd_image), 0;
    default:
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  if (optind >= argc)
    return runctl_usage_error(ctx, "missing verb: import, ls, inspect or rm");
  const char *verb = argv[optind++];
  bool takes_arg = strcmp(verb, "ls") != 0;
  if (strcmp(verb, "import") && strcmp(verb, "ls") && strcmp(verb, "inspect") && strcmp(verb, "rm"))
    return runctl_usage_error(ctx, "unknown verb \"%s\" (want import, ls, inspect or rm)", verb);
  if ((name || format) && strcmp(verb, "import"))
    return runctl_usage_error(ctx, "--name and --format are flags of import");
  if (takes_arg && optind >= argc)
    return runctl_usage_error(ctx, "%s needs %s", verb,
                              strcmp(verb, "import") ? "an image (NAME[:TAG] or sha256:HEX)"
                                                     : "a file (or - for stdin)");
  if (optind + (takes_arg ? 1 : 0) < argc)
    return runctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind + takes_arg]);
  return image_verb(ctx, verb, takes_arg ? argv[optind] : NULL, name, format, json);
}

const runctl_command runctl_cmd_image = {
    "image",
    image_run,
    "image import FILE|- [--name NAME[:TAG]] [--format F] [--json] | ls [--json] | inspect REF | "
    "rm REF",
    "rund's image store (docs/dev/IMAGES.md).\n"
    "  import FILE     upload an oci-archive, a docker-archive or (with --name) a root\n"
    "                  filesystem tar (- reads stdin; an OCI layout directory: tar -C DIR\n"
    "                  -cf - . | runctl image import -); prints each image's id\n"
    "    --name NAME[:TAG]  name the image (else the archive's names)\n"
    "    --format F    auto (default), oci-archive, docker-archive, rootfs\n"
    "  ls              the images (--json: with their configs)\n"
    "  inspect REF     one image as JSON; REF: NAME[:TAG], sha256:HEX, NAME@sha256:HEX\n"
    "  rm REF          untag a name (the image goes with its last name) or remove by id\n"
    "import and rm need an admin of rund.\n",
};
