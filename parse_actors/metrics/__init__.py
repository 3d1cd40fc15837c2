"""Observers of a run and the run directory they write (the run-directory contract)."""

from parse_actors.metrics.observers import NetworkEventLog
from parse_actors.metrics.rundir import RunDir, RunDirError
from parse_actors.metrics.summary import build_summary, format_summary

__all__ = ["NetworkEventLog", "RunDir", "RunDirError", "build_summary", "format_summary"]
