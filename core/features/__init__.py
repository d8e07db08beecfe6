"""MIR analysis of audio: tempo, beats, downbeats and meter, key, chords, loudness; pluggable backends."""
