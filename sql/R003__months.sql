-- report.months: the calendar months of the report, in reporting.timezone, each with the
-- instant its MRR snapshot is taken; and report.build_info (one row: what the build used).
--
-- A month's MRR is a snapshot at its last instant (one second before the next month
-- starts in the reporting time zone; Stripe timestamps are whole seconds), or at `as_of`
-- (the time of the last sync) for the current, incomplete month.
-- Months before `since` are kept too (reported = false): movements of the first reported
-- month compare with the month before it, and `new` needs to know who paid earlier.

CREATE OR REPLACE TABLE report.build_info AS
WITH
settings AS (SELECT * FROM meta.build_settings),
lines AS (SELECT period_start FROM report.mrr_lines),

resolved AS (
    SELECT
        settings.*,
        -- hand-built databases without a sync: the data's latest invoice, or now
        coalesce(
            settings.as_of,
            greatest((SELECT max(created) FROM stripe.invoices), now())
        ) AS resolved_as_of,
        (SELECT min(date_trunc('month', timezone(settings.timezone, period_start)))::DATE FROM lines)
            AS first_data_month
    FROM settings
),

-- the rows of the table, as the model defines them
final AS (
    SELECT
        reporting_currency,
        timezone,
        include_open_invoices,
        include_metered,
        subtract_discounts,
        churn_recognition,
        segments,
        resolved_as_of AS as_of,
        date_trunc('month', timezone(timezone, resolved_as_of))::DATE AS as_of_month,
        coalesce(since_month, first_data_month, date_trunc('month', timezone(timezone, resolved_as_of))::DATE)
            AS since_month,
        first_data_month,
        built_at
    FROM resolved
)

SELECT * FROM final;

CREATE OR REPLACE TABLE report.months AS
WITH
info AS (SELECT * FROM report.build_info),

month_starts AS (
    SELECT range::DATE AS month
    FROM info,
        range(
            least(info.first_data_month, (info.since_month - INTERVAL 1 MONTH)::DATE)::TIMESTAMP,
            (info.as_of_month + INTERVAL 1 MONTH)::TIMESTAMP,
            INTERVAL 1 MONTH
        )
),

-- the rows of the table, as the model defines them
final AS (
    SELECT
        month_starts.month,
        (year(month_starts.month) * 12 + month(month_starts.month) - 1)::INTEGER AS month_index,
        timezone(info.timezone, month_starts.month::TIMESTAMP) AS starts_at,
        CASE
            WHEN month_starts.month = info.as_of_month THEN info.as_of
            ELSE timezone(info.timezone, (month_starts.month + INTERVAL 1 MONTH)::TIMESTAMP) - INTERVAL 1 SECOND
        END AS snapshot_at,
        month_starts.month < info.as_of_month AS month_complete,
        month_starts.month >= info.since_month AS reported
    FROM month_starts
    CROSS JOIN info
)

SELECT * FROM final
ORDER BY month;
