"""Run directories, metrics, optional experiment trackers, progress bars and HTML reports."""

from selfbake.tracking.progress import progress_bar
from selfbake.tracking.report import write_report
from selfbake.tracking.rundir import RunDir, atomic_write_text

__all__ = ["RunDir", "atomic_write_text", "progress_bar", "write_report"]
