-- report.mrr_summary: the MRR roll-forward, one row per reported month (docs/metrics.md):
--   mrr_end = mrr_start + new + expansion + reactivation - contraction - churned, exactly
-- (every term is a sum of per-customer cent amounts, so the identity holds to the cent).
-- All movement columns are >= 0.

CREATE OR REPLACE TABLE report.mrr_summary AS
WITH
months AS (SELECT * FROM report.months WHERE reported),
history AS (SELECT * FROM report.customer_mrr_monthly),
movements AS (SELECT * FROM report.mrr_movements),

balances AS (
    SELECT
        month,
        sum(mrr_previous) AS mrr_start,
        sum(mrr) AS mrr_end,
        count(*) FILTER (WHERE mrr_previous > 0) AS customers_start,
        count(*) FILTER (WHERE mrr > 0) AS customers_end
    FROM history
    GROUP BY month
),

movement_totals AS (
    SELECT
        month,
        sum(amount) FILTER (WHERE movement = 'new') AS new_mrr,
        sum(amount) FILTER (WHERE movement = 'expansion') AS expansion_mrr,
        sum(amount) FILTER (WHERE movement = 'reactivation') AS reactivation_mrr,
        -sum(amount) FILTER (WHERE movement = 'contraction') AS contraction_mrr,
        -sum(amount) FILTER (WHERE movement = 'churn') AS churned_mrr,
        count(*) FILTER (WHERE movement = 'new') AS new_customers,
        count(*) FILTER (WHERE movement = 'reactivation') AS reactivated_customers,
        count(*) FILTER (WHERE movement = 'churn') AS churned_customers
    FROM movements
    GROUP BY month
),

-- the rows of the table, as the model defines them
final AS (
    SELECT
        months.month,
        months.month_complete,
        coalesce(balances.mrr_start, 0)::DECIMAL(18, 2) AS mrr_start,
        coalesce(movement_totals.new_mrr, 0)::DECIMAL(18, 2) AS new_mrr,
        coalesce(movement_totals.expansion_mrr, 0)::DECIMAL(18, 2) AS expansion_mrr,
        coalesce(movement_totals.reactivation_mrr, 0)::DECIMAL(18, 2) AS reactivation_mrr,
        coalesce(movement_totals.contraction_mrr, 0)::DECIMAL(18, 2) AS contraction_mrr,
        coalesce(movement_totals.churned_mrr, 0)::DECIMAL(18, 2) AS churned_mrr,
        coalesce(balances.mrr_end, 0)::DECIMAL(18, 2) AS mrr_end,
        coalesce(balances.customers_start, 0)::BIGINT AS customers_start,
        coalesce(balances.customers_end, 0)::BIGINT AS customers_end,
        coalesce(movement_totals.new_customers, 0)::BIGINT AS new_customers,
        coalesce(movement_totals.reactivated_customers, 0)::BIGINT AS reactivated_customers,
        coalesce(movement_totals.churned_customers, 0)::BIGINT AS churned_customers
    FROM months
    LEFT JOIN balances ON balances.month = months.month
    LEFT JOIN movement_totals ON movement_totals.month = months.month
)

SELECT * FROM final
ORDER BY month;
