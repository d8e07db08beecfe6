#!/usr/bin/env bash
# emotion_grpo.sh: instruction tuning on arousal/valence regression, then GRPO with a verifiable numeric
# reward, with MusicQA retention checked on the same models.
#
# Reproduces: "Aligning MusicLLM with Emotion using Instruction Tuning and Feedback-Driven Alignment"
# (2026): music encoder -> projector -> LLM with LoRA; instruction tuning on answers such as "I would
# assign a 3.6 on the 1-9 scale"; then feedback-driven alignment (GRPO family, a reward from the
# deviation of the stated number from the label); arousal and valence scored on the test split by
# R2, RMSE, Pearson and CCC; MusicQA answers scored by BLEU, METEOR and ROUGE before and after
# alignment ("maintaining MusicQA capability"). DEAM with the paper's split (1261/271/270 songs, the
# split of Music2Emo) or MERGE (its tvt_70_15_15 split).
#
# Usage:   recipes/emotion_grpo.sh DATA_DIR OUT_DIR          (MLLM_RECIPE_SMOKE=1 recipes/emotion_grpo.sh OUT_DIR: CI)
#
# DATA_DIR:
#   deam/      DEAM: static_annotations_averaged_songs_*.csv and MEMD_audio/<id>.mp3; for the paper's split,
#              Music2Emo's song-id lists train.txt, val.txt, test.txt in deam/split/ (without them the songs
#              are split by a hash of the id, 0.7/0.15/0.15: the paper's proportions, not its songs)
#   merge/     MERGE (with MLLM_EMOTION_DATASET=merge): MERGE_Audio_Complete/ with its metadata, AV values,
#              Q1..Q4/ audio and tvt_dataframes/tvt_70_15_15/
#   musicqa/   MusicQA (MU-LLaMA): MusicQA/FinetuneMusicQA.json, EvalMusicQA.json, audios/
#
# Environment (besides common.sh's):
#   MLLM_EMOTION_DATASET  deam (default) or merge
#   MLLM_LLM (smollm2), MLLM_ENCODER (dsp; the paper's encoder is a pretrained music encoder: e.g.
#   m-a-p/MERT-v1-95M with MLLM_ENCODER_OPTIONS="--trust-remote-code --layer all"), MLLM_FRAME_RATE (10)
#   MLLM_SFT_STEPS (1000), MLLM_BATCH_SIZE (8), MLLM_LR (2e-4), MLLM_SFT_OPTIONS: the sft run
#   MLLM_GRPO_STEPS (200), MLLM_GRPO_OPTIONS (default "--group-size 8 --lr 1e-5 --beta 0.04
#   --regression-shape gaussian"): the grpo run
#
# Commands (all in OUT_DIR/commands.sh after a run):
#   build-instructions --dataset deam --tasks arousal,valence -> emotion.jsonl
#   build-instructions --dataset musicqa --tasks qa -> musicqa.jsonl
#   encode (both) -> emotion.enc.jsonl, musicqa.enc.jsonl
#   sft emotion + musicqa (train split) -> runs/sft            (MusicQA in the mix: the ability to keep)
#   grpo emotion.enc.jsonl --checkpoint runs/sft --reward task:1.0,format:0.2 -> runs/grpo
#   regress --method probe (ridge on pooled embeddings, trained on the train split): the supervised baseline
#   for SYSTEM in sft grpo: regress --model runs/SYSTEM --targets task --split test; eval-mir --split test;
#                           caption musicqa --split test; eval-caption --split test --metrics bleu,meteor,rouge
#   eval-mir answers/grpo.emotion.jsonl --compare answers/sft.emotion.jsonl --split test: the paired test
#
# Output: OUT_DIR/scores/{probe,sft,grpo}.emotion.json (tasks arousal and valence: r2, rmse, mae,
# pearson, spearman, ccc with 95 % bootstrap intervals, n = the test songs answered with a number,
# parse rate), scores/grpo_vs_sft.emotion.json (differences, paired intervals, p-values),
# scores/{sft,grpo}.musicqa.json (BLEU-1..4, METEOR, ROUGE-L on MusicQA's Eval split), all split "test".
#
# Figures to expect: the paper's tables did not survive in the copy this project holds (only its
# abstract and section openings): it reports that SFT alone predicts emotion "to some extent" with
# limited accuracy, that GRPO improves both arousal and valence substantially over SFT, and that the
# MusicQA scores stay at the SFT model's level. CMI-Bench found no public audio LLM that gives usable
# arousal/valence predictions (R2 near or below 0). This project's own GRPO studies on energy (a
# numeric target of `mllm synth`, docs/training.md) found no gain over SFT or a same-compute control:
# compare grpo with sft through the paired test, not by eye. The smoke run's figures mean nothing.
#
# Approximations: the paper's encoder, LLM, reward shape and GRPO settings are not in the surviving
# text (the defaults above are this project's); its MusicLLM was trained on MusicQA before the
# emotion stage, where this recipe trains both in one SFT run.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
recipe_args "$@"

DATASET="${MLLM_EMOTION_DATASET:-deam}"
training_settings 1000
GRPO_STEPS="${MLLM_GRPO_STEPS:-200}"
read -r -a GRPO_OPTIONS <<< "${MLLM_GRPO_OPTIONS:---group-size 8 --lr 1e-5 --beta 0.04 --regression-shape gaussian}"
QA_TOKENS=128
METEOR=auto
if [[ "$SMOKE" == 1 ]]; then
    GRPO_STEPS=2
    GRPO_OPTIONS=(--group-size 2 --batch-size 2 --lr 1e-3 --max-new-tokens 8)
    QA_TOKENS=12
    METEOR=nltk  # the jar starts a JVM per call: seconds a smoke run does not need
