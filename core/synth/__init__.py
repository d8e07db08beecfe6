"""`mllm synth`: a labelled corpus of rendered music (generated pieces and music21 scores) with exact labels."""
