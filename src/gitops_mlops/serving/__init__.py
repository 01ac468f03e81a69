"""The model server that runs inside the serving image (and under `mlops serve`)."""
