# Two commands do everything on a fresh machine:  make run   and   make test
PYTHON     ?= python3
comma      := ,
empty      :=
space      := $(empty) $(empty)
VENV       ?= .venv
PY         := $(VENV)/bin/python
# torch/torchvision pins: these resolve from the local disk here; on a CUDA cluster pick your own build,
# e.g.  make setup TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP      := $(VENV)/.scyc-installed
ARGS       ?=
PYTEST_ARGS ?=
# make reproduce-table: the main table, into outputs/tables/$(TABLE)/ only (publishing into docs/results/ is a step of
# its own: make publish TABLE=...). Two sweeps: the rows of the primary endpoint (S-Cyc, the four benchmarks and the
# ablation cyclic_flat_top, cyclical LR flat at S-Cyc's tuned top) over SEEDS (0-5), into $(TABLE)/main; then the
# oracle (and, with BEYOND=1, the two schedules of docs/beyond.md) over SEEDS3 (0-2), into $(TABLE)/three_seeds.
# The schedules are the tuned ones (conf/schedule/tuned/$(TUNED)/, written by make tune SETTING=$(TUNED)) when they
# exist, else the shipped options. Default: Fashion-MNIST, LeNet-300-100, 32 rounds (to 99.9 % sparsity).
# Primary endpoint (stated before the run): per seed, the mean test accuracy at the best-validation epoch over the
# levels >= ENDPOINT (98.5 %); S-Cyc minus each named row, paired over seeds, Holm-adjusted (docs/claims.md).
EXPERIMENT ?=
TUNED      ?= $(if $(EXPERIMENT),$(EXPERIMENT),fmnist_lenet300)
T          := $(if $(wildcard conf/schedule/tuned/$(TUNED)/scyc.yaml),tuned/$(TUNED)/,)
SCYC_OPT   := $(if $(T),scyc,$(if $(EXPERIMENT),scyc_$(patsubst paper_%,%,$(EXPERIMENT)),scyc))
# S-Cyc and the four benchmarks: the table's rows, and every sweep of make reproduce-pruners / reproduce-resets.
BENCH      := $(T)$(SCYC_OPT),$(T)lr_rewind,$(T)warmup,$(T)cyclic,$(T)sgdr
ABLATION   := $(if $(wildcard conf/schedule/tuned/$(TUNED)/cyclic_flat_top.yaml),$(comma)$(T)cyclic_flat_top,)
SCHEDULES  ?= $(BENCH)$(ABLATION)
SCHEDULES3 ?= $(T)oracle$(if $(BEYOND),$(comma)$(T)gradscale$(comma)$(T)scurve_fit)
SEEDS      ?= 0,1,2,3,4,5
# SEEDS3: 0-2, or SEEDS when they were given (a small sweep stays small)
SEEDS3     ?= $(if $(filter-out 0$(comma)1$(comma)2$(comma)3$(comma)4$(comma)5,$(SEEDS)),$(SEEDS),0$(comma)1$(comma)2)
ENDPOINT   ?= 0.985
ROUNDS     ?= $(if $(EXPERIMENT),,32)
TABLE      ?= $(if $(EXPERIMENT),$(EXPERIMENT),fashion_mnist_default)
# parallel: 2 local workers, 1 torch thread each; presets (GPU): basic, one run at a time
LAUNCHER   ?= $(if $(EXPERIMENT),basic,parallel)
TABLE_ARGS ?=
# make tune: every schedule's LR knobs from one equal-size grid (conf/tuning/$(SETTING).yaml; scripts/tune.py)
SETTING    ?= fmnist_lenet300
TUNE_ARGS  ?=
TABLE_DIR  := outputs/tables/$(TABLE)
RESULTS    := docs/results/$(TABLE)

.PHONY: setup data run test test-all lint format clean help publish claims reproduce-table reproduce-table-conv reproduce-table-resnet20 reproduce-pruners reproduce-resets table device-check tune docs

