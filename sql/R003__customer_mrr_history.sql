-- report.customer_mrr_history: each customer's MRR at every month's snapshot instant, from
-- their first month with MRR > 0 through the last reported month (zero months included),
-- lookback months before `since` too. The base of customer_mrr_monthly, movements and
-- retention. Customers are keyed by (account_id, customer_id).
--
-- Customer MRR at instant t = max(0, sum of the monthly values of the lines active at t),
-- rounded to cents (half away from zero). A line is active at t when
-- period_start <= t < recognized_end.

CREATE OR REPLACE TABLE report.customer_mrr_history AS
WITH
months AS (SELECT * FROM report.months),
mrr_lines AS (
    SELECT account_id, customer_id, product_id, currency, period_start, recognized_end, monthly_mrr
    FROM report.mrr_lines
),

-- each line once per month whose snapshot instant it covers (a range join, not a loop)
line_months AS (
    SELECT months.month, mrr_lines.*
    FROM mrr_lines
    JOIN months
        ON months.snapshot_at >= mrr_lines.period_start
        AND months.snapshot_at < mrr_lines.recognized_end
),

product_months AS (
    SELECT account_id, customer_id, month, product_id, currency, sum(monthly_mrr) AS product_mrr
    FROM line_months
    GROUP BY ALL
),

-- billing currency and top product: those with the largest MRR (ties: the larger id)
customer_months AS (
    SELECT
        account_id,
        customer_id,
        month,
        sum(product_mrr) AS mrr_unrounded,
        round(greatest(sum(product_mrr), 0), 2)::DECIMAL(18, 2) AS mrr,
        arg_max(currency, (product_mrr, currency)) AS billing_currency,
        arg_max(product_id, (product_mrr, product_id)) AS top_product_id
    FROM product_months
    GROUP BY ALL
),

first_mrr_months AS (
    SELECT account_id, customer_id, min(month) AS first_mrr_month
    FROM customer_months
    WHERE mrr > 0
    GROUP BY ALL
),

-- dense: every month from the first with MRR > 0, so churned months show as 0
customer_month_grid AS (
    SELECT
        first_mrr_months.account_id,
        first_mrr_months.customer_id,
        first_mrr_months.first_mrr_month,
        months.month,
        months.month_index,
        months.month_complete,
        months.reported
    FROM first_mrr_months
    JOIN months ON months.month >= first_mrr_months.first_mrr_month
)

SELECT
    grid.account_id,
    grid.customer_id,
    grid.month,
    grid.month_index,
    grid.month_complete,
    grid.reported,
    coalesce(customer_months.mrr, 0)::DECIMAL(18, 2) AS mrr,
    coalesce(
        lag(customer_months.mrr) OVER (PARTITION BY grid.account_id, grid.customer_id ORDER BY grid.month),
        0
    )::DECIMAL(18, 2) AS mrr_previous,
    customer_months.mrr_unrounded,
    customer_months.billing_currency,
    customer_months.top_product_id,
    grid.first_mrr_month
FROM customer_month_grid AS grid
LEFT JOIN customer_months
    ON customer_months.account_id = grid.account_id
    AND customer_months.customer_id = grid.customer_id
    AND customer_months.month = grid.month;
