# Long runs that do not belong in every test run. The README's test command
# (scripts/test) runs short versions of both.

PYTHON ?= .venv/bin/python
# Seconds each fuzz harness runs for.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= envelope_header segment_reader handover_list basis config rpc_handlers
# Soak: duration in seconds and concurrent clients.
SOAK_SECONDS ?= 600
SOAK_CLIENTS ?= 32

.PHONY: fuzz soak test

test:
	scripts/test -q -p no:cacheprovider

# Corpora grow in fuzz-corpus/TARGET across runs; a failing input is saved
# as fuzz-artifacts/TARGET-crash-*. Copy it to tests/fuzz/regressions/TARGET/.
fuzz:
	scripts/bootstrap
	mkdir -p fuzz-artifacts
	for target in $(FUZZ_TARGETS); do \
		$(PYTHON) tests/fuzz/fuzz_$$target.py -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=fuzz-artifacts/$$target- -print_final_stats=1 fuzz-corpus/$$target || exit 1; \
	done

soak:
	scripts/bootstrap
	$(PYTHON) bench/soak.py --seconds $(SOAK_SECONDS) --clients $(SOAK_CLIENTS)
