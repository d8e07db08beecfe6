#!/usr/bin/env bash
# cmi_bench_eval.sh: CMI-Bench's MIR tasks as instructions, scored with the standard metrics: published
# result files rescored into one leaderboard, and any model answering the benchmark's test items.
#
# Reproduces: Ma et al., "CMI-Bench: A Comprehensive Benchmark for Evaluating Music Instruction
# Following" (2025): every task a question per clip (the benchmark's own instruction), the free-text
# answer read and scored by the task's MIR metric: key (MIREX weighted score), tempo (Acc1/Acc2),
# genre/instrument/pitch/technique (accuracy), tagging (F1, ROC-AUC/PR-AUC on 0/1 answers), emotion
# (R2 on z-scores, unparsed answers counted as the mean beside mllm's own figures), beats/downbeats
# (F-measure), captions (BLEU, METEOR, ROUGE-L, CIDEr).
#
# Usage:   recipes/cmi_bench_eval.sh DATA_DIR OUT_DIR          (MLLM_RECIPE_SMOKE=1 recipes/cmi_bench_eval.sh OUT_DIR: CI)
#
# DATA_DIR (either part or both):
#   cmi_bench/         published result files, one per model and task: <model>_<TASK>.jsonl (or .json), items
#                      {question, response, correct_answer, audioid}; TASK: GS_key, GS_tempo, GTZAN, EMO_arousal,
#                      EMO_valence, MTG_genre, MTG_instrument, MTG_emotion, MTG_top50tags, MTT, Nsynth_*,
#                      VocalSet_tech, gtzan_beat, ... and MusicCaps / SDD (captions)
#   cmi_bench_tasks/   the CMI-Bench repository's data: data/**/CMI_<TASK>.jsonl with the audio beside them
#
# Environment (besides common.sh's):
#   MLLM_MODEL   the model that answers the tasks (default Qwen/Qwen2-Audio-7B-Instruct; or an `mllm sft`
#                checkpoint folder, whose encoder encodes the audio on the fly)
#   MLLM_MAX_NEW_TOKENS (128), MLLM_BATCH_SIZE (4): generation
#
# Commands (all in OUT_DIR/commands.sh after a run):
#   eval-mir cmi_bench/ --table -o leaderboard.json           every MIR result file, one row per model and task
#   per caption file F (MusicCaps, SDD): eval-caption F -o captions/F.json
#   build-instructions --dataset cmi-bench --root cmi_bench_tasks (the benchmark's own questions) -> tasks.jsonl
#     (the captions composed from labels of non-caption tasks are dropped: CMI-Bench asks for captions only in
#     its caption tasks)
#   caption tasks.jsonl --model MODEL --split test -> answers.jsonl
#   eval-mir answers.jsonl --split test -o model_scores.json; eval-caption (its caption records) --split test
#     -o model_captions.json
#
# Output: OUT_DIR/leaderboard.json (files: per result file its model and the summary of its task; skipped_files:
# the caption files, scored in captions/), OUT_DIR/model_scores.json and model_captions.json (the test split).
#
# Figures to expect: rescoring a published file gives CMI-Bench's own figure for it where the two
# protocols agree; where they differ on purpose (docs/evaluation.md, "CMI-Bench result files"): an
# unparsed number is not replaced by the mean in the headline (that figure is beside it as
# metrics_unparsed_as_mean), a classification answer naming several labels is wrong, tagging uses the
# labels read from the text. CMI-Bench's paper is not among this project's source documents, so no
# table is quoted here; its finding carried into the project's brief: no public audio LLM gives usable
# arousal/valence predictions. The smoke run's figures mean nothing (fixture answers, a random model).
#
# What mllm lacks: the lyrics, melody and playing-technique tasks are not scored (eval-mir refuses them
# with a message, build-instructions passes them over and names them); EMO's instruction asks for 1-9
# while its references are z-scores, so no EMO instruction is built for part two (rescore EMO files in
# part one).

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
recipe_args "$@"

MODEL="${MLLM_MODEL:-Qwen/Qwen2-Audio-7B-Instruct}"
MAX_NEW_TOKENS="${MLLM_MAX_NEW_TOKENS:-128}"
BATCH="${MLLM_BATCH_SIZE:-4}"
CAPTION_OPTIONS=()
if [[ "$SMOKE" == 1 ]]; then
    MAX_NEW_TOKENS=8
    CAPTION_OPTIONS=(--metrics bleu,meteor,rouge,cider --meteor nltk)
fi
[[ -d "$DATA/cmi_bench" || -d "$DATA/cmi_bench_tasks" ]] || recipe_fail "neither $DATA/cmi_bench nor $DATA/cmi_bench_tasks (see the header)"

# ---- part one: published result files ----------------------------------------------------------
if [[ -d "$DATA/cmi_bench" ]]; then
    step "$MLLM" eval-mir "$DATA/cmi_bench" --table -o "$OUT/leaderboard.json" "${THREADS[@]}" "${OVERWRITE[@]}"
    mkdir -p "$OUT/captions"
    for file in "$DATA"/cmi_bench/*_MusicCaps.json* "$DATA"/cmi_bench/*_SDD.json*; do
        [[ -e "$file" ]] || continue
        name="$(basename "${file%.*}")"
        step "$MLLM" eval-caption "$file" "${CAPTION_OPTIONS[@]}" --table -o "$OUT/captions/$name.json" \
            "${THREADS[@]}" "${OVERWRITE[@]}"
    done
fi

# ---- part two: a model answers the benchmark's test items ---------------------------------------
if [[ -d "$DATA/cmi_bench_tasks" ]]; then
    step "$MLLM" build-instructions --dataset cmi-bench --root "$DATA/cmi_bench_tasks" \
        --tasks key,tempo,genre,genres,instruments,moods,tags,beats,downbeats,caption -o "$OUT/instructions.jsonl" \
        "${OVERWRITE[@]}"
    step_io "$OUT/instructions.jsonl" "$OUT/tasks.jsonl" "$PYTHON" -c 'import json, sys
for line in sys.stdin:
    record = json.loads(line)
    if record.get("task") == "caption" and "caption/composed" in record.get("source", {}).get("template", ""):
        continue  # a caption made up from the labels of a non-caption task: not a CMI-Bench item
    sys.stdout.write(line)'
    if [[ "$SMOKE" == 1 ]]; then
        step "$PYTHON" "$RECIPES/smoke.py" tiny-qwen2-audio "$OUT/tiny-qwen2-audio"
        MODEL="$OUT/tiny-qwen2-audio"
    fi
    step "$MLLM" caption "$OUT/tasks.jsonl" --model "$MODEL" --split test --max-new-tokens "$MAX_NEW_TOKENS" \
        --batch-size "$BATCH" -o "$OUT/answers.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
    step "$MLLM" eval-mir "$OUT/answers.jsonl" --split test --table -o "$OUT/model_scores.json" \
        "${THREADS[@]}" "${OVERWRITE[@]}"
    keep_tasks "$OUT/answers.jsonl" "$OUT/answers.captions.jsonl" caption
    if [[ -s "$OUT/answers.captions.jsonl" ]]; then
        step "$MLLM" eval-caption "$OUT/answers.captions.jsonl" --split test "${CAPTION_OPTIONS[@]}" --table \
            -o "$OUT/model_captions.json" "${THREADS[@]}" "${OVERWRITE[@]}"
    fi
fi
echo "cmi_bench_eval: results in $OUT" >&2