fi

case "$DATASET" in
    deam)
        [[ -d "$DATA/deam" ]] || recipe_fail "no $DATA/deam (see the header)"
        split=()
        if [[ -z "$(find "$DATA/deam" -type d -name split -print -quit)" ]]; then
            echo "emotion_grpo: no deam/split/ lists (Music2Emo's): songs split by hash, 0.7/0.15/0.15" >&2
            split=(--split-fractions 0.7,0.15,0.15)
        fi
        step "$MLLM" build-instructions --dataset deam --root "$DATA/deam" --tasks arousal,valence "${split[@]}" \
            -o "$OUT/emotion.jsonl" "${OVERWRITE[@]}" ;;
    merge)
        [[ -d "$DATA/merge" ]] || recipe_fail "no $DATA/merge (see the header)"
        step "$MLLM" build-instructions --dataset merge --root "$DATA/merge" --tasks arousal,valence \
            -o "$OUT/emotion.jsonl" "${OVERWRITE[@]}" ;;
    *) recipe_fail "MLLM_EMOTION_DATASET must be deam or merge, got $DATASET" ;;
esac
[[ -d "$DATA/musicqa" ]] || recipe_fail "no $DATA/musicqa (see the header)"
step "$MLLM" build-instructions --dataset musicqa --root "$DATA/musicqa" --tasks qa -o "$OUT/musicqa.jsonl" "${OVERWRITE[@]}"
# Songs per split (arousal records: one per song); the paper's DEAM split is 1261/271/270.
"$PYTHON" -c 'import collections, json, sys
c = collections.Counter(r.get("split") for r in map(json.loads, open(sys.argv[1])) if r.get("task") == "arousal")
print("emotion_grpo: songs per split:", dict(c), file=sys.stderr)' "$OUT/emotion.jsonl"

for name in emotion musicqa; do
    step "$MLLM" encode "$OUT/$name.jsonl" --encoder "$ENCODER" "${ENCODER_OPTIONS[@]}" --frame-rate "$FRAME_RATE" \
        --cache "$OUT/cache" -o "$OUT/$name.enc.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
done
cat "$OUT/emotion.enc.jsonl" "$OUT/musicqa.enc.jsonl" > "$OUT/sft.enc.jsonl"

mkdir -p "$OUT/runs" "$OUT/answers" "$OUT/scores"
if [[ "$SMOKE" == 1 ]]; then
    tiny_llm "$OUT/tiny-llm" "$OUT/emotion.jsonl" "$OUT/musicqa.jsonl"
    LLM="$OUT/tiny-llm"
fi
step_to "$OUT/runs/sft.metrics.jsonl" "$MLLM" sft "$OUT/sft.enc.jsonl" --llm "$LLM" -o "$OUT/runs/sft" --steps "$STEPS" \
    --batch-size "$BATCH" --lr "$LR" "${SFT_OPTIONS[@]}" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
step_to "$OUT/runs/grpo.metrics.jsonl" "$MLLM" grpo "$OUT/emotion.enc.jsonl" --checkpoint "$OUT/runs/sft" -o "$OUT/runs/grpo" \
    --steps "$GRPO_STEPS" --reward task:1.0,format:0.2 "${GRPO_OPTIONS[@]}" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"

# ---- the test split: emotion regression and MusicQA retention ------------------------------------
step "$MLLM" regress "$OUT/emotion.enc.jsonl" --method probe --targets arousal,valence --split test \
    -o "$OUT/answers/probe.emotion.jsonl" "${THREADS[@]}" "${OVERWRITE[@]}"
step "$MLLM" eval-mir "$OUT/answers/probe.emotion.jsonl" --split test --table -o "$OUT/scores/probe.emotion.json" \
    "${THREADS[@]}" "${OVERWRITE[@]}"
for system in sft grpo; do
    step "$MLLM" regress "$OUT/emotion.enc.jsonl" --model "$OUT/runs/$system" --targets task --split test \
        -o "$OUT/answers/$system.emotion.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
    step "$MLLM" eval-mir "$OUT/answers/$system.emotion.jsonl" --split test --table -o "$OUT/scores/$system.emotion.json" \
        "${THREADS[@]}" "${OVERWRITE[@]}"
    step "$MLLM" caption "$OUT/musicqa.enc.jsonl" --model "$OUT/runs/$system" --split test --max-new-tokens "$QA_TOKENS" \
        -o "$OUT/answers/$system.musicqa.jsonl" "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
    step "$MLLM" eval-caption "$OUT/answers/$system.musicqa.jsonl" --split test --metrics bleu,meteor,rouge \
        --meteor "$METEOR" --table -o "$OUT/scores/$system.musicqa.json" "${THREADS[@]}" "${OVERWRITE[@]}"
done
step "$MLLM" eval-mir "$OUT/answers/grpo.emotion.jsonl" --compare "$OUT/answers/sft.emotion.jsonl" --split test --table \
    -o "$OUT/scores/grpo_vs_sft.emotion.json" "${THREADS[@]}" "${OVERWRITE[@]}"
echo "emotion_grpo: test-split scores in $OUT/scores/" >&2
