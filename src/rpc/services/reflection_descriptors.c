/* The FileDescriptorSet protoc builds from every .proto rund serves (see
 * meson.build), embedded so reflection needs no files at run time. */
#include "reflection.h"

const uint8_t reflection_descriptor_set[] = {
#include "reflection_descriptor_set.inc"
};
const size_t reflection_descriptor_set_len = sizeof reflection_descriptor_set;
