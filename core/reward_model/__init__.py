"""Learned music reward models (CMI-RewardBench): a small head on frozen audio and text embeddings
giving one score per axis (alignment, musicality), trained with the Bradley-Terry loss on
preference pairs and/or MSE on mean opinion scores; scoring records and best-of-N reranking."""
