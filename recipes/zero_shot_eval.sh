#!/usr/bin/env bash
# zero_shot_eval.sh: an existing audio LLM, not trained here, on genre and mood classification and on
# captioning, with the survey's protocol.
#
# Reproduces: the zero-shot study of "Foundation models for music understanding" (a survey; Tables 3
# and 4): each clip asked one fixed prompt, classification scored by accuracy with every answer
# outside the label set counted wrong (no precision or recall: answers need not be labels), captions
# scored against the reference by ROUGE-1 and ROUGE-L precision, recall and F.
#
# Usage:   recipes/zero_shot_eval.sh DATA_DIR OUT_DIR          (MLLM_RECIPE_SMOKE=1 recipes/zero_shot_eval.sh OUT_DIR: CI)
#
# DATA_DIR (any of them; at least one):
#   gtzan/      genre: GTZAN (genres_original/<genre>/*.wav, train/valid/test_filtered.txt)
#   merge/      mood: MERGE's Russell quadrant Q1-Q4 (MERGE_Audio_Complete/, tvt_dataframes/tvt_70_15_15/)
#   musiccaps/  captions: MusicCaps (musiccaps-public.csv and the 10 s clips)
# Each is scored on its test split (GTZAN's test_filtered.txt, MERGE's tvt_70_15_15 test, MusicCaps'
# is_audioset_eval clips); the survey drew 100 random clips per classification set and 147 MusicCaps clips.
#
# Environment (besides common.sh's):
#   MLLM_MODEL          the audio LLM (default Qwen/Qwen2-Audio-7B-Instruct: a hub id in the local cache or a folder)
#   MLLM_GENRE_PROMPT, MLLM_MOOD_PROMPT, MLLM_CAPTION_PROMPT: the fixed prompts (defaults below name the label set)
#   MLLM_MAX_NEW_TOKENS (128), MLLM_BATCH_SIZE (4)
#
# Commands (all in OUT_DIR/commands.sh after a run):
#   build-instructions --dataset gtzan --tasks genre; --dataset merge --tasks quadrant; --dataset musiccaps --tasks caption
#   caption FILE --model MODEL --prompt PROMPT --split test   (per task, its prompt)
#   eval-mir genre+mood answers --split test --labels genre=<GTZAN's 10> --labels quadrant=Q1,Q2,Q3,Q4 -o scores.json
#   eval-caption caption answers --split test --metrics rouge,rouge1 -o captions.json
#
# Output: OUT_DIR/scores.json (genre, quadrant: accuracy with its Clopper-Pearson interval, n, parse
# rate, the unread answers by reason: "no label of the set", "several labels"), OUT_DIR/captions.json
# (rouge_1_precision/recall/f, rouge_l_precision/recall/f: the survey's ROUGE-1 and ROUGE-L P/R/F), both split "test".
#
# Figures to expect (the survey, Table 3, accuracy; Table 4, MusicCaps): Qwen-Audio (the first Qwen
# audio model, not Qwen2-Audio) GTZAN genre 80 %, mood 29 % (Music-Classification) and 53 % (MIREX
# emotion); captions ROUGE-1 P/R/F 0.349/0.356/0.336, ROUGE-L P/R/F 0.249/0.255/0.239; other models
# 7-61 % on GTZAN. MERGE's quadrants are not the survey's mood sets, so the mood row has no published
# counterpart. The smoke run's figures mean nothing (a random tiny Qwen2-Audio).
#
# Approximated: ROUGE on mllm's caption tokens (NFKC, lowercase, punctuation dropped) and rouge-score's
# F1 of the best reference, which may differ from the survey's tokenisation. The survey's own
# prompts are not published; the defaults here name the label set. Its mood datasets
# (Music-Classification, Multi-modal MIREX Emotion) and FMA have no adapter in mllm.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
recipe_args "$@"

MODEL="${MLLM_MODEL:-Qwen/Qwen2-Audio-7B-Instruct}"
MAX_NEW_TOKENS="${MLLM_MAX_NEW_TOKENS:-128}"
BATCH="${MLLM_BATCH_SIZE:-4}"
GTZAN_GENRES=blues,classical,country,disco,hiphop,jazz,metal,pop,reggae,rock
GENRE_PROMPT="${MLLM_GENRE_PROMPT:-Which genre is this music? Answer with one of: ${GTZAN_GENRES//,/, }.}"
MOOD_PROMPT="${MLLM_MOOD_PROMPT:-Which quadrant of the arousal-valence plane does the emotion of this music lie in? Answer with one of Q1, Q2, Q3, Q4: Q1 is high arousal and positive valence (happy, excited), Q2 high arousal and negative valence (angry, tense), Q3 low arousal and negative valence (sad), Q4 low arousal and positive valence (calm, relaxed).}"
CAPTION_PROMPT="${MLLM_CAPTION_PROMPT:-Describe this music.}"

[[ -d "$DATA/gtzan" || -d "$DATA/merge" || -d "$DATA/musiccaps" ]] \
    || recipe_fail "none of $DATA/gtzan, $DATA/merge, $DATA/musiccaps (see the header)"
if [[ "$SMOKE" == 1 ]]; then
    step "$PYTHON" "$RECIPES/smoke.py" tiny-qwen2-audio "$OUT/tiny-qwen2-audio"
    MODEL="$OUT/tiny-qwen2-audio"
    MAX_NEW_TOKENS=8
fi

mkdir -p "$OUT/instructions" "$OUT/answers"
classified=()
# folder:dataset:task:prompt variable
for entry in gtzan:gtzan:genre:GENRE_PROMPT merge:merge:quadrant:MOOD_PROMPT musiccaps:musiccaps:caption:CAPTION_PROMPT; do
    IFS=: read -r folder dataset task prompt <<< "$entry"
    [[ -d "$DATA/$folder" ]] || continue
    step "$MLLM" build-instructions --dataset "$dataset" --root "$DATA/$folder" --tasks "$task" \
        -o "$OUT/instructions/$task.jsonl" "${OVERWRITE[@]}"
    step "$MLLM" caption "$OUT/instructions/$task.jsonl" --model "$MODEL" --prompt "${!prompt}" --split test \
        --max-new-tokens "$MAX_NEW_TOKENS" --batch-size "$BATCH" -o "$OUT/answers/$task.jsonl" \
        "${DEVICE[@]}" "${THREADS[@]}" "${OVERWRITE[@]}"
    if [[ "$task" != caption ]]; then classified+=("$OUT/answers/$task.jsonl"); fi
done

if (( ${#classified[@]} > 0 )); then
    cat "${classified[@]}" > "$OUT/answers/classification.jsonl"
    step "$MLLM" eval-mir "$OUT/answers/classification.jsonl" --split test --match text \
        --labels "genre=$GTZAN_GENRES" --labels quadrant=Q1,Q2,Q3,Q4 --table -o "$OUT/scores.json" \
        "${THREADS[@]}" "${OVERWRITE[@]}"
fi
if [[ -e "$OUT/answers/caption.jsonl" ]]; then
    step "$MLLM" eval-caption "$OUT/answers/caption.jsonl" --split test --metrics rouge,rouge1 --table -o "$OUT/captions.json" \
        "${THREADS[@]}" "${OVERWRITE[@]}"
fi
echo "zero_shot_eval: test-split scores in $OUT/scores.json and $OUT/captions.json" >&2
