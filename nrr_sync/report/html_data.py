"""What the HTML report reads: the report tables it draws, picked by month."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ..errors import ConfigError
from .data import ReportData, fetch_dicts, has_table, money, month_start


def require_plotly() -> None:
    try:
        import plotly  # noqa: F401
    except ImportError:
        from ..commands import html_install_hint

        raise ConfigError(
            f"The HTML report needs plotly, an optional extra: {html_install_hint()}"
        ) from None


@dataclass
class HtmlData:
    report: ReportData
    retention: dict[int, list[dict]]  # window -> rows of segment 'all', by month
    cohorts: list[dict]  # report.cohort_mrr rows
    metrics: list[dict] = field(default_factory=list)  # report.saas_metrics rows, by month
    segments: dict[str, list[dict]] = field(default_factory=dict)  # type -> retention rows
    segment_window: int = 12
    movers: list[dict] = field(default_factory=list)  # report.top_movements rows


def month_filter(first: date | None, last: date | None) -> tuple[str, list]:
    """A WHERE clause (and its parameters) keeping the months between --from and --to."""
    where, params = "WHERE true", []
    if first:
        where, params = where + " AND month >= ?", [*params, first]
    if last:
        where, params = where + " AND month <= ?", [*params, last]
    return where, params


def read_html_data(con, data: ReportData, from_month: str | None, to_month: str | None):
    """Everything the charts need beyond the printed report, read on the same connection."""
    first, last = month_start(from_month), month_start(to_month)
    where, params = month_filter(first, last)
    retention: dict[int, list[dict]] = {1: [], 3: [], 12: []}
    if has_table(con, "report", "retention"):
        for row in fetch_dicts(
            con,
            "SELECT month, window_months, customers_start, customers_retained, mrr_start, "
            f"mrr_end, nrr, grr, logo_retention FROM report.retention {where} "
            "AND segment_type = 'all' ORDER BY month",
            params,
        ):
            retention.setdefault(int(row["window_months"]), []).append(row)
    window, segments = read_segments(con, where, params)
    return HtmlData(
        report=data,
        retention=retention,
        cohorts=read_cohorts(con, first, last),
        metrics=read_metrics(con, where, params),
        segments=segments,
        segment_window=window,
        movers=read_movers(con),
    )


def read_cohorts(con, first: date | None, last: date | None) -> list[dict]:
    """Each starting cohort's MRR by months since its first month (report.cohort_mrr)."""
    if not has_table(con, "report", "cohort_mrr"):
        return []
    where, params = month_filter(None, last)
    if first:  # --from keeps the cohorts that start in the range, followed to --to
        where, params = where + " AND cohort >= ?", [*params, first]
    rows = fetch_dicts(
        con,
        "SELECT cohort, age, customers, mrr, cohort_customers, cohort_mrr, mrr_retention "
        f"FROM report.cohort_mrr {where} ORDER BY cohort, age",
        params,
    )
    for row in rows:
        row["mrr"] = money(row["mrr"])
        row["cohort_mrr"] = money(row["cohort_mrr"])
    return rows


def read_metrics(con, where: str, params: list) -> list[dict]:
    if not has_table(con, "report", "saas_metrics"):
        return []
    return fetch_dicts(con, f"SELECT * FROM report.saas_metrics {where} ORDER BY month", params)


def read_segments(con, where: str, params: list) -> tuple[int, dict[str, list[dict]]]:
    """Retention rows of every segment type but 'all', for the longest window with a value
    (12 months once the report reaches back that far)."""
    if not has_table(con, "report", "retention"):
        return 12, {}
    rows = fetch_dicts(
        con,
        "SELECT month, window_months, segment_type, segment, customers_start, mrr_start, "
        f"nrr, grr FROM report.retention {where} AND segment_type <> 'all' "
        "ORDER BY segment_type, segment, month",
        params,
    )
    windows = {row["window_months"] for row in rows if row["nrr"] is not None}
    window = max(windows, default=12)
    segments: dict[str, list[dict]] = {}
    for row in rows:
        if row["window_months"] == window:
            segments.setdefault(row["segment_type"], []).append(row)
    return window, dict(sorted(segments.items(), key=lambda item: segment_order(item[0])))


def segment_order(segment_type: str) -> tuple[int, str]:
    known = ["currency", "country", "product", "cohort"]
    return (known.index(segment_type), "") if segment_type in known else (len(known), segment_type)


def read_movers(con) -> list[dict]:
    if not has_table(con, "report", "top_movements"):
        return []
    rows = fetch_dicts(
        con,
        "SELECT movement, rank, account_id, customer_id, customer_name, month, mrr_before, "
        "mrr_after, amount, window_start, window_end FROM report.top_movements "
        "WHERE movement IN ('expansion', 'contraction', 'churn') ORDER BY movement, rank",
    )
    for row in rows:
        for column in ("mrr_before", "mrr_after", "amount"):
            row[column] = money(row[column])
    return rows


# --------------------------------------------------------------------------- charts
