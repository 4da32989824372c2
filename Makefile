# Thin wrapper over scripts/ and meson; ./run.sh and ./test.sh do the same
# for machines that do not have make yet.
BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
PREFIX ?= /usr/local
FORMAT_DIRS := src tests/unit include bench

export BUILD_DIR ASAN_BUILD_DIR

.PHONY: all build deps test install run bench clean format format-check

all: build

deps:
	./scripts/deps.sh

build: deps
	./scripts/build.sh release $(BUILD_DIR)

test:
	./test.sh

# cgroup v2 enforcement tests in a qemu VM (Debian's kernel, busybox
# initramfs, rund inside): tests/vm/README.md
.PHONY: test-vm
test-vm: build
	./scripts/deps.sh vm
	/usr/bin/python3 tests/vm/run.py
	/usr/bin/python3 tests/vm/run_shim.py

# meson install into PREFIX: bin/rund, bin/runctl, lib/librunrpc.{so,a},
# include/runrpc/*.h, lib/pkgconfig/runrpc.pc, share/man/man{1,8}/ (scdoc),
# share/bash-completion and share/zsh completions. The build dir is configured
# for /usr/local; the prefix is changed in place when it differs.
install: build
	meson configure $(BUILD_DIR) -Dprefix=$(abspath $(PREFIX)) -Dlibdir=lib
	meson install -C $(BUILD_DIR) --quiet

# Debian packages (debian/: runrpc, librunrpc0, librunrpc-dev) built from
# this tree into build-deb/, lintian clean; needs `./scripts/deps.sh deb`
.PHONY: deb
deb:
	./scripts/deps.sh deb
	./scripts/deb.sh

run:
	./run.sh $(ARGS)

bench: build
	./bench/run.sh

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)

format-check:
	@files=$$(find $(FORMAT_DIRS) -name '*.[ch]' 2>/dev/null); \
	if [ -z "$$files" ]; then echo "format-check: no C files"; exit 0; fi; \
	clang-format --dry-run -Werror $$files && echo "format-check: $$(echo $$files | wc -w) files OK"

format:
	find $(FORMAT_DIRS) -name '*.[ch]' -exec clang-format -i {} +
