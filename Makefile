# Thin driver over CMake/ctest. `make` builds, `make test` runs the CPU tests, `make demo` runs the main job on
# the embedded default input, `make bench` runs the benchmarks, `make fuzz` runs the fuzzers for a while.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build deps test test-gpu demo bench fuzz sanitize clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest -LE gpu --output-on-failure -j $(JOBS)

test-gpu: build
	cd $(BUILD) && ctest -L gpu --output-on-failure

demo: deps build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash scripts/bench.sh $(BUILD)

# host code under AddressSanitizer + UBSan, CPU only
sanitize: deps
	cmake -S . -B build-asan -DFPK_CUDA=OFF -DFPK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest -LE gpu --output-on-failure -j $(JOBS)

FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DFPK_CUDA=OFF -DFPK_FUZZ=ON -DFPK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-fuzz -j $(JOBS)
	@for f in build-fuzz/fuzz/fuzz_*; do \
		c=tests/fuzz/corpus/$$(basename $$f | sed s/fuzz_//); mkdir -p build-fuzz/corpus-$$(basename $$f); \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/ build-fuzz/corpus-$$(basename $$f) $$c || exit 1; \
	done

clean:
	rm -rf $(BUILD) build-asan build-fuzz
