"""Audio in: decode any file libsndfile or the installed decoders read, downmix, resample, crop."""
