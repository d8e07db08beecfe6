#!/usr/bin/env bash
# llark_mir.sh: LLark-style instruction tuning and its Table 2 music-understanding evaluation.
#
# Reproduces: Gardner et al., "LLark: A Multimodal Instruction-Following Language Model for Music"
# (ICML 2024), Table 2, rows Key Estimation (GiantSteps, MIREX score), Tempo Estimation (GiantSteps,
# Acc2) and Genre Classification (GTZAN, Acc@1), all zero-shot: the evaluation datasets are never
# trained on. The pipeline is LLark's: training clips cropped to 25 s, MIR features added to each
# clip's metadata (tempo, key, beats, chords: its "metadata augmentation"), instruction records from
# the metadata (MIR questions, captions, optionally generated QA), a frozen audio encoder pooled to
# 10 Hz, a projector into the LLM, loss on the answers only; then greedy answers to the test
# questions, scored by mir_eval's weighted key score, tempo Acc2 and nearest-label genre accuracy.
#
# Usage:   recipes/llark_mir.sh DATA_DIR OUT_DIR          (MLLM_RECIPE_SMOKE=1 recipes/llark_mir.sh OUT_DIR: CI)
#
# DATA_DIR (any subset of the training sets, all three evaluation sets):
#   mtg_jamendo/       training: MTG-Jamendo (data/splits/split-0/autotagging-*.tsv, audio/ or audio-low/)
#   musiccaps/         training: MusicCaps (musiccaps-public.csv and the 10 s clips anywhere below)
#   giantsteps_key/    evaluation: GiantSteps Key (annotations/key/*.key, audio/*.mp3); every track is a test item
#   giantsteps_tempo/  evaluation: GiantSteps Tempo (annotations_v2/tempo/*.bpm, audio/*.mp3); every track a test item
#   gtzan/             evaluation: GTZAN (genres_original/<genre>/*.wav and the fault-filtered
#                      train/valid/test_filtered.txt lists); its test list is scored
# (layouts in docs/instructions.md, "Dataset adapters"; tests/data/<name>/ holds a small example of each)
#
# Environment (besides common.sh's):
#   MLLM_LLM          the LLM (default smollm2; LLark: Llama-2-7B-chat, e.g. a local meta-llama/Llama-2-7b-chat-hf)
#   MLLM_ENCODER      the audio encoder (default dsp; LLark: Jukebox-5B layer 36, which mllm lacks: MERT,
#                     e.g. m-a-p/MERT-v1-330M with MLLM_ENCODER_OPTIONS="--trust-remote-code --layer all", is the
#                     nearest open music encoder)
#   MLLM_ENCODER_OPTIONS  extra options of encode (default none)
#   MLLM_FRAME_RATE   frames per second of the embedding (default 10, LLark's)
#   MLLM_SFT_STEPS (2000), MLLM_BATCH_SIZE (8), MLLM_LR (2e-4): the sft run; MLLM_SFT_OPTIONS: more sft options
#   MLLM_GENERATOR    an OpenAI-compatible endpoint: also generate LLark's QA pairs (understanding prompt)
#   MLLM_GENRE_MATCH  embedding (LLark's nearest-label protocol, the default) or text (the label named)
#
# Commands (all in OUT_DIR/commands.sh after a run):
#   per training set S: build-instructions --dataset S --tasks caption (one record per track, its labels and split);
#   all tracks: recipes/llark_crop.py (LLark's 25 s rule) | extract-features | encode | build-instructions --tasks
#     key,tempo,genres,instruments,moods,tags,caption,mir_qa (labels first, the features fill the gaps) -> train.jsonl
#   evaluation: build-instructions --dataset giantsteps-key --tasks key --split-fractions 0,0,1 (all test),
#     giantsteps-tempo --tasks tempo (the same), gtzan --tasks genre (its own lists) | llark_crop.py | encode
#   sft train.jsonl (train split of the training sets only) -> runs/sft
#   caption eval.jsonl --model runs/sft --split test -> answers.jsonl
#   eval-mir answers.jsonl --split test --match embedding --labels genre=<GTZAN's 10> --table -o scores.json
# (recipes/multi_gpu.sh OUT_DIR OUT2 reruns this sft with the same options on N GPUs under torchrun)
#
# Output: OUT_DIR/scores.json: tasks key (weighted_score, accuracy), tempo (acc1, acc2), genre
# (accuracy, macro F1), each with n (= the test items), parse rate, 95 % bootstrap and (proportions)
# Clopper-Pearson intervals, split "test".
#
# Figures to expect (LLark, Table 2; 95 % Clopper-Pearson intervals): key MIREX score 0.70 +- 0.04,
# tempo Acc2 0.86 +- 0.03, GTZAN genre accuracy 0.56 +- 0.03 (baselines there: Essentia key 0.32,
# tempo 0.77; majority genre 0.10; task-fine-tuned SOTA key 0.743, tempo 0.925, genre 0.835; LLark's
# madmom features alone: key 0.729, tempo Acc2 0.947). LLark trained a 7B LLM on Jukebox features
# of ~1.2M instruction pairs from MusicCaps, YouTube8M-MusicTextClips, MusicNet, FMA and MTG-Jamendo;
# this recipe with SmolLM2-135M and DSP features on MTG-Jamendo + MusicCaps is far smaller and is
# expected well below those figures. The smoke run's figures mean nothing (random tiny model).
#
# Approximations and what mllm lacks: Jukebox is not available (use MERT or another --encoder);
# YouTube8M-MusicTextClips, MusicNet and FMA have no adapter; the features come from extract-features
# (librosa; --backend essentia available) instead of madmom; the generated QA needs an endpoint;
# LLark's instrument-ID rows (MedleyDB, MusicNet) have no adapter and are not scored here.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
recipe_args "$@"