help:
	@echo "make run          set up, fetch Fashion-MNIST, run the default S-Cyc experiment (ARGS='key=value ...')"
	@echo "make test         set up, fetch data, run the fast test suite (what CI runs)"
	@echo "make test-all     the whole suite, slow tests included"
	@echo "make lint         ruff"
	@echo "make docs         redraw docs/figures/schedules.png and its data from conf/"
	@echo "make reproduce-table   the paper's table, tuned, $(ROUNDS) rounds: $(SCHEDULES) x seeds $(SEEDS), $(SCHEDULES3) x seeds $(SEEDS3)"
	@echo "                  into outputs/tables/$(TABLE)/ (RESUME=1 continues a killed sweep); make publish TABLE=... copies it to docs/results/"
	@echo "make reproduce-table-conv   the same for LeNet-5 (conv net) on Fashion-MNIST, $(CONV_ROUNDS) rounds"
	@echo "make reproduce-table-resnet20   ResNet-20 (BatchNorm) on Fashion-MNIST: S-Cyc, cyclical LR, its flat-top ablation, LR rewinding x seeds 0-2"
	@echo "make reproduce-pruners / reproduce-resets   S-Cyc vs the 4 benchmarks under PRUNERS=$(PRUNERS) / RESETS=$(RESETS)"
	@echo "                  (EXPERIMENT=paper_resnet20_cifar10 for a preset; SCHEDULES=, SEEDS=, LAUNCHER=, ARGS=)"
	@echo "make table SWEEP=dir   (re)write table.md/.csv/.tex and the figure of any sweep dir"
	@echo "make device-check [DIR=outputs/device_check] [SMOKE=1]   every GPU measurement in <= 8 min (SMOKE=1: toy, CPU)"
	@echo "make tune SETTING=$(SETTING)   tune every schedule's LR on one grid size -> conf/schedule/tuned/, docs/tuning/"
	@echo "                  (settings: conf/tuning/*.yaml; re-running skips finished runs; TUNE_ARGS='--schedules scyc')"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing $(TORCH_SPEC) and scyc[test] into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install -q $(TORCH_SPEC) > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install -q -e '.[test]' >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	@$(PY) scripts/fetch_data.py fashion_mnist --data-dir data

run: setup data
	$(PY) train.py $(ARGS)

# The suite runs in parallel (pytest-xdist): one worker per core, one torch thread each (OMP_NUM_THREADS=1, which
# the runs the tests start inherit), a test file per worker. TEST_JOBS=0: one process, torch's own threads.
TEST_JOBS ?= auto
PYTEST := $(if $(filter 0,$(TEST_JOBS)),,OMP_NUM_THREADS=1 )$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile

test: setup data
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

test-all: setup data
	$(PYTEST) $(PYTEST_ARGS)

# The sweeps run under hydra/launcher=$(LAUNCHER) (conf/hydra/launcher/: parallel = 2 local workers, 1 torch thread
# each; basic = Hydra's sequential default; slurm = a SLURM job array). A failed run is recorded and the sweep goes
# on. make_table then writes table.md/.csv/.tex, runs.csv (every run's rows), the figures and the primary endpoint
# into $(TABLE_DIR) (and end/ for the end-of-round selection). An existing $(TABLE_DIR) is moved aside, never mixed
# with new runs, unless RESUME=1: then the killed sweep goes on in place (resume=true; finished runs are skipped).
SWEEP_CMD   = $(PY) train.py -m $(if $(EXPERIMENT),+experiment=$(EXPERIMENT)) $(if $(ROUNDS),pruner.rounds=$(ROUNDS)) \
	deterministic=true hydra/launcher=$(LAUNCHER) progress=false $(if $(RESUME),resume=true)
TABLE_CMD   = $(PY) scripts/make_table.py $(TABLE_DIR) --log-remaining --endpoint $(ENDPOINT) $(TABLE_ARGS)
reproduce-table: setup data
	@if [ -e $(TABLE_DIR) ] && [ -z "$(RESUME)" ]; then old=$(TABLE_DIR).old-$$(date +%Y%m%d-%H%M%S); echo "moving the previous $(TABLE_DIR) to $$old"; mv $(TABLE_DIR) $$old; fi
	@echo "sweeps: schedule=$(SCHEDULES) seed=$(SEEDS)$(if $(SCHEDULES3), and schedule=$(SCHEDULES3) seed=$(SEEDS3)) $(if $(EXPERIMENT),+experiment=$(EXPERIMENT)) $(if $(ROUNDS),pruner.rounds=$(ROUNDS)) $(ARGS) -> $(TABLE_DIR)"
	@start=$$(date +%s); \
	$(SWEEP_CMD) schedule=$(SCHEDULES) seed=$(SEEDS) hydra.sweep.dir=$(TABLE_DIR)/main $(ARGS); status=$$?; \
	if [ -n "$(SCHEDULES3)" ] && [ $$status -le 1 ]; then \
		$(SWEEP_CMD) schedule=$(SCHEDULES3) seed=$(SEEDS3) hydra.sweep.dir=$(TABLE_DIR)/three_seeds $(ARGS) || status=$$?; fi; \
	echo "sweeps finished in $$(( $$(date +%s) - start )) s (exit $$status)"; \
	$(TABLE_CMD) --select best_val && $(TABLE_CMD) --select end --out $(TABLE_DIR)/end \
		&& echo "tables: $(TABLE_DIR)/table.md (best_val) and end/table.md; publish them: make publish TABLE=$(TABLE)"; \
	exit $$status

# Publishing a table into docs/results/ is deliberate: make publish TABLE=<name> copies outputs/tables/<name>'s tables,
# figures and long CSV; it refuses a table whose rows, seeds or rounds differ from the committed one (FORCE=1 allows).
publish: setup
	$(PY) scripts/publish_table.py $(TABLE_DIR) $(RESULTS) $(if $(FORCE),--force)

