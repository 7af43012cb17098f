"""Reports read from the store: the run summary and warning list (``summary``), the 附件4 自我诊改报告
(``selfreport`` + ``render``), the 质量年度报告 data tables (``annual``) and the 自主诊断 digests and
考核性诊断 summaries (``diagnosis``)."""

from zhengai.report.summary import Summary, render_report, render_summary, summarize

__all__ = ["Summary", "summarize", "render_summary", "render_report"]
