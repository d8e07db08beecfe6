"""Dataset adapters: read public datasets from a local folder in their published layouts into records with labels."""
