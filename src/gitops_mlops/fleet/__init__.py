"""Many models in one repository: planning, the run cache, status, history, rollback."""
