"""The daily pipeline: the ordered steps of `kallos run`, the run ledger, the lock, the demo and its report.

from kallos.pipeline.run import run_pipeline summary = run_pipeline(settings)            # holds the lock,
records the run, returns a RunSummary summary.exit_code                           # 0 success, 3 partial, 4
failure (docs/operations.md)
"""
