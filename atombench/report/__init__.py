"""Paper-style reports of a results folder: tables (Markdown, LaTeX, CSV), figures (PNG, PDF) and a page.

``atombench report RESULTS_DIR`` (also run at the end of ``atombench run``) calls :func:`build_report`; see
:mod:`atombench.report.build` for the layout of the report folder.
"""

from .build import ReportOptions, ReportResult, build_report

__all__ = ["ReportOptions", "ReportResult", "build_report"]
