#!/usr/bin/env bash
# multi_gpu.sh: the sft run of a finished recipes/llark_mir.sh study again, the same options on N
# processes under torchrun (DDP), then its Table 2 evaluation beside the single-process run's.
#
# Reproduces: llark_mir.sh's training and evaluation (its header: data, commands, LLark's figures), with
#     python -m torch.distributed.run --standalone --nproc-per-node N -m mllm.cli sft RUN_DIR/train.jsonl \
#         --config RUN_DIR/runs/sft/options.yaml --batch-size B/N -o OUT_DIR/runs/sft
# (`torchrun` is the same program; options.yaml holds every option the single-process run used).
# DistributedDataParallel averages the gradients and sft sums tokens and losses over the processes,
# so N processes of batch B/N take the steps of one process of batch B (tests/test_sft_ddp.py checks
# losses and weights): the scores should equal the single-process run's up to floating-point
# reduction order, which the paired comparison in scores.json shows. Rank 0 writes the metrics and
# the checkpoint; NCCL on GPUs (each rank its own GPU), gloo on CPUs.
#
# Usage:   recipes/multi_gpu.sh RUN_DIR OUT_DIR        RUN_DIR: the OUT_DIR of a finished llark_mir.sh run
#          MLLM_RECIPE_SMOKE=1 recipes/multi_gpu.sh OUT_DIR
#                            (CI: llark_mir.sh's smoke run into OUT_DIR/single first, then 2 CPU processes on gloo)
#
# RUN_DIR (what llark_mir.sh leaves): train.jsonl, eval.enc.jsonl, answers.jsonl, runs/sft/options.yaml
#
# Environment (besides common.sh's): MLLM_NPROC (default 2: the GPUs to use; the run's batch size must be
# a multiple of it), MLLM_GENRE_MATCH (embedding, as llark_mir.sh's default: use the value that run used).
# Multi-node runs need torchrun's --nnodes/--rdzv-endpoint, which this recipe does not set.
#
# Commands (all in OUT_DIR/commands.sh after a run):
#   torchrun ... sft (above) -> runs/sft
#   caption RUN_DIR/eval.enc.jsonl --model runs/sft --split test -> answers.jsonl
#   eval-mir answers.jsonl --compare RUN_DIR/answers.jsonl --split test --table -o scores.json
#
# Output: OUT_DIR/scores.json: key, tempo, genre on the test split (as llark_mir.sh's), and under
# "comparison" each metric against the single-process run (difference, paired interval, p-value);
# OUT_DIR/runs/sft/trainer_state.json records world_size N.
#
# Figures to expect: llark_mir.sh's (LLark Table 2: key 0.70, tempo Acc2 0.86, GTZAN genre 0.56 for
# LLark itself), and differences from the single-process run near 0.
#
# Not parallelised here: caption runs as one process (encode and grpo also run under torchrun).

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RECIPE_SMOKE_DATA=0  # the smoke run's data is llark_mir.sh's
recipe_args "$@"

NPROC="${MLLM_NPROC:-2}"
MATCH="${MLLM_GENRE_MATCH:-embedding}"
GTZAN_GENRES=blues,classical,country,disco,hiphop,jazz,metal,pop,reggae,rock
MAX_NEW_TOKENS=48
if [[ "$SMOKE" == 1 ]]; then
    RUN="$OUT/single"
    step "$RECIPES/llark_mir.sh" "$RUN"   # smoke mode and MLLM_RECIPE_OVERWRITE pass on in the environment
    MAX_NEW_TOKENS=12
else
    RUN="$DATA"
fi
for file in train.jsonl eval.enc.jsonl answers.jsonl runs/sft/options.yaml; do
    [[ -e "$RUN/$file" ]] || recipe_fail "$RUN is not a finished llark_mir.sh run: no $file"
done
BATCH="$("$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["batch-size"])' "$RUN/runs/sft/options.yaml")"
(( BATCH % NPROC == 0 )) || recipe_fail "the run's batch size $BATCH is not a multiple of MLLM_NPROC $NPROC"
[[ ${#DEVICE[@]} -gt 0 ]] || DEVICE=(--device auto)  # options.yaml holds the device the first run resolved

mkdir -p "$OUT/runs"
step_to "$OUT/runs/sft.metrics.jsonl" "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" \
    -m mllm.cli sft "$RUN/train.jsonl" --config "$RUN/runs/sft/options.yaml" --batch-size $(( BATCH / NPROC )) \
    -o "$OUT/runs/sft" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
step "$MLLM" caption "$RUN/eval.enc.jsonl" --model "$OUT/runs/sft" --split test --max-new-tokens "$MAX_NEW_TOKENS" \
    -o "$OUT/answers.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
step "$MLLM" eval-mir "$OUT/answers.jsonl" --compare "$RUN/answers.jsonl" --split test --match "$MATCH" \
    --labels "genre=$GTZAN_GENRES" --table -o "$OUT/scores.json" "${THREADS[@]}" "${OVERWRITE[@]}"
echo "multi_gpu: scores of the test split, against the single-process run, in $OUT/scores.json" >&2
