-- report.saas_metrics: the figures a finance team compares across SaaS tools, one row per
-- reported month, all accounts together, derived from report.mrr_summary and nothing else
-- (docs/metrics.md, "SaaS metrics"):
--   arr = 12 x mrr; arpa = mrr / customers (to the cent);
--   logo_churn_rate = churned_customers / customers_start;
--   gross_mrr_churn_rate = (contraction + churned) / mrr_start;
--   net_mrr_churn_rate = (contraction + churned - expansion - reactivation) / mrr_start;
--   quick_ratio = (new + expansion + reactivation) / (contraction + churned);
--   ltv = arpa / mean logo_churn_rate of the three latest complete months at or before the
--   row's month (for the month in progress: the three complete months before it).
-- Every ratio is NULL where its denominator is 0, rather than 0 or infinity.

CREATE OR REPLACE TABLE report.saas_metrics AS
WITH
summary AS (SELECT * FROM report.mrr_summary),

-- Money in whole cents: a DOUBLE holds these exactly, so each ratio below is the exact
-- quotient rounded once, and arpa can be rounded half up in integers (DuckDB divides
-- DECIMALs in DOUBLE, which would misround a half cent).
in_cents AS (
    SELECT
        month,
        month_complete,
        mrr_end,
        customers_start,
        customers_end,
        new_customers,
        reactivated_customers,
        churned_customers,
        (mrr_start * 100)::HUGEINT AS start_cents,
        (mrr_end * 100)::HUGEINT AS end_cents,
        ((new_mrr + expansion_mrr + reactivation_mrr) * 100)::HUGEINT AS gained_cents,
        ((contraction_mrr + churned_mrr) * 100)::HUGEINT AS lost_cents,
        ((contraction_mrr + churned_mrr - expansion_mrr - reactivation_mrr) * 100)::HUGEINT
            AS net_lost_cents
    FROM summary
),

rates AS (
    SELECT
        *,
        -- MRR is never negative, so (2x + n) // 2n rounds x / n half up, exactly
        CASE WHEN customers_end > 0
            THEN ((2 * end_cents + customers_end) // (2 * customers_end) * 0.01)::DECIMAL(18, 2)
        END AS arpa,
        CASE WHEN customers_start > 0
            THEN churned_customers::DOUBLE / customers_start::DOUBLE END AS logo_churn_rate,
        CASE WHEN start_cents > 0
            THEN lost_cents::DOUBLE / start_cents::DOUBLE END AS gross_mrr_churn_rate,
        CASE WHEN start_cents > 0
            THEN net_lost_cents::DOUBLE / start_cents::DOUBLE END AS net_mrr_churn_rate,
        CASE WHEN lost_cents > 0
            THEN gained_cents::DOUBLE / lost_cents::DOUBLE END AS quick_ratio,
        -- the last complete month at or before this one: LTV never rests on a partial month
        CASE WHEN month_complete THEN month ELSE (month - INTERVAL 1 MONTH)::DATE END
            AS ltv_window_end
    FROM in_cents
),

-- the churn rate LTV divides by: the mean of three complete months' rates, and only when
-- all three are in the report and have a rate (a month with no customers at its start
-- has none); fewer than three would make a young report's LTV swing on one month
ltv_churn AS (
    SELECT
        rates.month,
        avg(window_rates.logo_churn_rate) AS mean_logo_churn_rate,
        count(window_rates.logo_churn_rate) AS months_with_rate
    FROM rates
    JOIN rates AS window_rates
        ON window_rates.month BETWEEN rates.ltv_window_end - INTERVAL 2 MONTH AND rates.ltv_window_end
        AND window_rates.month_complete
    GROUP BY rates.month
),

final AS (
    SELECT
        rates.month,
        rates.month_complete,
        rates.mrr_end AS mrr,
        (12 * rates.mrr_end)::DECIMAL(18, 2) AS arr,
        rates.customers_end AS customers,
        rates.arpa,
        rates.new_customers,
        rates.reactivated_customers,
        rates.churned_customers,
        rates.logo_churn_rate,
        rates.gross_mrr_churn_rate,
        rates.net_mrr_churn_rate,
        rates.quick_ratio,
        -- no churn at all in the three months: no finite lifetime to show
        CASE WHEN ltv_churn.months_with_rate = 3 AND ltv_churn.mean_logo_churn_rate > 0
            THEN round(rates.arpa::DOUBLE / ltv_churn.mean_logo_churn_rate, 2)::DECIMAL(18, 2)
        END AS ltv
    FROM rates
    LEFT JOIN ltv_churn ON ltv_churn.month = rates.month
)

SELECT * FROM final
ORDER BY month;
