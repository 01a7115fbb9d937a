"""Ingest: batches, discovery, the batch processor and the steps the orchestrator runs."""
