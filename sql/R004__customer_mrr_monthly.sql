-- report.customer_mrr_monthly: each customer's MRR in the reporting currency at every
-- month's snapshot instant, from their first month with MRR > 0 (not before `since`)
-- through the last reported month, zero months included. Customers are keyed by
-- (account_id, customer_id). The current month (month_complete = false) is valued at the
-- time of the last sync.
--
-- Customer MRR at instant t = max(0, sum of the monthly values of the lines active at t),
-- rounded to cents (half away from zero). A line is active at t when
-- period_start <= t < recognized_end.
-- Months before `since` are computed too, only to know each customer's MRR the month
-- before (mrr_previous) and whether they ever paid before (first_mrr_month).

CREATE OR REPLACE TABLE report.customer_mrr_monthly AS
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
        (year(month) * 12 + month(month) - 1)::INTEGER AS month_index,
        sum(product_mrr) AS mrr_unrounded,
        round(greatest(sum(product_mrr), 0), 2)::DECIMAL(18, 2) AS mrr,
        arg_max(currency, (product_mrr, currency)) AS billing_currency,
        arg_max(product_id, (product_mrr, product_id)) AS product_id
    FROM product_months
    GROUP BY ALL
),

first_mrr_months AS (
    SELECT account_id, customer_id, min(month) AS first_mrr_month
    FROM customer_months
    WHERE mrr > 0
    GROUP BY ALL
),

-- dense: every reported month from the first with MRR > 0, so churned months show as 0
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
    JOIN months
        ON months.month >= first_mrr_months.first_mrr_month
        AND months.reported
),

history AS (
    SELECT
        grid.*,
        coalesce(this_month.mrr, 0)::DECIMAL(18, 2) AS mrr,
        coalesce(previous_month.mrr, 0)::DECIMAL(18, 2) AS mrr_previous,
        previous_month.product_id AS previous_product_id,
        this_month.mrr_unrounded,
        this_month.billing_currency,
        this_month.product_id
    FROM customer_month_grid AS grid
    LEFT JOIN customer_months AS this_month
        ON this_month.account_id = grid.account_id
        AND this_month.customer_id = grid.customer_id
        AND this_month.month_index = grid.month_index
    LEFT JOIN customer_months AS previous_month
        ON previous_month.account_id = grid.account_id
        AND previous_month.customer_id = grid.customer_id
        AND previous_month.month_index = grid.month_index - 1
),

-- the rows of the table, as the model defines them
final AS (
    SELECT
        account_id,
        customer_id,
        month,
        mrr,
        month_complete,
        mrr_previous,        -- MRR at the previous month's snapshot (0 if none)
        first_mrr_month,     -- first month with MRR > 0, lookback months included
        billing_currency,    -- currency of the customer's largest MRR this month
        product_id,          -- product of the customer's largest MRR this month
        previous_product_id, -- the same, the month before (what a churned customer paid for)
        month_index,         -- year * 12 + month - 1, for window arithmetic
        mrr_unrounded        -- sum of the line values before the floor at 0 and rounding
    FROM history
    WHERE reported
)

SELECT * FROM final;
