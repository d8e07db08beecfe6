# recipes/common.sh: what every recipe shares. Sourced by the recipes, never run on its own.
#
#   recipes/NAME.sh DATA_DIR OUT_DIR              a real study: DATA_DIR holds the datasets (layout in each header)
#   MLLM_RECIPE_SMOKE=1 recipes/NAME.sh OUT_DIR   the same commands on tests/data's fixtures, a tiny random model,
#                                                 few steps, one thread (what tests/test_recipes.py runs)
#
# Environment (every recipe):
#   MLLM_RECIPE_SMOKE=1      smoke mode (above)
#   MLLM_RECIPE_OVERWRITE=1  rerun into an OUT_DIR that is not empty: every command gets --overwrite (without
#                            it a non-empty OUT_DIR is refused, exit 2, before anything runs)
#   MLLM                     the mllm command (default: mllm on PATH)
#   PYTHON                   the Python that has mllm installed (default: python), for recipes/*.py and torchrun
#   MLLM_DEVICE              --device of encode, sft, grpo, caption, regress (default: mllm's auto; smoke: cpu)
#   MLLM_THREADS             threads per command (mllm's own variable; smoke passes --threads 1)
# Each recipe adds its own (MLLM_LLM, MLLM_ENCODER, MLLM_SFT_STEPS, ...), listed in its header.
#
# Every command a recipe runs is printed on stderr and appended to OUT_DIR/commands.sh as it ran,
# so any stage can be rerun by hand.

set -euo pipefail

RECIPES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MLLM="${MLLM:-mllm}"
PYTHON="${PYTHON:-python}"
SMOKE="${MLLM_RECIPE_SMOKE:-0}"

recipe_fail() {
    echo "$(basename "$0"): $*" >&2
    exit 2
}

# recipe_args "$@": sets DATA and OUT (absolute paths), OVERWRITE, THREADS, DEVICE; refuses a non-empty OUT
# without MLLM_RECIPE_OVERWRITE=1; in smoke mode builds the fixture data in OUT/smoke-data (unless the
# recipe set RECIPE_SMOKE_DATA=0).
recipe_args() {
    if [[ "$SMOKE" == 1 ]]; then
        [[ $# -eq 1 ]] || recipe_fail "usage (smoke mode): MLLM_RECIPE_SMOKE=1 $0 OUT_DIR"
        OUT="$1"
    else
        [[ $# -eq 2 ]] || recipe_fail "usage: $0 DATA_DIR OUT_DIR   (or MLLM_RECIPE_SMOKE=1 $0 OUT_DIR)"
        [[ -d "$1" ]] || recipe_fail "DATA_DIR $1 is not a folder"
        DATA="$(cd "$1" && pwd)"
        OUT="$2"
    fi
    OVERWRITE=()
    if [[ -d "$OUT" && -n "$(ls -A "$OUT")" ]]; then
        [[ "${MLLM_RECIPE_OVERWRITE:-0}" == 1 ]] \
            || recipe_fail "OUT_DIR $OUT is not empty: give another folder, or MLLM_RECIPE_OVERWRITE=1 to run again over it"
        OVERWRITE=(--overwrite)
    fi
    mkdir -p "$OUT"
    OUT="$(cd "$OUT" && pwd)"
    : > "$OUT/commands.sh"
    THREADS=()
    DEVICE=()
    [[ -n "${MLLM_DEVICE:-}" ]] && DEVICE=(--device "$MLLM_DEVICE")
    if [[ "$SMOKE" == 1 ]]; then
        THREADS=(--threads 1)
        DEVICE=(--device cpu)
        DATA="$OUT/smoke-data"
        [[ "${RECIPE_SMOKE_DATA:-1}" == 0 ]] || step "$PYTHON" "$RECIPES/smoke.py" data "$DATA"
    fi
}

# step CMD ARGS...: print the command, log it to OUT/commands.sh, run it.
step() {
    local line
    line="$(printf '%q ' "$@")"
    echo "+ ${line% }" >&2
    echo "${line% }" >> "$OUT/commands.sh"
    local start=$SECONDS
    "$@"
    echo "  ($(( SECONDS - start )) s)" >&2
}

# step_to FILE CMD ARGS...: the same, stdout into FILE (sft and grpo write their metrics there).
step_to() {
    local file="$1" line
    shift
    line="$(printf '%q ' "$@")"
    echo "+ ${line% } > $file" >&2
    echo "${line% } > $(printf '%q' "$file")" >> "$OUT/commands.sh"
    local start=$SECONDS
    "$@" > "$file"
    echo "  ($(( SECONDS - start )) s)" >&2
}

# step_io IN OUT CMD ARGS...: the same, stdin from IN and stdout into OUT (a record stage that is a script).
step_io() {
    local in="$1" out="$2" line
    shift 2
    line="$(printf '%q ' "$@")"
    echo "+ ${line% } < $in > $out" >&2
    echo "${line% } < $(printf '%q' "$in") > $(printf '%q' "$out")" >> "$OUT/commands.sh"
    local start=$SECONDS
    "$@" < "$in" > "$out"
    echo "  ($(( SECONDS - start )) s)" >&2
}

# keep_tasks IN OUT TASK,TASK...: the records of IN whose task is one of TASKS, into OUT (eval-caption
# scores every record it is given, so a file of mixed tasks is cut down to its free-text tasks first).
keep_tasks() {
    step_io "$1" "$2" "$PYTHON" -c 'import json, sys
tasks = set(sys.argv[1].split(","))
for line in sys.stdin:
    if json.loads(line).get("task") in tasks:
        sys.stdout.write(line)' "$3"
}

# tiny_llm FOLDER FILE...: smoke mode's random chat LLM (recipes/smoke.py), its tokenizer learned from FILE's texts.
tiny_llm() {
    step "$PYTHON" "$RECIPES/smoke.py" tiny-llm "$@"
}

# training_settings DEFAULT_STEPS: the settings of a recipe that trains, from the environment:
#   MLLM_LLM (smollm2), MLLM_ENCODER (dsp), MLLM_ENCODER_OPTIONS (extra encode options), MLLM_FRAME_RATE (10),
#   MLLM_SFT_STEPS (DEFAULT_STEPS), MLLM_BATCH_SIZE (8), MLLM_LR (2e-4), MLLM_SFT_OPTIONS (extra sft options).
# Smoke mode: 2 frames per second, 12 steps of 4 records at lr 1e-2 with adapters on the MLPs too, which
# make a tiny random LLM learn an answer's form in a few steps (mllm demo --fast's settings); fp32 and no
# dropout, so that a run on two processes (multi_gpu.sh) takes exactly the single run's steps.
training_settings() {
    LLM="${MLLM_LLM:-smollm2}"
    ENCODER="${MLLM_ENCODER:-dsp}"
    read -r -a ENCODER_OPTIONS <<< "${MLLM_ENCODER_OPTIONS:-}"
    FRAME_RATE="${MLLM_FRAME_RATE:-10}"
    STEPS="${MLLM_SFT_STEPS:-$1}"
    BATCH="${MLLM_BATCH_SIZE:-8}"
    LR="${MLLM_LR:-2e-4}"
    read -r -a SFT_OPTIONS <<< "${MLLM_SFT_OPTIONS:-}"
    if [[ "$SMOKE" == 1 ]]; then
        FRAME_RATE=2
        STEPS=12
        BATCH=4
        LR=1e-2
        SFT_OPTIONS=(--lora-rank 16 --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --warmup 2
                     --lora-dropout 0 --no-bf16)
    fi
}
