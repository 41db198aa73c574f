"""The ``report`` stage: one self-contained ``report.html`` for a call directory.

``build`` assembles the page, ``summary`` words the results, ``reads`` embeds the per-read data, ``clonal`` gives
the allele split and heterogeneity sections as plain data, ``html`` holds the HTML building blocks; the style and
script are ``data/report.css`` and ``data/report.js``.  The names used by the CLI and the pipeline are here.
"""

from .build import DPI, build_report, html_table, save_report, split_alignments, trace_section, write_report

__all__ = ["DPI", "build_report", "save_report", "write_report", "trace_section", "html_table", "split_alignments"]