# The conv-net table: LeNet-5 on Fashion-MNIST, 2 epochs per round (the tuning's setting, conf/tuning/fmnist_conv.yaml),
# tuned by make tune SETTING=fmnist_conv, as deep as accuracy falls.
CONV_ROUNDS ?= 24
reproduce-table-conv:
	$(MAKE) reproduce-table TUNED=fmnist_conv TABLE=fashion_mnist_lenet5 ROUNDS=$(CONV_ROUNDS) ARGS="model=lenet5 train.epochs=2 $(ARGS)"

# The paper's own architecture: ResNet-20 (BatchNorm, residual, option-B shortcuts) on Fashion-MNIST, sized to the
# 2-core CPU (conf/experiment/fmnist_resnet20.yaml), tuned by make tune SETTING=fmnist_resnet20 (the main table's
# rule); rows S-Cyc, cyclical LR, cyclical LR flat at S-Cyc's top and LR rewinding x seeds 0-2; primary endpoint
# over the levels >= 98 %; the gradient measurement on 5 batches (docs/claims.md, (i) and (iii)).
# The ablation row only when it differs from the tuned cyclical LR (the tuning may put S-Cyc's top at cyclical LR's
# max_lr: then cyclic_flat_top is the same configuration and is not run twice; docs/claims.md says so).
R20_TUNED     := conf/schedule/tuned/fmnist_resnet20
R20_ABLATION  := $(if $(filter 2,$(shell grep -h '^max_lr:' $(R20_TUNED)/cyclic.yaml $(R20_TUNED)/cyclic_flat_top.yaml 2>/dev/null | sort -u | wc -l)),cyclic_flat_top)
R20_SCHEDULES := $(subst $(space),$(comma),$(foreach s,scyc cyclic $(R20_ABLATION) lr_rewind,tuned/fmnist_resnet20/$(s)))
reproduce-table-resnet20:
	$(MAKE) reproduce-table EXPERIMENT=fmnist_resnet20 TABLE=fashion_mnist_resnet20 LAUNCHER=parallel \
		SCHEDULES=$(R20_SCHEDULES) SCHEDULES3= SEEDS=0,1,2 ENDPOINT=0.98 ARGS="analysis.grad_batches=5 $(ARGS)"

# Claim (ii) and the resets: S-Cyc and the four benchmarks (tuned under global magnitude pruning, fine-tuning)
# of the default setting, one sweep per pruner / reset, each with its tables in docs/results/ (15 runs, 25-26 min each on a quiet 2-core CPU).
PRUNERS     ?= lamp,layerwise_magnitude,random,snip
RESETS      ?= reinit,rewind_init
# $(call sweep_each,<table prefix>,<comma list>,<override key>): one reproduce-table per value, stopping at a failure.
sweep_each = +@for v in $(subst $(comma), ,$(2)); do \
	$(MAKE) --no-print-directory reproduce-table TABLE=fashion_mnist_$(1)_$$v SCHEDULES=$(BENCH) SCHEDULES3= SEEDS=0,1,2 \
		ARGS="$(3)=$$v analysis.grad_every_round=false $(ARGS)" || exit 1; done
reproduce-pruners:
	$(call sweep_each,pruner,$(PRUNERS),pruner)
reproduce-resets:
	$(call sweep_each,reset,$(RESETS),pruner.reset)

# scripts/device_check.sh: CUDA tests, benchmarks, torchrun, packed sweep, paper preset -> $(DIR)/device_check.json
DIR ?= outputs/device_check
device-check:
	bash scripts/device_check.sh $(if $(SMOKE),--cpu-smoke) $(DIR)

table: setup
	@test -n "$(SWEEP)" || { echo "usage: make table SWEEP=outputs/tables/<name>"; exit 2; }
	$(PY) scripts/make_table.py $(SWEEP) $(TABLE_ARGS)

# Resumable: finished tuning runs (outputs/tuning/$(SETTING)/) are skipped, unfinished ones resumed.
tune: setup data
	$(PY) scripts/tune.py $(SETTING) $(TUNE_ARGS)

# The README's schedule figure and its data (docs/figures/schedules.csv, which tests/test_trust_readme.py checks against
# conf/): the tuned schedules of the main table over its 32 rounds, on one shared LR axis
docs: setup data
	$(PY) scripts/plot_schedules.py schedule=$(SCHEDULES),$(SCHEDULES3) pruner.rounds=32 \
		--out docs/figures/schedules.png --dpi 80

# Every number of docs/claims.md and the README's headline, from the committed CSVs (scripts/claims.py): prints them
# and checks the pages' generated blocks (exit 1 when one differs); CLAIMS_ARGS=--write rewrites the blocks.
CLAIMS_ARGS ?=
claims: setup
	$(PY) scripts/claims.py $(CLAIMS_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