TRAIN_SETS=(mtg_jamendo:mtg-jamendo musiccaps:musiccaps)
GTZAN_GENRES=blues,classical,country,disco,hiphop,jazz,metal,pop,reggae,rock
TRAIN_TASKS=key,tempo,genres,instruments,moods,tags,caption,mir_qa
training_settings 2000
MATCH="${MLLM_GENRE_MATCH:-embedding}"
MAX_NEW_TOKENS=48
GENERATOR=()
[[ -n "${MLLM_GENERATOR:-}" ]] && GENERATOR=(--generator "$MLLM_GENERATOR")
if [[ "$SMOKE" == 1 ]]; then MAX_NEW_TOKENS=12; fi

mkdir -p "$OUT/train" "$OUT/eval" "$OUT/runs"
CACHE="$OUT/cache"

# ---- training sets: tracks -> 25 s crops -> features -> embeddings -> instructions --------------
tracks=()
for entry in "${TRAIN_SETS[@]}"; do
    folder="${entry%%:*}" dataset="${entry##*:}"
    [[ -d "$DATA/$folder" ]] || continue
    step "$MLLM" build-instructions --dataset "$dataset" --root "$DATA/$folder" --tasks caption \
        -o "$OUT/train/$folder.tracks.jsonl" "${OVERWRITE[@]}"
    tracks+=("$OUT/train/$folder.tracks.jsonl")
done
(( ${#tracks[@]} > 0 )) || recipe_fail "no training set under $DATA: mtg_jamendo/ or musiccaps/ (see the header)"
cat "${tracks[@]}" > "$OUT/train/tracks.jsonl"
step_io "$OUT/train/tracks.jsonl" "$OUT/train/cropped.jsonl" "$PYTHON" "$RECIPES/llark_crop.py"
step "$MLLM" extract-features "$OUT/train/cropped.jsonl" -o "$OUT/train/features.jsonl" "${THREADS[@]}" "${OVERWRITE[@]}"
step "$MLLM" encode "$OUT/train/features.jsonl" --encoder "$ENCODER" "${ENCODER_OPTIONS[@]}" --frame-rate "$FRAME_RATE" \
    --cache "$CACHE" -o "$OUT/train/features.enc.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
step "$MLLM" build-instructions "$OUT/train/features.enc.jsonl" --tasks "$TRAIN_TASKS" "${GENERATOR[@]}" \
    -o "$OUT/train.jsonl" "${OVERWRITE[@]}"

# ---- evaluation sets: never trained on ----------------------------------------------------------
for entry in giantsteps_key:giantsteps-key:key giantsteps_tempo:giantsteps-tempo:tempo gtzan:gtzan:genre; do
    IFS=: read -r folder dataset task <<< "$entry"
    [[ -d "$DATA/$folder" ]] || recipe_fail "no $DATA/$folder (see the header)"
    split=()
    # GiantSteps publishes no split and LLark evaluates on every track: all of it is the test split.
    [[ "$folder" == giantsteps_* ]] && split=(--split-from hash --split-fractions 0,0,1)
    step "$MLLM" build-instructions --dataset "$dataset" --root "$DATA/$folder" --tasks "$task" "${split[@]}" \
        -o "$OUT/eval/$folder.jsonl" "${OVERWRITE[@]}"
done
cat "$OUT"/eval/{giantsteps_key,giantsteps_tempo,gtzan}.jsonl > "$OUT/eval/all.jsonl"
step_io "$OUT/eval/all.jsonl" "$OUT/eval.jsonl" "$PYTHON" "$RECIPES/llark_crop.py"
step "$MLLM" encode "$OUT/eval.jsonl" --encoder "$ENCODER" "${ENCODER_OPTIONS[@]}" --frame-rate "$FRAME_RATE" \
    --cache "$CACHE" -o "$OUT/eval.enc.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"

# ---- instruction tuning ---------------------------------------------------------------------------
if [[ "$SMOKE" == 1 ]]; then
    tiny_llm "$OUT/tiny-llm" "$OUT/train.jsonl" "$OUT/eval.jsonl"
    LLM="$OUT/tiny-llm"
fi
step_to "$OUT/runs/sft.metrics.jsonl" "$MLLM" sft "$OUT/train.jsonl" --llm "$LLM" -o "$OUT/runs/sft" --steps "$STEPS" \
    --batch-size "$BATCH" --lr "$LR" "${SFT_OPTIONS[@]}" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"

# ---- Table 2: answers to the test questions, scored -----------------------------------------------
step "$MLLM" caption "$OUT/eval.enc.jsonl" --model "$OUT/runs/sft" --split test --max-new-tokens "$MAX_NEW_TOKENS" \
    -o "$OUT/answers.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
step "$MLLM" eval-mir "$OUT/answers.jsonl" --split test --match "$MATCH" --labels "genre=$GTZAN_GENRES" --table \
    -o "$OUT/scores.json" "${THREADS[@]}" "${OVERWRITE[@]}"
echo "llark_mir: scores of the test split in $OUT/scores.json (LLark Table 2: key 0.70, tempo Acc2 0.86, GTZAN 0.56)" >&2
